"""Start, stop and resume runs in a background worker process, and report on them.

The worker is a fresh Python process (`worker.py`: `… worker RUN_ID`), never a fork of
the UI: a crash, an out-of-memory kill or a hung CUDA call cannot take the UI down, and the
GPU memory is returned to the system when it exits. Its output goes to the run's log file (a
pipe nobody drains would eventually block it), and it reports through the store only. The app
keeps one such process ready with its imports done (`standby`), which saves seconds per start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from workbench.core.config import RunConfig
from workbench.core.data import runs
from workbench.core.data.names import RunStatus
from workbench.core.device import pick_device
from workbench.core.errors import WorkbenchError
from workbench.core.store import Store, now
from workbench.core.train import jobs, standby
from workbench.core.train.run import create_run
from workbench.core.workspace import Workspace

_children: dict[int, subprocess.Popen[bytes]] = {}  # run id → worker; poll() reaps zombies
# How a fresh worker is started; its arguments follow. Tests put a wrapper here to inject
# faults (a slow checkpoint save) into a real worker process.
WORKER_COMMAND = [sys.executable, "-m", "workbench.core.train.worker"]  # worker.py


def _spawn(workspace: Workspace, run_id: int, resume: bool) -> subprocess.Popen[bytes]:
    out = workspace.run_dir(run_id)
    out.mkdir(parents=True, exist_ok=True)
    argv = ["--workspace", str(workspace.root), "worker", str(run_id)] + (
        ["--resume"] if resume else [])
    # The process's own output (library warnings, anything printed) goes to the debug log;
    # the run logs for people through its logger.
    spare = standby.take(argv, out / jobs.DEBUG_FILE)
    if spare is not None:
        return spare
    command = [*WORKER_COMMAND, *argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (out / jobs.DEBUG_FILE).open("ab") as log:
        # A session of its own: Ctrl-C in the terminal running the UI does not kill the run.
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


def _launch(store: Store, workspace: Workspace, run_id: int, device: str, resume: bool) -> int:
    for rid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[rid]
    with store.write():  # holds the write lock: two clicks cannot both start a run
        other = jobs.busy_with(store, device, except_run=run_id)
        if other:
            raise WorkbenchError(
                f"{device} is busy training run {other['id']} ({other['name']})",
                hint="wait for it to finish or stop it; one run trains per device at a time")
        child = _spawn(workspace, run_id, resume)
        runs.update(store, run_id, {"status": RunStatus.STARTING.value, "pid": child.pid,
                                    "device": device, "stop_requested": 0, "heartbeat_at": now()})
    _children[run_id] = child
    return child.pid


def start_run(store: Store, workspace: Workspace, cfg: RunConfig) -> int:
    """Register a run and start its worker; returns the run id."""
    device = pick_device(cfg.model.device)
    other = jobs.busy_with(store, device)
    if other:  # refuse before a run row is created for nothing
        raise WorkbenchError(f"{device} is busy training run {other['id']} ({other['name']})",
                             hint="wait for it to finish or stop it; one run trains per device")
    run_id = create_run(store, workspace, cfg)
    _launch(store, workspace, run_id, device, resume=False)
    return run_id


def resume_run(store: Store, workspace: Workspace, run_id: int) -> int:
    """Continue a stopped, interrupted or failed run from its newest complete checkpoint."""
    from workbench.core.train.checkpoint import latest_complete

    jobs.reap(store)
    run = runs.get(store, run_id)
    if run.status not in jobs.RESUMABLE:
        raise WorkbenchError(f"run {run_id} is {run.status}; only stopped, interrupted or "
                             f"failed runs can be resumed")
    if latest_complete(Path(run.run_dir)) is None:
        raise WorkbenchError(f"run {run_id} has no complete checkpoint to resume from",
                             hint="start it again as a new run")
    device = pick_device(RunConfig.from_run(run).model.device)
    return _launch(store, workspace, run_id, device, resume=True)


def stop_run(store: Store, run_id: int) -> None:
    """Ask the worker to stop: it finishes the current step, saves, and exits. SIGTERM too, so
    a worker still loading its model stops without waiting for the first step."""
    run = jobs.get_run(store, run_id)
    if run["status"] not in jobs.ACTIVE:
        raise WorkbenchError(f"run {run_id} is not running (it is {run['status']})")
    runs.update(store, run_id, {"stop_requested": 1, "status": RunStatus.STOPPING.value})
    if jobs.worker_alive(run):  # never a process that was given a dead worker's PID
        try:
            os.kill(run["pid"], signal.SIGTERM)
        except OSError:
            pass  # it ended in between; reap() will tell


def run_status(store: Store, run_id: int, *, after_step: int = 0) -> dict[str, Any]:
    """What a UI needs to re-attach: the run row, metrics rows after `after_step` (so a poll
    reads only new rows), the recall curve, the log tail and, once finished, its verdict."""
    from workbench.core.train.probing import recall_curve
    from workbench.core.train.verdict import run_verdict

    jobs.reap(store)
    run = jobs.get_run(store, run_id)
    metrics = runs.metrics(store, run_id, after_step=after_step)
    tail = run["log_tail"] or jobs.log_tail(run["run_dir"], 12)
    return {"run": run, "metrics": metrics, "recall": recall_curve(store, run_id), "log": tail,
            "verdict": run_verdict(store, run)}


def active_runs(store: Store) -> list[dict[str, Any]]:
    jobs.reap(store)
    return runs.active(store)


def wait(run_id: int, timeout: float | None = None) -> int | None:
    """Wait for a worker started by this process (tests, CLI); returns its exit code."""
    child = _children.get(run_id)
    return child.wait(timeout) if child else None
