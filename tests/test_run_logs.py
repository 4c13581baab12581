"""A run's log is for people: no library warnings, no raw dicts, no tracebacks, "completed"
once. What people need not read goes to the run's debug log, which a bug report attaches."""

from __future__ import annotations

import warnings

import pytest

from workbench.core.train import control, jobs, run as run_module
from workbench.core.train.telemetry import Telemetry


def test_a_worker_runs_log_reads_as_words(bench, monkeypatch) -> None:
    ws, store, config = bench
    run_id = control.start_run(store, ws, config(**{"training.epochs": 1}))
    assert control.wait(run_id, timeout=240) == 0, jobs.log_tail(ws.run_dir(run_id))
    people = (ws.run_dir(run_id) / jobs.LOG_FILE).read_text()
    details = (ws.run_dir(run_id) / jobs.DEBUG_FILE).read_text()
    for noise in ("Warning", "warnings.warn", "{", "gemm_4bit", "Traceback"):
        assert noise not in people, f"{noise!r} in the people's log:\n{people}"
    assert people.count("completed") == 1, people
    assert "MFU against" in people and "parameters trained" in people
    assert "telemetry {" in details  # the numbers behind the line above


def test_library_warnings_and_tracebacks_go_to_the_debug_log(bench, monkeypatch) -> None:
    ws, store, config = bench
    summary = Telemetry.summary

    def noisy(self: Telemetry) -> str:
        warnings.warn("`is_gradient_checkpointing` is deprecated", FutureWarning, stacklevel=1)
        return summary(self)

    monkeypatch.setattr(Telemetry, "summary", noisy)
    run_id = run_module.create_run(store, ws, config(**{"training.epochs": 1}))
    run_module.execute_run(store, ws, run_id)
    people = (ws.run_dir(run_id) / jobs.LOG_FILE).read_text()
    details = (ws.run_dir(run_id) / jobs.DEBUG_FILE).read_text()
    assert "deprecated" not in people and "FutureWarning" in details

    def broken(self: Telemetry) -> str:
        raise ValueError("a bug deep inside")

    monkeypatch.setattr(Telemetry, "summary", broken)
    failed = run_module.create_run(store, ws, config(**{"training.epochs": 1}))
    with pytest.raises(ValueError, match="a bug deep inside"):
        run_module.execute_run(store, ws, failed)
    people = (ws.run_dir(failed) / jobs.LOG_FILE).read_text()
    details = (ws.run_dir(failed) / jobs.DEBUG_FILE).read_text()
    assert f"run {failed} failed: ValueError: a bug deep inside (details in debug.log)" in people
    assert "Traceback" not in people and "Traceback" in details
    assert jobs.get_run(store, failed)["status"] == "failed"
    with warnings.catch_warnings(record=True) as seen:  # the capture ended with the run
        warnings.simplefilter("always")
        warnings.warn("after the run", UserWarning, stacklevel=1)
    assert len(seen) == 1
