"""A worker process started before it is needed, so pressing Train does not wait for imports.

A fresh worker spends about 4–5 s importing torch, transformers, peft (which imports
bitsandbytes) and accelerate before it touches the model: more than the rest of the start on
the demo model. The app therefore keeps one spare worker that has done those imports and
waits on its stdin. Starting a run hands it one line (the workspace, run id and resume
flag); it points its stdout/stderr at the run's log and runs exactly the command a fresh
worker would (`worker.py`'s `worker RUN_ID`). It is still a separate process, never a fork of the
UI, so everything `control` promises about workers holds.

The spare exits when its stdin closes (the app ended or replaced it). It costs the memory of
an idle Python with those libraries loaded (about 0.5 GiB) while it waits; a replacement is
started only after a short delay, so its imports do not compete with the run it just started.
Only the app turns this on (`enable`); the CLI and tests start plain workers unless they ask.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

READY = b"ready\n"
# Imported by the spare beyond what `preload_libraries` resolves (transformers, peft).
WARM = ("accelerate", "workbench.core.train.run", "workbench.core.train.telemetry",
        "workbench.core.train.checkpoint", "workbench.core.methods.registry")
REPLACE_AFTER_S = 20.0  # the run's own start (model load, replay questions) goes first
# The spare's command line. worker.py is named here, not imported: it imports this module to
# serve, and the word `standby` in the process list is how tests tell a spare from a worker.
SPARE_COMMAND = [sys.executable, "-m", "workbench.core.train.worker", "standby"]

_lock = threading.Lock()
_spare: subprocess.Popen[bytes] | None = None
_enabled = False
_timer: threading.Timer | None = None


def enable(*, delay: float = 0.0) -> None:
    """Keep a spare worker from now on (the first after `delay` seconds)."""
    global _enabled
    with _lock:
        _enabled = True
    _replenish(delay)


def disable() -> None:
    """Stop keeping a spare and let the current one exit."""
    global _enabled, _spare
    with _lock:
        _enabled = False
        if _timer is not None:
            _timer.cancel()
        spare, _spare = _spare, None
    if spare is not None:
        _close(spare)


def take(run_args: Sequence[str], log_file: Path) -> subprocess.Popen[bytes] | None:
    """Hand the worker arguments `RUN_ARGS…` to the spare worker, its output to `log_file`; None when
    there is no live spare (the caller starts a fresh worker). A replacement follows later."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    _replenish(REPLACE_AFTER_S)  # also after a spare that died: the next run gets a new one
    if spare is None or spare.poll() is not None:
        return None
    job = json.dumps({"argv": list(run_args), "log": str(log_file)}) + "\n"
    try:
        assert spare.stdin is not None
        spare.stdin.write(job.encode())
        spare.stdin.close()
    except OSError:  # it died between poll() and the write
        return None
    if spare.stdout is not None:
        spare.stdout.close()
    return spare


def wait_ready(timeout: float) -> bool:
    """True once the spare has finished its imports (for benchmarks and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _lock:
            spare = _spare
        if spare is not None and spare.stdout is not None and not spare.stdout.closed:
            ready, _, _ = select.select([spare.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                return spare.stdout.readline() == READY
        time.sleep(0.05)
    return False


def _replenish(delay: float) -> None:
    global _timer
    with _lock:
        if not _enabled or _spare is not None:
            return
        if _timer is not None:
            _timer.cancel()
        _timer = threading.Timer(delay, _start)
        _timer.daemon = True
        _timer.start()


def _start() -> None:
    global _spare
    with _lock:
        if not _enabled or _spare is not None:
            return
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # A session of its own, like any worker: Ctrl-C in the app's terminal spares the run.
        _spare = subprocess.Popen(SPARE_COMMAND,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=env, start_new_session=True)


def _close(spare: subprocess.Popen[bytes]) -> None:
    for pipe in (spare.stdin, spare.stdout):
        if pipe is not None and not pipe.closed:
            pipe.close()  # EOF on stdin: it exits as soon as its imports are done


atexit.register(disable)


# --- the spare's side ----------------------------------------------------------------------
def serve(run: Callable[[list[str]], int], stdin: IO[bytes] | None = None,
          stdout: IO[bytes] | None = None) -> int:
    """Import what a worker needs, say so, wait for one job, then run it with `run(argv)`."""
    from workbench.core.models import preload_libraries

    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    preload_libraries()
    for name in WARM:
        importlib.import_module(name)
    try:
        stdout.write(READY)
        stdout.flush()
    except (BrokenPipeError, ValueError):  # nobody waits for the signal: fine
        pass
    line = stdin.readline()
    if not line.strip():
        return 0  # the app closed the pipe: no job
    job: dict[str, Any] = json.loads(line)
    _redirect_output(Path(job["log"]))
    return run(list(job["argv"]))


def _redirect_output(log_file: Path) -> None:
    """From here on the process is that run's worker: fds 1 and 2 append to its log and
    stdin reads nothing, exactly as for a worker started fresh."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
