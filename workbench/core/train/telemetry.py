"""Per-optimizer-step telemetry: memory, GPU utilisation and power, smoothed tokens/s and MFU.

`Telemetry.row(...)` gives one dict per optimizer step with the keys `mem_allocated`,
`mem_reserved`, `mem_peak`, `mem_capacity` (bytes), `gpu_util` (percent), `power_w` (watts),
`tokens_per_s` (smoothed) and `mfu` (fraction of peak). A value is None only where the device
cannot report it: NVML readings off CUDA, the allocator's reserve on CPU, MFU without a peak.

The parts live beside it: memory readings in `core/memory.py`, NVML in `nvml.py`, the FLOPs
model and the peak FLOP/s in `flops.py` (whose docstring derives MFU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.core.data.names import StepMetric
from workbench.core.memory import _cuda_index, memory_snapshot  # noqa: F401 - re-exported
from workbench.core.models import format_count
from workbench.core.train.calibration import cpu_peak
from workbench.core.train.sharding import Ranks
from workbench.core.train.runlog import log
from workbench.core.train.flops import (UNKNOWN, _dtype_key,  # noqa: F401 - re-exported
                                        default_matmul_size, flops_per_token,
                                        measure_peak_flops, model_flops_shape, peak_flops)
from workbench.core.train.nvml import Nvml  # noqa: F401 - re-exported

# The keys of `Telemetry.row()`: the step metrics measured beside the loop's own.
ROW_KEYS = (StepMetric.MEM_ALLOCATED, StepMetric.MEM_RESERVED, StepMetric.MEM_PEAK,
            StepMetric.MEM_CAPACITY, StepMetric.GPU_UTIL, StepMetric.POWER_W, StepMetric.MFU,
            StepMetric.TOKENS_PER_S)


# --- smoothing and the per-step row ---------------------------------------------------------


class Smoother:
    """Exponential moving average of a rate: tokens/s that does not jump with every step."""

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.value: float | None = None

    def update(self, tokens: int, seconds: float) -> float:
        """Fold in one step's rate; the first step's rate is taken as is. A step with no
        duration leaves the average where it was (0.0 before any real step)."""
        if seconds <= 0:
            return self.value if self.value is not None else 0.0
        rate = tokens / seconds
        if self.value is None:
            self.value = rate
        else:
            self.value = self.alpha * rate + (1.0 - self.alpha) * self.value
        return self.value


def _matmul_dtype(device: str, dtype: Any) -> str:
    """The dtype whose peak applies: float32 on CUDA runs as TF32 when PyTorch allows it."""
    key = _dtype_key(dtype) or str(dtype)
    if key == "fp32" and device.startswith("cuda"):
        import torch

        if torch.get_float32_matmul_precision() != "highest":
            return "tf32"
    return key


class Telemetry:
    """One metrics row per optimizer step for `model` training on `device` in `dtype`.

    Construction does the one-off work: the FLOPs shape of the model, the peak (table, else a
    timed matmul if `measure_peak`, under a second), NVML, and a reset of CUDA's peak-memory
    counter so `mem_peak` covers training, not loading. `row()` is then cheap: allocator
    counters, two NVML calls and arithmetic, no device sync."""

    def __init__(self, model: Any, device: str, dtype: Any, *, measure_peak: bool = True,
                 calibration: Path | None = None, ranks: Ranks = Ranks()) -> None:
        self.device = device
        # Several processes: tokens/s counts them all, memory is the largest process's, and
        # MFU is over every GPU's peak (processes on one CPU share its peak).
        self.ranks = ranks
        self.devices = ranks.world if not device.startswith("cpu") else 1
        self.dtype = _matmul_dtype(device, dtype)
        self.shape = model_flops_shape(model)
        self.device_name = self._device_name()
        self.calibration = calibration  # the workspace's CPU calibration file
        self.estimated = False  # an MFU reading beat the peak even after recalibrating
        self._recalibrated = False
        self.peak, self._peak_source = peak_flops(device, self.device_name, self.dtype)
        if self.peak is None and measure_peak:
            if device == "cpu":
                self.peak, self._peak_source = cpu_peak(self.dtype, calibration)
            else:
                self._measure_peak()
        self._smoother = Smoother()
        self._nvml = self._open_nvml()
        self._mps_peak: int | None = None
        self._last_seq_len: float | None = None
        if device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(_cuda_index(device))

    def _measure_peak(self) -> None:
        size = default_matmul_size(self.device)
        try:
            self.peak = measure_peak_flops(self.device, self.dtype, size)
        except (RuntimeError, TypeError):  # a dtype the backend cannot matmul: no MFU
            return
        self._peak_source = f"measured by a {size}² matmul"

    def _device_name(self) -> str:
        if self.device.startswith("cuda"):
            import torch

            return str(torch.cuda.get_device_properties(_cuda_index(self.device)).name)
        return "Apple GPU" if self.device.startswith("mps") else "CPU"

    def _open_nvml(self) -> Nvml | None:
        if not self.device.startswith("cuda"):
            return None
        import torch

        index = _cuda_index(self.device)
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        return Nvml(index, str(uuid) if uuid else None)

    @property
    def peak_source(self) -> str:
        return self._peak_source

    def flops_per_token(self, seq_len: float) -> float:
        matmul, trainable, n_layers, attn_dim = self.shape
        return flops_per_token(matmul_params=matmul, trainable_params=trainable,
                               n_layers=n_layers, attn_dim=attn_dim, seq_len=seq_len)

    def _memory(self) -> dict[str, int | None]:
        memory = memory_snapshot(self.device)
        if self.device.startswith("mps"):
            # A per-step sample misses peaks inside the step (mid-backward): a lower bound.
            allocated = memory[StepMetric.MEM_ALLOCATED] or 0
            self._mps_peak = max(self._mps_peak or 0, allocated)
            memory[StepMetric.MEM_PEAK] = self._mps_peak
        return memory

    def row(self, tokens: int, seconds: float, seq_len: float) -> dict[str, Any]:
        """Metrics for one optimizer step of `tokens` real tokens in `seconds`, with
        sequences `seq_len` tokens long on average. MFU uses the smoothed rate. A reading
        above the peak means the peak was low: on a CPU it is recalibrated once; what still
        exceeds it is stored as exactly 1.0 and the figure marked as an estimate, never
        shown as more than the machine can do."""
        rate = self._smoother.update(tokens, seconds)
        self._last_seq_len = seq_len
        util, power = self._nvml.sample() if self._nvml else (None, None)
        mfu = self._mfu(self.flops_per_token(seq_len) * rate)
        return {**self.ranks.max_over_ranks(self._memory()), StepMetric.GPU_UTIL: util,
                StepMetric.POWER_W: power, StepMetric.MFU: mfu, StepMetric.TOKENS_PER_S: rate}

    def _mfu(self, flops_per_s: float) -> float | None:
        if not self.peak:
            return None
        flops_per_s /= self.devices
        if flops_per_s > self.peak and self.device == "cpu" and not self._recalibrated:
            self._recalibrated = True
            self.peak, self._peak_source = cpu_peak(self.dtype, self.calibration, again=True)
            log.info("a step ran at %.0f GFLOP/s, above the CPU's calibrated peak: "
                     "recalibrated it to %.0f GFLOP/s", flops_per_s / 1e9, self.peak / 1e9)
        if flops_per_s > self.peak:
            if not self.estimated:
                self.estimated = True
                log.info("MFU reads above 100%% of the %s peak: shown as 100%%, an estimate",
                         self.peak_source)
            return 1.0
        return flops_per_s / self.peak

    def summary(self) -> str:
        """The telemetry's basis in words for the run's log (the numbers go to the debug
        log): "MFU against 180 GFLOP/s on the CPU (fp32, measured by a 1024² matmul); 3.3M of
        135M parameters trained"."""
        matmul, trainable, _, _ = self.shape
        trained = f"{format_count(trainable)} of {format_count(matmul)} parameters trained"
        if self.peak is None:
            return f"no MFU (no known peak for the {self.device_name}, {self.dtype}); {trained}"
        return (f"MFU against {self.peak / 1e9:,.0f} GFLOP/s on the {self.device_name} "
                f"({self.dtype}, {self.peak_source}); {trained}")

    def describe(self, seq_len: float | None = None) -> dict[str, Any]:
        """What the MFU rests on, for the run's log. FLOPs per token are at `seq_len`, else at
        the last row's, else without the attention term (seq_len 0)."""
        seq = seq_len if seq_len is not None else (self._last_seq_len or 0.0)
        matmul, trainable, n_layers, attn_dim = self.shape
        return {"device": self.device, "device_name": self.device_name, "dtype": self.dtype,
                "peak_flops": self.peak, "peak_source": self.peak_source,
                "matmul_params": matmul, "trainable_params": trainable,
                "n_layers": n_layers, "attn_dim": attn_dim, "seq_len": seq,
                "flops_per_token": self.flops_per_token(seq),
                StepMetric.MEM_CAPACITY: memory_snapshot(self.device)[StepMetric.MEM_CAPACITY]}

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None
