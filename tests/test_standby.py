"""The spare worker the app keeps ready: a run handed to it trains exactly like one started in
a fresh process, a replacement follows, and the spare never outlives the app."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest

from workbench.core.train import control, jobs, standby


@pytest.fixture
def spare(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(standby, "REPLACE_AFTER_S", 0.0)
    standby.enable()
    assert standby.wait_ready(120), "the spare worker never finished its imports"
    yield
    standby.disable()


def test_a_run_handed_to_the_spare_trains_and_logs_like_a_fresh_worker(bench, spare) -> None:
    ws, store, config = bench
    waiting = standby._spare
    assert waiting is not None
    run_id = control.start_run(store, ws, config(**{"training.epochs": 2}))
    assert jobs.get_run(store, run_id)["pid"] == waiting.pid  # no new process was started
    assert control.wait(run_id, timeout=180) == 0, jobs.log_tail(ws.run_dir(run_id))
    run = jobs.get_run(store, run_id)
    assert run["status"] == "completed" and run["pid"] is None
    steps = [r[0] for r in store.db.execute("SELECT step FROM metrics WHERE run_id = ? "
                                            "ORDER BY step", [run_id])]
    assert steps == list(range(1, run["total_steps"] + 1))
    log = (ws.run_dir(run_id) / jobs.LOG_FILE).read_text()
    assert "loading" in log and f"run {run_id} completed" in log  # its output went to the log
    assert (ws.run_dir(run_id) / "adapter" / "adapter_model.safetensors").exists()
    # A replacement is ready for the next run, and it is a different process.
    assert standby.wait_ready(120) and standby._spare is not None
    assert standby._spare.pid != waiting.pid


def test_the_spare_exits_when_the_app_lets_it_go(spare) -> None:
    waiting = standby._spare
    assert waiting is not None and waiting.poll() is None
    standby.disable()
    assert waiting.wait(timeout=30) == 0


def test_a_spare_that_died_is_replaced(tmp_path, spare) -> None:
    dead = standby._spare
    assert dead is not None
    dead.kill()
    dead.wait(timeout=30)
    assert standby.take(["--help"], tmp_path / "log") is None  # the caller starts a fresh one
    assert standby.wait_ready(120) and standby._spare is not None
    assert standby._spare.pid != dead.pid


def test_without_a_spare_a_run_starts_a_fresh_worker(bench) -> None:
    standby.disable()
    ws, store, config = bench
    run_id = control.start_run(store, ws, config(**{"training.epochs": 1}))
    assert control.wait(run_id, timeout=180) == 0
    assert jobs.get_run(store, run_id)["status"] == "completed"


def test_serve_signals_ready_and_runs_nothing_on_an_empty_pipe() -> None:
    out = io.BytesIO()
    ran: list[list[str]] = []
    started = time.monotonic()
    assert standby.serve(lambda argv: ran.append(argv) or 0, stdin=io.BytesIO(b""),
                         stdout=out) == 0
    assert out.getvalue() == standby.READY and ran == []
    assert time.monotonic() - started < 30
