"""Which device to run on, at which precision, and what it has.

torch is imported inside functions: `workbench config` and the CLI's help stay fast, and a
broken CUDA install surfaces as a message when a model is loaded, not at import.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

from workbench.core.errors import WorkbenchError

if TYPE_CHECKING:
    import torch

DTYPES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # cuda | mps | cpu
    name: str  # "NVIDIA GeForce RTX 4090" or the CPU model
    total_memory: int  # bytes of device memory (system RAM for cpu/mps)
    count: int = 1  # number of visible devices of this kind
    cpu_cores: int = 1

    def summary(self) -> str:
        gib = self.total_memory / 2**30
        if self.kind == "cuda":
            many = f"{self.count} x " if self.count > 1 else ""
            return f"GPU: {many}{self.name}, {gib:.1f} GiB"
        if self.kind == "mps":
            return f"Apple GPU (MPS), {gib:.1f} GiB unified memory"
        return f"CPU: {self.name}, {self.cpu_cores} cores, {gib:.1f} GiB RAM (no GPU found)"


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(requested: str = "auto") -> str:
    """'auto' → cuda, then mps, then cpu; an explicit choice is checked to be present."""
    if requested == "auto":
        if _cuda_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    if requested == "cuda" and not _cuda_available():
        raise WorkbenchError(
            "device cuda was requested but PyTorch sees no CUDA GPU",
            hint="check the NVIDIA driver and that the CUDA build of torch is installed, "
            "or set model.device to auto",
        )
    if requested == "mps" and not _mps_available():
        raise WorkbenchError(
            "device mps was requested but Apple MPS is not available here",
            hint="set model.device to auto or cpu",
        )
    if requested not in ("cuda", "mps", "cpu"):
        raise WorkbenchError(f"unknown device {requested!r}", hint="use auto, cuda, mps or cpu")
    return requested


def pick_dtype(device: str, requested: str = "auto") -> torch.dtype:
    """'auto' → bf16 on GPUs that support it, fp16 on older CUDA and MPS, fp32 on CPU.

    CPU stays fp32 by default: bf16 matmuls are slow on most desktop CPUs and fp16 is
    unsupported for many CPU kernels."""
    import torch

    if requested != "auto":
        if requested not in DTYPES:
            raise WorkbenchError(f"unknown dtype {requested!r}",
                                 hint="use auto, bfloat16, float16 or float32")
        dtype = getattr(torch, requested)
        if device == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise WorkbenchError(
                "this GPU does not support bfloat16",
                hint="set model.dtype to float16 or auto",
            )
        return dtype
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def cpu_name() -> str:
    name = platform.processor() or platform.machine()
    try:  # /proc/cpuinfo has the marketing name on Linux; platform.processor() often doesn't
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name or "unknown CPU"


def describe_device(kind: str | None = None) -> DeviceInfo:
    """What the app would run on (or `kind`, if given): name and memory capacity."""
    kind = kind or pick_device("auto")
    cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    ram = psutil.virtual_memory().total
    if kind == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        return DeviceInfo("cuda", props.name, int(props.total_memory),
                          torch.cuda.device_count(), cores)
    if kind == "mps":
        return DeviceInfo("mps", "Apple GPU", ram, 1, cores)
    return DeviceInfo("cpu", cpu_name(), ram, 1, cores)


def memory_in_use(device: str) -> int:
    """Bytes in use on `device` right now: CUDA/MPS allocator, or this process's RSS on CPU
    (the same reading as the training telemetry's `mem_allocated`)."""
    from workbench.core.memory import memory_snapshot

    return int(memory_snapshot(device)["mem_allocated"] or 0)


def is_sharded(model: Any) -> bool:
    """True when `model` is FSDP2-sharded over more than one process: every forward pass then
    needs all of them (`train/sharding.py`)."""
    try:
        import torch.distributed as dist
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return isinstance(model, FSDPModule) and dist.is_initialized() and dist.get_world_size() > 1
