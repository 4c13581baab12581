"""Run rows as jobs: who is training on which device, and which rows lost their process.

One running job per device: a run claims its device inside a `BEGIN IMMEDIATE` transaction,
which fails when another active run on that device still has a live process. A run row whose
process is gone (killed, crashed, machine rebooted) becomes "interrupted" the next time anyone
looks (`reap`), keeping the last lines of its log for display.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil

from workbench.core.data import runs
# ACTIVE and RESUMABLE are re-exported: control, history, the UI and tests read them here.
from workbench.core.data.names import ACTIVE, RESUMABLE, RunStatus
from workbench.core.errors import WorkbenchError
from workbench.core.store import Store, now

from workbench.core.train.runlog import DEBUG_FILE, LOG_FILE  # noqa: F401 - re-exported
TAIL_LINES = 40
# What `docker stop` waits between SIGTERM and SIGKILL (systemd waits 90 s). A worker that is
# told to stop finishes its step and has a complete checkpoint on disk within this, for steps
# of up to a few seconds; the final scoring and outputs come after it.
STOP_GRACE_S = 10.0
_CLOCK_SLACK_S = 2.0  # process start times and our timestamps come from different clocks


def pid_alive(pid: int | None, *, seen_at: float | None = None) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped) counts as gone.

    `seen_at` is when the store last heard from the run (its heartbeat). A process started
    after that is not the run's worker but a new one that was given the same number after the
    worker died (after a reboot, PIDs start over), so it counts as gone too.
    """
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return seen_at is None or process.create_time() <= seen_at + _CLOCK_SLACK_S
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False


def worker_alive(row: dict[str, Any]) -> bool:
    """Whether the run row's worker process still runs (its `pid` and `heartbeat_at`)."""
    return pid_alive(row["pid"], seen_at=row["heartbeat_at"])


def log_tail(run_dir: str | Path, lines: int = TAIL_LINES) -> str:
    path = Path(run_dir) / LOG_FILE
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 64 * 1024))  # the end is all we need
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    # Progress bars rewrite one line with carriage returns; keep only their last state.
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines()[-lines:])


def reap(store: Store) -> list[int]:
    """Mark active runs whose process is gone as interrupted; returns their ids."""
    # A plain read first: the UI polls through here every second, and a write transaction
    # each time would contend with the worker's per-step writes for nothing.
    if all(worker_alive(row) for row in runs.active(store)):
        return []
    gone = []
    with store.write():  # re-read under the lock: a run may have ended meanwhile
        for row in runs.active(store):
            if worker_alive(row):
                continue
            runs.update(store, row["id"], {
                "status": RunStatus.INTERRUPTED.value, "ended_at": now(),
                "log_tail": log_tail(row["run_dir"]),
                "error": "the training process ended without finishing (killed, crashed or the "
                         "machine restarted; its own output is in the run's " + DEBUG_FILE +
                         "); resume continues from the last checkpoint"})
            gone.append(row["id"])
    return gone


def busy_with(store: Store, device: str, *, except_run: int | None = None) -> dict[str, Any] | None:
    """The active run with a live process on `device`, if any."""
    reap(store)
    for row in runs.active(store, device=device):
        if row["id"] != except_run and worker_alive(row):
            return row
    return None


def claim(store: Store, run_id: int, device: str, *, resume: bool) -> None:
    """Mark the run running in this process, or refuse if the device is taken."""
    with store.write():
        other = busy_with(store, device, except_run=run_id)  # reaps dead runs first
        if other:
            raise WorkbenchError(
                f"{device} is busy training run {other['id']} ({other['name']})",
                hint="wait for it to finish or stop it; one run trains per device at a time")
        fields: dict[str, Any] = {"status": RunStatus.RUNNING.value, "pid": os.getpid(),
                                  "device": device, "heartbeat_at": now(), "ended_at": None,
                                  "error": "", "log_tail": "", "stop_requested": 0}
        if resume:
            runs.count_resume(store, run_id)
        else:
            fields["started_at"] = now()
        runs.update(store, run_id, fields)


def finish(store: Store, run_id: int, status: RunStatus | str, *, error: str = "", tail: str = "",
           stop_reason: str = "") -> None:
    runs.update(store, run_id, {"status": str(status), "error": error[:2000], "log_tail": tail,
                                "ended_at": now(), "pid": None, "stop_reason": stop_reason[:500]})


def stop_requested(store: Store, run_id: int) -> bool:
    return runs.stop_requested(store, run_id)


def get_run(store: Store, run_id: int) -> dict[str, Any]:
    """The run's row as a dict (the UI and the verdict read it so); `runs.get` gives a `Run`."""
    return runs.row(store, run_id)
