"""Crash safety, proven by killing real training workers: random SIGKILLs (some inside a
checkpoint save) with a resume after each, SIGTERM's checkpoint within the grace period, and
dead workers recognised even when their process number is reused.

The default suite kills a handful of times; `pytest -m slow tests/test_kill_soak.py -s`
runs the soak of 100 kills and prints its figures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kill_soak import SLOW_WORKER, KillSoak, SoakReport
from workbench.core.store import Store
from workbench.core.train import control, jobs, run as run_module
from workbench.core.train.checkpoint import checkpoints_dir, latest_complete
from workbench.core.workspace import Workspace

SEED = 20261124
SLOW_SAVE_DELAY_S = "0.05"


@pytest.fixture
def slow_saves(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers whose checkpoint saves take 0.3 s, so kills and stops can land inside one."""
    monkeypatch.setattr(control, "WORKER_COMMAND", SLOW_WORKER)
    monkeypatch.setenv("SLOW_SAVE_DELAY_S", SLOW_SAVE_DELAY_S)


def _soak(bench, kills: int, epochs: int) -> SoakReport:
    ws, store, config = bench
    # A checkpoint every 3 steps and at each epoch end (4 steps): saves are frequent targets.
    cfg = config(**{"training.epochs": epochs, "training.checkpoint_every": 3,
                    "training.checkpoint_each_epoch": True})
    soak = KillSoak(store, ws, cfg, seed=SEED)
    report = soak.run(kills)
    print(f"\nkill soak (seed {SEED}): {report.line()}")
    _check_finished_like_an_uninterrupted_run(store, ws, soak.run_id, cfg)
    return report


def _check_finished_like_an_uninterrupted_run(store: Store, ws: Workspace, run_id: int,
                                              cfg) -> None:
    """Every step has exactly one metrics row, and the adapter equals that of the same run
    trained without a single kill: resume restores weights, optimizer, schedule, RNG and the
    data order exactly."""
    run = jobs.get_run(store, run_id)
    assert run["status"] == "completed" and run["resumes"] >= 1
    steps = [r[0] for r in store.db.execute(
        "SELECT step FROM metrics WHERE run_id = ? ORDER BY step", [run_id])]
    assert steps == list(range(1, run["total_steps"] + 1))
    reference = run_module.create_run(store, ws, cfg)
    assert run_module.execute_run(store, ws, reference).status == "completed"
    killed = load_file(ws.run_dir(run_id) / "adapter" / "adapter_model.safetensors")
    clean = load_file(ws.run_dir(reference) / "adapter" / "adapter_model.safetensors")
    assert killed.keys() == clean.keys()
    for name in clean:
        torch.testing.assert_close(killed[name], clean[name], rtol=1e-5, atol=1e-6, msg=name)


def test_a_handful_of_random_kills_lose_no_finished_work(bench, slow_saves) -> None:
    report = _soak(bench, kills=4, epochs=15)
    assert report.kills == 4 and report.integrity_ok == 4
    assert report.checkpointed_steps_lost == 0


@pytest.mark.slow
def test_soak_of_a_hundred_random_kills(bench, slow_saves) -> None:
    report = _soak(bench, kills=100, epochs=150)
    assert report.kills == 100 and report.integrity_ok == 100
    assert report.checkpointed_steps_lost == 0
    # Each kind of moment was hit, and some kills really landed inside a save.
    assert min(report.by_kind.values()) >= 15 and report.mid_save >= 10


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.005)


def _saved_step(run_dir: Path) -> int:
    newest = latest_complete(run_dir)
    return int(newest.name.split("-")[1]) if newest else 0


@pytest.mark.parametrize("moment", ["between steps", "inside a save"])
def test_sigterm_leaves_a_checkpoint_within_the_grace_period(bench, slow_saves, moment) -> None:
    ws, store, config = bench
    inside_a_save = moment == "inside a save"
    # Between steps: no periodic checkpoints, so only the stop can write the one we wait for.
    cfg = config(**{"training.epochs": 100, "training.checkpoint_every": 3 if inside_a_save else 0,
                    "training.checkpoint_each_epoch": inside_a_save, "training.probe_every": 5})
    run_id = control.start_run(store, ws, cfg)
    run_dir = ws.run_dir(run_id)

    def trained() -> int:
        return store.db.execute("SELECT coalesce(max(step), 0) FROM metrics WHERE run_id = ?",
                                [run_id]).fetchone()[0]

    _wait_for(lambda: trained() >= 7, "seventh step")
    if inside_a_save:
        _wait_for(lambda: any(checkpoints_dir(run_dir).glob(".step-*.partial")), "save")
    at_signal = trained()
    signalled = time.monotonic()
    os.kill(jobs.get_run(store, run_id)["pid"], signal.SIGTERM)
    _wait_for(lambda: _saved_step(run_dir) >= at_signal, "checkpoint after SIGTERM",
              timeout=jobs.STOP_GRACE_S)
    took = time.monotonic() - signalled
    assert control.wait(run_id, timeout=120) == 0
    run = jobs.get_run(store, run_id)
    assert run["status"] == "stopped"
    # The checkpoint is of the step the worker stopped at, and nothing half-written is left.
    assert _saved_step(run_dir) == trained()
    assert not list(checkpoints_dir(run_dir).glob(".step-*"))
    print(f"\nSIGTERM {moment}: checkpoint of step {_saved_step(run_dir)} after {took:.2f} s")


def test_a_dead_workers_reused_pid_does_not_keep_its_run_running(bench) -> None:
    """After a crash or reboot another process may get the dead worker's number; a process
    started after the run's last heartbeat cannot be its worker."""
    ws, store, config = bench
    run_id = run_module.create_run(store, ws, config())
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with store.write() as db:
            db["runs"].update(run_id, {"status": "running", "pid": stranger.pid, "device": "cpu",
                                       "heartbeat_at": time.time() - 60})
        control.stop_run(store, run_id)  # before any reap: the stranger gets no SIGTERM
        assert stranger.poll() is None
        assert jobs.busy_with(store, "cpu") is None
        assert jobs.get_run(store, run_id)["status"] == "interrupted"
        # The same process with a heartbeat after its start is taken for the worker.
        with store.write() as db:
            db["runs"].update(run_id, {"status": "running", "heartbeat_at": time.time()})
        assert jobs.reap(store) == [] and jobs.busy_with(store, "cpu")["id"] == run_id
    finally:
        stranger.kill()
        stranger.wait()


def test_each_epoch_end_is_checkpointed_but_not_the_last_step(bench, monkeypatch) -> None:
    ws, store, config = bench
    saved: list[int] = []
    real_save = run_module.TrainLoop.save

    def spy(loop, run_dir, extra):
        saved.append(loop.step)
        return real_save(loop, run_dir, extra)

    monkeypatch.setattr(run_module.TrainLoop, "save", spy)
    cfg = config(**{"training.epochs": 3, "training.checkpoint_each_epoch": True})
    run_id = run_module.create_run(store, ws, cfg)
    summary = run_module.execute_run(store, ws, run_id)
    per_epoch = summary.steps // 3
    assert per_epoch > 1 and saved == [per_epoch, 2 * per_epoch]
