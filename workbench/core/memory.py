"""Memory readings of a device: bytes allocated, reserved, at peak, and its capacity.

Used by the training telemetry (one reading per step) and by the device summary; it sits
below both, so the device module need not reach up into training.
"""

from __future__ import annotations

import sys

import psutil

from workbench.core.data.names import StepMetric


def _cuda_index(device: str) -> int:
    """"cuda:1" → 1; a bare "cuda" means the current device, as torch reads it."""
    import torch

    _, _, index = device.partition(":")
    return int(index) if index else torch.cuda.current_device()


def _total_ram() -> int | None:
    # psutil reads /proc/meminfo or the OS equivalent (tens of µs); the same source as the
    # app's describe_device(), so capacity shown in a run matches the device summary.
    try:
        return int(psutil.virtual_memory().total)
    except (OSError, RuntimeError):
        return None


def _peak_rss() -> int | None:
    """This process's peak resident set, in bytes, over its whole life (never reset)."""
    try:
        import resource  # not on Windows
    except ImportError:
        peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
        return int(peak) if peak is not None else None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # macOS: bytes, else KiB


def _cpu_memory() -> dict[str, int | None]:
    # RSS via psutil: /proc/self/statm on Linux, the task info on macOS; about 10 µs.
    rss = int(psutil.Process().memory_info().rss)
    peak = _peak_rss()
    return {StepMetric.MEM_ALLOCATED: rss, StepMetric.MEM_RESERVED: None,
            StepMetric.MEM_PEAK: max(peak, rss) if peak is not None else None,
            StepMetric.MEM_CAPACITY: _total_ram()}


def _cuda_memory(device: str) -> dict[str, int | None]:
    import torch

    index = _cuda_index(device)
    # Allocator counters are host-side reads: no sync, well under a microsecond each.
    return {StepMetric.MEM_ALLOCATED: int(torch.cuda.memory_allocated(index)),
            StepMetric.MEM_RESERVED: int(torch.cuda.memory_reserved(index)),
            StepMetric.MEM_PEAK: int(torch.cuda.max_memory_allocated(index)),
            StepMetric.MEM_CAPACITY: int(torch.cuda.get_device_properties(index).total_memory)}


def _mps_memory() -> dict[str, int | None]:
    import torch

    # MPS keeps no peak counter; Telemetry tracks a running max of `mem_allocated`.
    return {StepMetric.MEM_ALLOCATED: int(torch.mps.current_allocated_memory()),
            StepMetric.MEM_RESERVED: int(torch.mps.driver_allocated_memory()),
            StepMetric.MEM_PEAK: None,
            StepMetric.MEM_CAPACITY: _total_ram()}  # unified memory: the GPU shares system RAM


def memory_snapshot(device: str) -> dict[str, int | None]:
    """Bytes allocated, reserved, at peak, and the device's capacity.

    cuda: the caching allocator's counters (peak since the last reset of peak stats); mps:
    the Metal allocator, peak None (see Telemetry); cpu: this process's RSS and peak RSS,
    reserved None (there is no allocator reserve to report), capacity the physical RAM.
    """
    if device.startswith("cuda"):
        return _cuda_memory(device)
    if device.startswith("mps"):
        return _mps_memory()
    return _cpu_memory()
