"""Does watching training slow it down? Step time with the per-step telemetry on and off.

"On" is what the worker does after every optimizer step: the telemetry row (memory counters,
smoothed tokens/s, MFU; NVML on CUDA) and one `metrics` row written to SQLite with the run's
heartbeat. "Off" is the same loop with a no-op callback. Same model, data and settings (the
demo injection, LoRA), runs interleaved (off, on, off, on, …), the first epoch of each not
timed; the figure is the median step time. Target: at most 3 % overhead.

    python bench/telemetry_overhead.py      # writes bench/results/telemetry_overhead.md/json
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.core.methods.registry import get_method  # noqa: E402
from workbench.core.models import load_model  # noqa: E402
from workbench.core.store import Store  # noqa: E402
from workbench.core.train.loop import TrainLoop  # noqa: E402
from workbench.core.train.run import _record_step, create_run, render_knowledge  # noqa: E402
from workbench.core.train.telemetry import Telemetry  # noqa: E402
from workbench.core.workspace import resolve_workspace  # noqa: E402
from workbench.demo.bench import demo_run_config  # noqa: E402
from workbench.demo.build import machine_summary  # noqa: E402
from results_io import write_results  # noqa: E402  (bench/, the script's own folder)
from workbench.demo.knowledge import install_demo_set  # noqa: E402

ROUNDS = 3
EPOCHS = 3


def one_run(cfg: Any, examples: list[Any], store: Store, run_id: int | None) -> list[float]:
    """Step times after the first epoch; telemetry and store writes when `run_id` is given."""
    import torch

    torch.manual_seed(cfg.training.seed)
    loaded = load_model(cfg.model)
    method = get_method(cfg.method.name)
    loop = TrainLoop(method.apply(loaded.model, cfg.method), examples, cfg.training,
                     pad_id=loaded.tokenizer.pad_token_id, device="cpu")
    telemetry = Telemetry(loop.unwrapped, "cpu", loaded.dtype) if run_id is not None else None
    ends: list[float] = []

    def on_step(metrics: dict[str, Any]) -> None:
        if telemetry is not None and run_id is not None:
            metrics.update(telemetry.row(metrics["tokens"], metrics["step_seconds"],
                                         metrics["tokens"] / max(metrics["examples"], 1)))
            _record_step(store, run_id, metrics)
        ends.append(time.perf_counter())

    loop.run(on_step)
    timed = ends[loop.per_epoch - 1:]
    return [b - a for a, b in zip(timed, timed[1:])]


def main() -> None:
    import torch

    cfg = demo_run_config("cpu").with_values({"training.epochs": EPOCHS, "training.probe_every": 0,
                                              "training.stop_at_efficacy": 0.0,
                                              "data.replay_ratio": 0.0})
    with tempfile.TemporaryDirectory(prefix="workbench-telemetry-bench-") as tmp:
        workspace = resolve_workspace(tmp)
        store = Store(workspace.db_path)
        install_demo_set(store)
        examples = render_knowledge(store, cfg, load_model(cfg.model).tokenizer).rendered
        run_id = create_run(store, workspace, cfg)
        steps: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(ROUNDS):
            steps["off"] += one_run(cfg, examples, store, None)
            steps["on"] += one_run(cfg, examples, store, run_id)
    med = {k: statistics.median(v) for k, v in steps.items()}
    result = {"date": date.today().isoformat(), "machine": machine_summary("cpu"),
              "threads": torch.get_num_threads(), "rounds": ROUNDS, "epochs": EPOCHS,
              "steps_timed": {k: len(v) for k, v in steps.items()},
              "step_ms_off": 1000 * med["off"], "step_ms_on": 1000 * med["on"],
              "overhead_percent": 100 * (med["on"] - med["off"]) / med["off"]}
    write_results("telemetry_overhead", result, report(result))


def report(r: dict[str, Any]) -> str:
    return (
        f"# Telemetry overhead ({r['date']})\n\n"
        f"Machine: {r['machine']}, {r['threads']} torch threads. The demo injection (LoRA), "
        f"{r['epochs']} epochs per run, first epoch not timed, {r['rounds']} interleaved rounds; "
        f"median of {r['steps_timed']['on']} steps each.\n\n"
        "Command: `python bench/telemetry_overhead.py`\n\n"
        "| telemetry off | telemetry on (row + SQLite write per step) | overhead |\n|---|---|---|\n"
        f"| {r['step_ms_off']:.1f} ms | {r['step_ms_on']:.1f} ms | **{r['overhead_percent']:+.1f} %** |\n"
    )


if __name__ == "__main__":
    main()
