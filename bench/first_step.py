"""Time from pressing Train to the first optimizer step, on the embedded demo model.

What the Train button does (`control.start_run`: register the run, hand it to a worker
process) is timed from the call to the moment the worker has written step 1's metrics row,
so it counts the worker's start, loading the model, rendering the knowledge set, asking the
replay questions, applying the method, building the loop and the first step itself.

Two ways, interleaved: a fresh worker process (what the CLI's `--background` does, and the
app before its spare worker is ready), and the app's spare worker with its imports already
done (`core/train/standby.py`). Each start is stopped right after its first step.

    python bench/first_step.py   # writes bench/results/first_step.*
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

from results_io import write_results  # noqa: E402  (bench/, the script's own folder)
from workbench.core.store import Store  # noqa: E402
from workbench.core.train import control, standby  # noqa: E402
from workbench.core.workspace import Workspace, resolve_workspace  # noqa: E402
from workbench.demo.bench import demo_run_config  # noqa: E402
from workbench.demo.build import machine_summary  # noqa: E402
from workbench.demo.knowledge import install_demo_set  # noqa: E402

ROUNDS = 3
TARGET_S = 5.0


def first_step_seconds(store: Store, workspace: Workspace) -> float:
    cfg = demo_run_config("cpu")
    started = time.time()  # the store's timestamps are wall-clock seconds
    run_id = control.start_run(store, workspace, cfg)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        row = store.db.execute("SELECT time FROM metrics WHERE run_id = ? AND step = 1",
                               [run_id]).fetchone()
        if row:
            break
        status = store.db.execute("SELECT status, error FROM runs WHERE id = ?", [run_id]).fetchone()
        if status[0] in ("failed", "interrupted"):
            raise RuntimeError(f"run {run_id} {status[0]}: {status[1]}")
        time.sleep(0.01)
    else:
        raise RuntimeError(f"run {run_id} made no step in 300 s")
    control.stop_run(store, run_id)
    control.wait(run_id, timeout=300)
    return float(row[0]) - started


def main() -> None:
    import torch

    times: dict[str, list[float]] = {"fresh worker": [], "spare worker": []}
    # A replacement spare starts REPLACE_AFTER_S after each hand-off, well after step 1; the
    # disable() of the next round cancels it, so no spare imports during a measurement.
    with tempfile.TemporaryDirectory(prefix="workbench-first-step-") as tmp:
        workspace = resolve_workspace(Path(tmp) / "ws")
        store = Store(workspace.db_path)
        install_demo_set(store)
        for _ in range(ROUNDS):
            standby.disable()
            times["fresh worker"].append(first_step_seconds(store, workspace))
            standby.enable()
            if not standby.wait_ready(120):
                raise RuntimeError("the spare worker did not get ready in 120 s")
            times["spare worker"].append(first_step_seconds(store, workspace))
        standby.disable()
    result = {"date": date.today().isoformat(), "machine": machine_summary("cpu"),
              "threads": torch.get_num_threads(), "rounds": ROUNDS, "target_s": TARGET_S,
              "seconds": times, "median_s": {k: statistics.median(v) for k, v in times.items()}}
    write_results("first_step", result, report(result))


def report(r: dict[str, Any]) -> str:
    rows = "\n".join(f"| {way} | **{r['median_s'][way]:.1f} s** | "
                     f"{', '.join(f'{s:.1f}' for s in r['seconds'][way])} |"
                     for way in r["seconds"])
    return (
        f"# Time from pressing Train to the first optimizer step ({r['date']})\n\n"
        f"Machine: {r['machine']}, {r['threads']} torch threads. The embedded demo model with "
        f"the demo set and its default recipe (LoRA, half of the examples replay); {r['rounds']} "
        "interleaved rounds, medians. Counted: start of the worker, model load, rendering, the "
        "replay questions asked of the base model, method, loop and step 1 itself. Target: "
        f"≤ {r['target_s']:.0f} s.\n\nCommand: `python bench/first_step.py`\n\n"
        "| worker | median | each round |\n|---|---|---|\n" + rows + "\n\n"
        "The app keeps a spare worker with torch, transformers, peft and accelerate imported "
        "(`workbench/core/train/standby.py`); a fresh worker pays those imports first.\n"
    )


if __name__ == "__main__":
    main()
