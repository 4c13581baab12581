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
# bf16 autocast on a CPU pays where bf16 matmuls are native (AVX512-BF16, AMX): on a 2-core
# AMD EPYC with AVX512-BF16 they ran 2.9x the fp32 rate and a SmolLM2-135M LoRA step 1.6x
# faster (`bench/results/recipe.md`: the fp32 row). Where bf16 is emulated it is slower than
# fp32, so it is used only when the calibration measures at least BF16_GAIN times the rate.
BF16_GAIN = 2.0
# Where bf16 is emulated, its calibration stops after the first size that runs below this
# share of the fp32 rate: no larger matmul brings it near BF16_GAIN (a small matmul runs
# below the peak, hence the wide margin). On a 2-core AMD EPYC without AVX512, bf16 matmuls
# ran at 1.2 GFLOP/s against fp32's 139, and timing all of SIZES took 313 s between pressing
# Train and a real model's first step; the smallest alone takes ~1.5 s there.
BF16_GIVE_UP = 0.25
# Below this many parameters training stays fp32 on every CPU: a step takes tens of
# milliseconds either way (the 4.7M demo model, LoRA, 16 rows: 0.09 s fp32, 0.07 s bf16 on the
# AMD EPYC), and the demo's and the tests' tiny models then give the same results on any CPU.
BF16_MIN_PARAMS = 50_000_000
SIZES = (512, 1024, 2048)
REPEATS = 5


def machine() -> str:
    """The CPU a figure belongs to: its model name and the threads torch uses."""
    import torch

    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def measure(dtype: str, sizes: tuple[int, ...] = SIZES, repeats: int = REPEATS, *,
            give_up_below: float = 0.0) -> tuple[float, list[int]]:
    """(the best FLOP/s over matmuls of each size, best of `repeats` each, ~1 s in all; the
    sizes timed). Sizes are timed smallest first, and none after one whose best rate so far
    is below `give_up_below`: an emulated dtype would take minutes at the larger ones."""
    best, timed = 0.0, []
    for size in sizes:
        best = max(best, measure_peak_flops("cpu", dtype, size, repeats=repeats))
        timed.append(size)
        if best < give_up_below:
            break
    return best, timed


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
             at_least: float = 0.0, give_up_below: float = 0.0) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from) for `dtype` matmuls on this CPU: the workspace's
    calibration when it has one for this CPU, else (or when `again`) a new one, saved.
    A recalibration keeps the higher of the old and new figures and `at_least`. A new one
    stops early below `give_up_below` FLOP/s (`measure`)."""
    key = f"{machine()} {dtype}"
    stored = _read(path) if path is not None else {}
    entry = stored.get(key)
    if entry and not again:
        return float(entry["peak_flops"]), f"calibrated {entry['date']}"
    started = time.perf_counter()
    measured, sizes = measure(dtype, give_up_below=give_up_below)
    peak = max(measured, at_least, float(entry["peak_flops"]) if entry else 0.0)
    entry = {"peak_flops": peak, "date": date.today().isoformat(), "sizes": sizes,
             "repeats": REPEATS, "seconds": round(time.perf_counter() - started, 2)}
    if path is not None:
        try:
            _write(path, {**stored, key: entry})
        except OSError:
            pass  # a read-only workspace: the figure still serves this run
    return peak, f"calibrated {entry['date']}" + (", again" if again else "")


def cpu_precision(mixed: str, quantization: str, params: int,
                  path: Path | None) -> tuple[str, str]:
    """(mixed precision, why) a CPU run of a `params`-parameter model trains in: `mixed` as
    set, except auto on unquantized weights, which `cpu_autocast` settles."""
    if mixed != "auto" or quantization != "none":
        return mixed, f"mixed precision {mixed}, as set"
    return cpu_autocast(params, path)


def cpu_autocast(params: int, path: Path | None) -> tuple[str, str]:
    """("bf16" or "no", why) for training a model of `params` parameters on this CPU with
    mixed precision left at auto: bf16 autocast (frozen weights multiplied in bf16; the
    trained weights, their gradients and the optimizer stay fp32) only where it is faster."""
    if params < BF16_MIN_PARAMS:
        return "no", f"fp32: a {params / 1e6:.0f}M-parameter model trains in fp32 on a CPU"
    fp32, _ = cpu_peak("fp32", path)
    bf16, _ = cpu_peak("bf16", path, give_up_below=BF16_GIVE_UP * fp32)
    gain = bf16 / fp32 if fp32 else 0.0
    if gain < BF16_GAIN:
        return "no", f"fp32: this CPU multiplies bf16 at {gain:.1f}x its fp32 rate"
    return "bf16", f"bf16 autocast: this CPU multiplies bf16 {gain:.1f}x faster than fp32"
