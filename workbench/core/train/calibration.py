"""The CPU's peak FLOP/s for MFU, calibrated once per machine and kept in the workspace.

A single 1024² matmul timed at the start of a run is not a peak: on a busy machine it read
low, and the real runs' CPU MFU medians came out at 84–171 %. Calibration times several sizes
(512² to 2048²), best of several repeats each, and keeps the best rate with its date and the
CPU it was measured on (`cpu-peak.json` in the workspace). A later run on the same CPU reads
it back. A training step that still beats it recalibrates once (the machine may have been
busy when the peak was measured) and the higher figure is kept; MFU above the peak after that
is shown as 100 % and marked as an estimate rather than reported as more than the machine
can do.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

from workbench.core.device import cpu_name
from workbench.core.train.flops import measure_peak_flops

CALIBRATION_FILE = "cpu-peak.json"
SIZES = (512, 1024, 2048)
REPEATS = 5


def machine() -> str:
    """The CPU a figure belongs to: its model name and the threads torch uses."""
    import torch

    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def measure(dtype: str, sizes: tuple[int, ...] = SIZES, repeats: int = REPEATS) -> float:
    """The best FLOP/s over matmuls of each size, best of `repeats` each (~1 s in all)."""
    return max(measure_peak_flops("cpu", dtype, size, repeats=repeats) for size in sizes)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)  # atomic: two runs calibrating at once never leave half a file


def cpu_peak(dtype: str, path: Path | None, *, again: bool = False,
             at_least: float = 0.0) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from) for `dtype` matmuls on this CPU: the workspace's
    calibration when it has one for this CPU, else (or when `again`) a new one, saved.
    A recalibration keeps the higher of the old and new figures and `at_least`."""
    key = f"{machine()} {dtype}"
    stored = _read(path) if path is not None else {}
    entry = stored.get(key)
    if entry and not again:
        return float(entry["peak_flops"]), f"calibrated {entry['date']}"
    started = time.perf_counter()
    peak = max(measure(dtype), at_least, float(entry["peak_flops"]) if entry else 0.0)
    entry = {"peak_flops": peak, "date": date.today().isoformat(), "sizes": list(SIZES),
             "repeats": REPEATS, "seconds": round(time.perf_counter() - started, 2)}
    if path is not None:
        try:
            _write(path, {**stored, key: entry})
        except OSError:
            pass  # a read-only workspace: the figure still serves this run
    return peak, f"calibrated {entry['date']}" + (", again" if again else "")
