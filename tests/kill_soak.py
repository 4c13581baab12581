"""The kill soak: a real training worker killed with SIGKILL at random moments and resumed,
again and again, with every promise about crashes checked after each kill.

The moments are drawn from three kinds, so that each part of a run gets hit:

- "start": a random time after launch, often while the process imports, loads the model or
  restores the checkpoint;
- "step": a random few milliseconds after a step's metrics row appears;
- "save": while a checkpoint is being written (the worker is `slow_save_worker.py`, whose
  saves take `SLOW_SAVE_DELAY_S` per file), which leaves a half-written folder behind.

After every kill: the store passes `PRAGMA integrity_check`; the run row becomes
"interrupted"; the newest complete checkpoint is never older than the one before (the step
never goes backwards) and no older than the last finished epoch or checkpoint interval; and
the resumed process starts from exactly that checkpoint.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.config import RunConfig
from workbench.core.store import Store
from workbench.core.train import control, jobs
from workbench.core.train.checkpoint import checkpoint_name, checkpoints_dir, latest_complete
from workbench.core.workspace import Workspace

SLOW_WORKER = [sys.executable, str(Path(__file__).with_name("slow_save_worker.py"))]
KINDS = ("start", "step", "save")
_RESUMED = re.compile(r"resumed from (step-\d+) \(step (\d+)\)")


@dataclass
class SoakReport:
    kills: int = 0
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    mid_save: int = 0  # kills that left a half-written checkpoint folder behind
    integrity_ok: int = 0
    checkpointed_steps_lost: int = 0  # steps of a complete checkpoint not resumed from
    steps_redone: int = 0  # trained after the newest checkpoint, so trained again
    final_step: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in self.by_kind.items())
        return (f"{self.kills} SIGKILLs survived ({kinds}; {self.mid_save} left a half-written "
                f"checkpoint); integrity_check ok {self.integrity_ok}/{self.kills}; checkpointed "
                f"steps lost {self.checkpointed_steps_lost}; steps redone {self.steps_redone}; "
                f"finished at step {self.final_step} in {self.seconds:.0f} s")


class KillSoak:
    """Start `cfg` as a run, then kill and resume its worker `kills` times, then let it finish."""

    def __init__(self, store: Store, workspace: Workspace, cfg: RunConfig, seed: int) -> None:
        self.store, self.workspace, self.cfg = store, workspace, cfg
        self.rng = random.Random(seed)
        self.run_id = 0
        self.saved = 0  # step of the newest complete checkpoint after the last kill
        self.start_window = 8.0  # seconds; replaced by measured launch-to-first-step times
        self.report = SoakReport()

    # --- the soak ----------------------------------------------------------------------------
    def run(self, kills: int) -> SoakReport:
        started = time.monotonic()
        self.run_id = control.start_run(self.store, self.workspace, self.cfg)
        self._wait(lambda: latest_complete(self.run_dir) is not None, "a first checkpoint")
        self._kill_and_check("step", launched=0.0)
        while self.report.kills < kills:
            launched = time.time()
            control.resume_run(self.store, self.workspace, self.run_id)
            self._kill_and_check(self.rng.choice(KINDS), launched)
        control.resume_run(self.store, self.workspace, self.run_id)
        assert control.wait(self.run_id, timeout=600) == 0, jobs.log_tail(self.run_dir)
        self.report.final_step = self._max_step()
        self.report.seconds = time.monotonic() - started
        return self.report

    @property
    def run_dir(self) -> Path:
        return self.workspace.run_dir(self.run_id)

    def _kill_and_check(self, kind: str, launched: float) -> None:
        if not self._reach(kind, launched):
            raise AssertionError(f"run {self.run_id} finished before the kill; give it more "
                                 f"steps\n{jobs.log_tail(self.run_dir)}")
        pid = jobs.get_run(self.store, self.run_id)["pid"]
        os.kill(pid, signal.SIGKILL)
        assert control.wait(self.run_id, timeout=60) == -signal.SIGKILL
        self.report.kills += 1
        self.report.by_kind[kind] += 1
        self._check(launched)

    # --- choosing the moment -----------------------------------------------------------------
    def _reach(self, kind: str, launched: float) -> bool:
        """Wait for a moment of this kind; False if the run ended first."""
        if kind == "start":
            deadline = time.monotonic() + self.rng.uniform(0.0, self.start_window)
            while time.monotonic() < deadline:
                if not self._alive():
                    return False
                time.sleep(0.01)
            return True
        if not self._wait_for_new_row(launched, self.rng.randint(1, 6)):
            return False
        if kind == "step":
            time.sleep(self.rng.uniform(0.0, 0.05))
            return self._alive()
        return self._wait_inside_a_save()

    def _wait_for_new_row(self, launched: float, steps: int) -> bool:
        t0 = time.monotonic()
        target = self.saved + steps
        while self._alive():
            row = self.store.db.execute("SELECT max(step) FROM metrics WHERE run_id = ? AND "
                                        "time > ?", [self.run_id, launched]).fetchone()
            if row[0] is not None and row[0] >= target:
                if launched:  # how long a launch takes to train, for "start" kills
                    self.start_window = min(self.start_window, time.monotonic() - t0 + 1.0)
                return True
            time.sleep(0.005)
        return False

    def _wait_inside_a_save(self) -> bool:
        while self._alive():
            if self._partial_folders():
                delay = float(os.environ.get("SLOW_SAVE_DELAY_S", "0.05"))
                time.sleep(self.rng.uniform(0.0, 5 * delay))  # a save writes 6 files
                return self._alive()
            time.sleep(0.002)
        return False

    def _alive(self) -> bool:
        run = jobs.get_run(self.store, self.run_id)
        return run["status"] in jobs.ACTIVE and jobs.pid_alive(run["pid"])

    def _wait(self, condition: Any, what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline and self._alive(), \
                f"no {what}\n{jobs.log_tail(self.run_dir)}"
            time.sleep(0.01)

    # --- the checks after a kill -------------------------------------------------------------
    def _partial_folders(self) -> list[Path]:
        root = checkpoints_dir(self.run_dir)
        return [p for p in root.glob(".step-*.partial")] if root.is_dir() else []

    def _max_step(self, written_after: float = 0.0) -> int:
        row = self.store.db.execute("SELECT max(step) FROM metrics WHERE run_id = ? AND "
                                    "time > ?", [self.run_id, written_after]).fetchone()
        return int(row[0] or 0)

    def _check(self, launched: float) -> None:
        report = self.report
        assert self.store.integrity_ok(), f"integrity_check failed after kill {report.kills}"
        report.integrity_ok += 1
        assert jobs.reap(self.store) == [self.run_id]
        assert jobs.get_run(self.store, self.run_id)["status"] == "interrupted"
        # A half-written folder from this process (an older one waits for the next save).
        report.mid_save += any(p.stat().st_mtime >= launched for p in self._partial_folders())

        newest = latest_complete(self.run_dir)
        assert newest is not None, "a complete checkpoint vanished"
        saved = int(newest.name.split("-")[1])
        assert saved >= self.saved, f"the checkpoint went back from {self.saved} to {saved}"
        self._check_nothing_finished_was_lost(saved)
        self._check_resumed_from(self.saved, launched)
        report.steps_redone += max(0, self._max_step(written_after=launched) - saved)
        self.saved = saved

    def _check_nothing_finished_was_lost(self, saved: int) -> None:
        """A metrics row for step m means step m-1 finished, its saves included: the newest
        checkpoint must be at least the last epoch end and checkpoint interval before m."""
        run = jobs.get_run(self.store, self.run_id)
        per_epoch = run["total_steps"] // self.cfg.training.epochs
        every = self.cfg.training.checkpoint_every
        done = self._max_step() - 1
        due = max((done // per_epoch) * per_epoch, (done // every) * every if every else 0)
        if saved < due:
            self.report.checkpointed_steps_lost += due - saved
        assert saved >= due, f"finished work lost: step {due} was saved, resume is at {saved}"

    def _check_resumed_from(self, expected: int, launched: float) -> None:
        """If the killed process got as far as training, it started from the checkpoint the
        previous kill left as newest, and its first new row is the step after it."""
        first = self.store.db.execute("SELECT min(step) FROM metrics WHERE run_id = ? AND "
                                      "time > ?", [self.run_id, launched]).fetchone()[0]
        if not launched or first is None:
            return
        assert first == expected + 1, f"resumed at step {first}, checkpoint was {expected}"
        log = (self.run_dir / jobs.LOG_FILE).read_text(encoding="utf-8", errors="replace")
        resumed = _RESUMED.findall(log)
        assert resumed and resumed[-1] == (checkpoint_name(expected), str(expected)), resumed[-3:]
