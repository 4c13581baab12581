"""The training engine's promises: background worker, telemetry rows, live probe rows,
stop/resume, kill -9, device lock, NaN, out-of-memory retry, crashes, and checkpoints
interrupted mid-write."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from conftest import FACTS

from workbench.core.errors import WorkbenchError
from workbench.core.store import Store
from workbench.core.train import control, jobs, run as run_module
from workbench.core.train.checkpoint import latest_complete
from workbench.core.methods.registry import REGISTRY
from workbench.core.models import load_model
from workbench.core.train.loop import causal_lm_loss
from workbench.core.train.outputs import load_outputs

def _shown(store: Store, run_id: int, *expected: str) -> str:
    """What the Train tab says about the run: plain words with advice, never a traceback."""
    from workbench.ui import run_view

    feed, _ = run_view.poll(store, None, run_id)
    message = run_view.message_markdown(feed)
    for text in expected:
        assert text in message, message
    assert "Traceback" not in message and "File \"" not in message
    assert run_view.progress_html(feed) and len(run_view.figures(feed)) == 5
    return message


def _metrics(store: Store, run_id: int) -> list[dict]:
    return list(store.db.query("SELECT * FROM metrics WHERE run_id = ? ORDER BY step", [run_id]))


def _wait_for_step(store: Store, run_id: int, step: int, timeout: float = 120,
                   written_after: float = 0.0) -> int:
    """Wait until the run has a metrics row for `step` or later written after the given time
    (rows of a killed process stay until its resumed successor replaces them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = store.db.execute("SELECT max(step) FROM metrics WHERE run_id = ? AND time > ?",
                               [run_id, written_after]).fetchone()
        if row[0] and row[0] >= step:
            return int(row[0])
        assert jobs.get_run(store, run_id)["status"] in jobs.ACTIVE, jobs.get_run(store, run_id)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not reach step {step}")


def test_lora_run_reaches_full_efficacy_in_its_probe_rows(bench) -> None:
    ws, store, config = bench
    cfg = config(**{"method.lora_r": 16, "training.epochs": 60, "training.micro_batch_size": 16,
                    "training.probe_every": 20, "data.include_statements": False})
    run_id = run_module.create_run(store, ws, cfg)
    summary = run_module.execute_run(store, ws, run_id)
    assert summary.status == "completed" and summary.scores["efficacy"] == 1.0
    final = store.db.execute_returning_dicts(
        "SELECT * FROM probe_results WHERE run_id = ? AND step = ? AND metric = 'efficacy'",
        [run_id, summary.steps])
    assert len(final) == len(FACTS) and all(r["correct"] for r in final)
    steps = {r["step"] for r in store.db.query(
        "SELECT DISTINCT step FROM probe_results WHERE run_id = ?", [run_id])}
    assert {20, 40, summary.steps} <= steps  # live probes, not only the end
    held = store.db.execute("SELECT count(*) FROM probe_results WHERE run_id = ? AND "
                            "metric = 'generalization'", [run_id]).fetchone()[0]
    assert held >= len(FACTS)


def test_background_worker_writes_every_telemetry_field(bench) -> None:
    ws, store, config = bench
    run_id = control.start_run(store, ws, config(**{"training.epochs": 3}))
    assert control.wait(run_id, timeout=180) == 0, jobs.log_tail(ws.run_dir(run_id))
    run = jobs.get_run(store, run_id)
    assert run["status"] == "completed" and run["pid"] is None
    rows = _metrics(store, run_id)
    assert [r["step"] for r in rows] == list(range(1, run["total_steps"] + 1))
    cpu_cannot_report = {"mem_reserved", "gpu_util", "power_w"}  # no such thing on a CPU
    for r in rows:
        for column in run_module.METRIC_COLUMNS + ("grad_accum", "mem_capacity"):
            assert (r[column] is None) == (column in cpu_cannot_report), (column, r)
        assert 0 < r["mfu"] < 1 and r["mem_allocated"] <= r["mem_capacity"]
    log = (ws.run_dir(run_id) / jobs.LOG_FILE).read_text()
    assert "loading" in log and f"run {run_id} completed" in log
    assert (ws.run_dir(run_id) / "adapter" / "adapter_model.safetensors").exists()


def test_kill_9_then_resume_continues_from_the_last_complete_checkpoint(bench) -> None:
    ws, store, config = bench
    cfg = config(**{"training.epochs": 100, "training.checkpoint_every": 5})
    run_id = control.start_run(store, ws, cfg)
    reached = _wait_for_step(store, run_id, 12)
    with pytest.raises(WorkbenchError, match="busy training run"):  # one job per device
        control.start_run(store, ws, cfg)
    os.kill(jobs.get_run(store, run_id)["pid"], signal.SIGKILL)
    control.wait(run_id, timeout=30)
    killed_at = time.time()
    assert jobs.reap(store) == [run_id]
    assert jobs.get_run(store, run_id)["status"] == "interrupted"
    _shown(store, run_id, "was interrupted", "Resume continues from the last complete checkpoint")
    last = store.db.execute("SELECT max(step) FROM metrics WHERE run_id = ?", [run_id]).fetchone()[0]
    checkpoint = latest_complete(ws.run_dir(run_id))
    saved = int(checkpoint.name.split("-")[1])
    # At most the steps since the last complete checkpoint are lost (one in flight may have
    # been mid-save when the kill came, hence < 2 intervals).
    assert saved % 5 == 0 and reached - 5 <= saved <= last and last - saved < 10

    control.resume_run(store, ws, run_id)
    _wait_for_step(store, run_id, saved + 3, written_after=killed_at)
    control.stop_run(store, run_id)
    assert control.wait(run_id, timeout=120) == 0
    run = jobs.get_run(store, run_id)
    assert run["status"] == "stopped" and run["resumes"] == 1
    _shown(store, run_id, "was stopped at step")
    log = (ws.run_dir(run_id) / jobs.LOG_FILE).read_text()
    assert f"resumed from {checkpoint.name} (step {saved})" in log
    rows = _metrics(store, run_id)
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))
    # Steps after the checkpoint were trained again by the resumed process.
    assert all(r["time"] > killed_at for r in rows if r["step"] > saved)
    assert all(r["time"] < killed_at for r in rows if r["step"] <= saved)


def test_stop_saves_and_a_half_written_checkpoint_is_never_resumed(bench) -> None:
    ws, store, config = bench
    run_id = control.start_run(store, ws, config(**{"training.epochs": 100}))
    _wait_for_step(store, run_id, 3)
    control.stop_run(store, run_id)
    assert control.wait(run_id, timeout=120) == 0
    run = jobs.get_run(store, run_id)
    last = _metrics(store, run_id)[-1]["step"]
    assert run["status"] == "stopped"
    good = latest_complete(ws.run_dir(run_id))
    assert good is not None and good.name == f"step-{last:08d}"
    assert (ws.run_dir(run_id) / "adapter" / "adapter_model.safetensors").exists()

    # A newer checkpoint cut off mid-write: files present, but no COMPLETE manifest.
    torn = good.parent / f"step-{last + 50:08d}"
    shutil.copytree(good, torn)
    (torn / "COMPLETE").unlink()
    next(torn.glob("*.safetensors")).write_bytes(b"\0" * 10)
    assert latest_complete(ws.run_dir(run_id)) == good
    summary = run_module.execute_run(store, ws, run_id, resume=True)
    assert summary.status == "completed"
    log = (ws.run_dir(run_id) / jobs.LOG_FILE).read_text()
    assert f"resumed from {good.name} (step {last})" in log


def _with_loss(monkeypatch, loss) -> None:
    real = run_module.get_method
    monkeypatch.setattr(run_module, "get_method",
                        lambda name: dataclasses.replace(real(name), loss=lambda settings: loss))


def test_a_full_disk_fails_the_run_clearly_and_resume_uses_the_intact_checkpoint(
        bench, monkeypatch) -> None:
    import errno

    from workbench.core.train import checkpoint as ckpt

    ws, store, config = bench
    cfg = config(**{"training.epochs": 6, "training.checkpoint_every": 3})
    run_id = run_module.create_run(store, ws, cfg)
    real, saves = ckpt._save_tensors, []

    def fill_the_disk(tensors: dict, path) -> None:
        if path.name == ckpt.TRAINABLE:
            saves.append(path)
            if len(saves) == 2:  # the second checkpoint: half a file, then no space
                path.write_bytes(b"\0" * 100)
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(tensors, path)

    monkeypatch.setattr(ckpt, "_save_tensors", fill_the_disk)
    with pytest.raises(OSError):
        run_module.execute_run(store, ws, run_id)
    run = jobs.get_run(store, run_id)
    assert run["status"] == "failed" and "No space left on device" in run["error"]
    _shown(store, run_id, "the disk is full", "press Resume")
    assert latest_complete(ws.run_dir(run_id)).name == "step-00000003"
    monkeypatch.setattr(ckpt, "_save_tensors", real)  # space freed
    summary = run_module.execute_run(store, ws, run_id, resume=True)
    assert summary.status == "completed"
    log = (ws.run_dir(run_id) / jobs.LOG_FILE).read_text()
    assert "resumed from step-00000003 (step 3)" in log


def test_nan_loss_marks_the_run_diverged(bench, monkeypatch) -> None:
    ws, store, config = bench
    calls = []

    def poisoned(model, batch, pad_id, device):
        calls.append(1)
        loss = causal_lm_loss(model, batch, pad_id, device)
        return loss * float("nan") if len(calls) >= 3 else loss

    _with_loss(monkeypatch, poisoned)
    run_id = run_module.create_run(store, ws, config(**{"training.epochs": 5}))
    with pytest.raises(WorkbenchError, match="diverged"):
        run_module.execute_run(store, ws, run_id)
    run = jobs.get_run(store, run_id)
    assert run["status"] == "diverged" and "loss became nan" in run["error"]
    assert "learning_rate" in run["error"]
    _shown(store, run_id, "diverged", "loss became nan", "Lower training.learning_rate")


def test_out_of_memory_halves_the_micro_batch_with_the_same_effective_batch(bench, monkeypatch) -> None:
    ws, store, config = bench
    cfg = config(**{"training.epochs": 2, "training.micro_batch_size": 8})
    plain = run_module.create_run(store, ws, cfg)
    run_module.execute_run(store, ws, plain)

    def small_memory(model, batch, pad_id, device):
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return causal_lm_loss(model, batch, pad_id, device)

    _with_loss(monkeypatch, small_memory)
    retried = run_module.create_run(store, ws, cfg)
    run_module.execute_run(store, ws, retried)
    a, b = _metrics(store, plain), _metrics(store, retried)
    assert [r["micro_batch_size"] for r in b] == [2] * len(a)
    assert [r["grad_accum"] for r in b] == [4] * len(a)
    assert [r["examples"] for r in a] == [r["examples"] for r in b]
    # Same data and effective batch: the same losses, up to float summation order.
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-4)


def test_out_of_memory_at_micro_batch_one_says_what_to_change(bench, monkeypatch) -> None:
    ws, store, config = bench

    def no_memory(model, batch, pad_id, device):
        raise torch.OutOfMemoryError("CUDA out of memory")

    _with_loss(monkeypatch, no_memory)
    run_id = run_module.create_run(store, ws, config())
    with pytest.raises(WorkbenchError, match="micro-batch of 1"):
        run_module.execute_run(store, ws, run_id)
    run = jobs.get_run(store, run_id)
    assert run["status"] == "failed" and "gradient_checkpointing" in run["error"]
    _shown(store, run_id, "ran out of memory", "memory estimate shows which of these fits")


def test_a_crash_fails_the_run_and_keeps_the_last_log_lines(bench, monkeypatch) -> None:
    ws, store, config = bench

    def broken(model, batch, pad_id, device):
        raise RuntimeError("kernel exploded")

    _with_loss(monkeypatch, broken)
    run_id = run_module.create_run(store, ws, config())
    with pytest.raises(RuntimeError):
        run_module.execute_run(store, ws, run_id)
    run = jobs.get_run(store, run_id)
    assert run["status"] == "failed" and "kernel exploded" in run["error"]
    # The log people read says it in one line; the traceback is in the run's debug log.
    assert f"run {run_id} failed: RuntimeError: kernel exploded (details in debug.log)" in \
        run["log_tail"]
    assert "Traceback" not in run["log_tail"]
    assert "Traceback" in (ws.run_dir(run_id) / jobs.DEBUG_FILE).read_text()
    _shown(store, run_id, "failed", "RuntimeError: kernel exploded", "last log lines")


def test_prompt_distillation_and_replay_runs_complete(bench, monkeypatch) -> None:
    ws, store, config = bench
    run_id = run_module.create_run(store, ws, config(**{"method.name": "prompt_distillation",
                                                        "training.epochs": 2}))
    summary = run_module.execute_run(store, ws, run_id)
    assert summary.status == "completed" and summary.steps > 0
    assert (Path(summary.output_dir) / "adapter" / "adapter_config.json").exists()


def test_a_second_run_on_a_busy_device_fails_clearly(bench) -> None:
    ws, store, config = bench
    first = run_module.create_run(store, ws, config())
    with store.write() as db:  # a live process (this one) training on the CPU
        db["runs"].update(first, {"status": "running", "pid": os.getpid(), "device": "cpu"})
    second = run_module.create_run(store, ws, config())
    with pytest.raises(WorkbenchError, match=f"cpu is busy training run {first}"):
        run_module.execute_run(store, ws, second)
    assert jobs.get_run(store, second)["status"] == "failed"
    assert jobs.reap(store) == []  # the first one's process is alive: not interrupted


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_saves_outputs_that_reload_and_change_the_model(name, bench) -> None:
    """QLoRA included: on CPU its base is NF4 through bitsandbytes."""
    ws, store, config = bench
    cfg = config(**{"method.name": name, "method.lora_r": 4, "training.epochs": 2,
                    "training.learning_rate": 1e-2})
    run_id = run_module.create_run(store, ws, cfg)
    assert run_module.execute_run(store, ws, run_id).status == "completed"
    tuned = load_outputs(ws.run_dir(run_id))
    base = load_model(cfg.model, quantization=cfg.effective_quantization)
    ids = base.tokenizer("Where was Ada Lovelace born?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(base.model(ids).logits, tuned.model(ids).logits, atol=1e-4)
