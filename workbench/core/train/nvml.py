"""GPU utilisation and power from NVML, read once per step when the driver offers it."""

from __future__ import annotations

import os
from typing import Any


class Nvml:
    """GPU utilisation and board power through NVML (`pynvml`, from nvidia-ml-py).

    Every failure (package missing, no driver, MIG, a query the board does not support)
    turns into None readings, never an exception: telemetry must not stop a training run.
    A sample is two driver calls, microseconds up to a fraction of a millisecond depending on
    the driver: negligible once per optimizer step.
    """

    def __init__(self, index: int, uuid: str | None = None) -> None:
        self._nvml: Any = None
        self._handle: Any = None
        try:
            import pynvml
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
        except Exception:  # NVMLError_LibraryNotFound / _DriverNotLoaded and kin
            return
        self._nvml = pynvml
        self._handle = self._open(index, uuid)

    def _open(self, index: int, uuid: str | None) -> Any:
        # CUDA and NVML number devices differently once CUDA_VISIBLE_DEVICES is set (and CUDA
        # orders fastest-first by default), so the UUID is the reliable key.
        if uuid:
            full = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
            try:
                return self._nvml.nvmlDeviceGetHandleByUUID(full)
            except Exception:
                pass
        if uuid and os.environ.get("CUDA_VISIBLE_DEVICES"):
            return None  # the index would likely name another GPU: better no reading
        try:
            return self._nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:
            return None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def sample(self) -> tuple[float | None, float | None]:
        """(GPU utilisation in percent, board power in watts); None where unreadable.

        Utilisation is NVML's "a kernel was running" share of the last sample period (1/6 s
        to 1 s by GPU), not how busy the SMs were: 100 % with a low MFU is possible."""
        if self._handle is None:
            return None, None
        return self._utilization(), self._power()

    def _utilization(self) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
        except Exception:
            return None

    def _power(self) -> float | None:
        try:
            return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0  # mW → W
        except Exception:
            return None

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()  # reference-counted by NVML: other users unaffected
            except Exception:
                pass
        self._nvml = self._handle = None
