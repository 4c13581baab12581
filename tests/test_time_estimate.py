"""The pre-flight time estimate: which throughput it uses, and when it warns."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.core.config import RunConfig
from workbench.core.device import DeviceInfo
from workbench.core.estimate import set_tokens
from workbench.core.models import load_tokenizer
from workbench.core.store import now
from workbench.core.time_estimate import duration_text, estimate_time, time_for_run

CPU = DeviceInfo(kind="cpu", name="test CPU", total_memory=16 * 2**30, cpu_cores=2)
GPU = DeviceInfo(kind="cuda", name="NVIDIA GeForce RTX 4090", total_memory=24 * 2**30)
SHAPE = dict(trained_params=2_000_000, matmul_params=130_000_000, n_layers=30, attn_dim=576)


@pytest.fixture(autouse=True)
def _fixed_cpu_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.core import time_estimate

    monkeypatch.setattr(time_estimate, "_cpu_peak", lambda: 100e9)


def _cfg(**values: Any) -> RunConfig:
    return RunConfig().with_values({"training.epochs": 10, "training.micro_batch_size": 8,
                                    **values})


def test_the_flops_model_scales_with_tokens_precision_and_device() -> None:
    lora = estimate_time(_cfg(), device=CPU, examples=800, tokens=40_000, **SHAPE)
    assert lora.steps == 1000 and lora.epochs == 10
    assert lora.total_seconds == pytest.approx(10 * lora.epoch_seconds)
    assert "measured matmul peak" in lora.source
    qlora = estimate_time(_cfg(**{"method.name": "qlora"}), device=CPU, examples=800,
                          tokens=40_000, **SHAPE)
    assert qlora.total_seconds > 3 * lora.total_seconds and "4-bit" in qlora.source
    gpu = estimate_time(_cfg(), device=GPU, examples=800, tokens=40_000, **SHAPE)
    assert gpu.total_seconds < lora.total_seconds / 100 and "RTX 4090" in gpu.source
    twice = estimate_time(_cfg(), device=CPU, examples=1600, tokens=80_000, **SHAPE)
    assert twice.total_seconds == pytest.approx(2 * lora.total_seconds, rel=0.01)


def test_hours_are_a_warning_that_says_what_to_change() -> None:
    slow = estimate_time(_cfg(**{"method.name": "qlora", "training.epochs": 40}), device=CPU,
                         examples=4000, tokens=400_000, **SHAPE)
    assert slow.too_long and " h " in slow.line()
    assert "LoRA instead of 4-bit on a CPU" in slow.line()
    quick = estimate_time(_cfg(), device=CPU, examples=16, tokens=800, **SHAPE)
    assert not quick.too_long and "that is long" not in quick.line()


def test_duration_text() -> None:
    assert duration_text(12.4) == "12 s" and duration_text(600) == "10 min"
    assert duration_text(3 * 3600 + 5 * 60) == "3 h 05 min"


def test_earlier_runs_of_the_same_model_method_and_device_are_preferred(bench) -> None:
    """A workspace that trained this model before knows its real speed."""
    ws, store, config = bench
    cfg = config()
    tokens = set_tokens(store, cfg, load_tokenizer(cfg.model))
    assumed = time_for_run(store, cfg, tokens, device=CPU)
    assert "assumed" in assumed.source
    with store.write() as db:
        run_id = db["runs"].insert({"name": "old", "status": "completed", "method": "lora",
                                    "model": cfg.model.name_or_path, "config_yaml": "",
                                    "device": "cpu", "created_at": now()}).last_pk
        for step in range(1, 12):
            db["metrics"].insert({"run_id": run_id, "step": step, "time": now(),
                                  "tokens_per_s": 1000.0 if step > 5 else 1.0})
    measured = time_for_run(store, cfg, tokens, device=CPU)
    assert measured.tokens_per_s == 1000.0 and "measured by earlier runs" in measured.source
    assert measured.epoch_seconds == pytest.approx(tokens.tokens / 1000.0)
    other = time_for_run(store, config(**{"method.name": "dora"}), tokens, device=CPU)
    assert "assumed" in other.source


@pytest.mark.parametrize("mixed,bf16,expected", [("auto", 420e9, 420e9),  # AVX512-BF16
                                                 ("auto", 200e9, None),  # bf16 not fast enough
                                                 ("no", 420e9, None)])  # fp32 asked for
def test_a_cpu_run_under_bf16_autocast_is_timed_at_the_bf16_peak(
        tmp_path, monkeypatch: pytest.MonkeyPatch, mixed: str, bf16: float,
        expected: float | None) -> None:
    from types import SimpleNamespace

    from workbench.core import time_estimate
    from workbench.core.train import calibration

    monkeypatch.setattr(calibration, "measure",
                        lambda dtype, *a, **k: (bf16 if dtype == "bf16" else 150e9, [512]))
    store = SimpleNamespace(path=tmp_path / "workbench.db")
    cfg = _cfg(**{"training.mixed_precision": mixed})
    peak = time_estimate._cpu_bf16_peak(store, cfg, CPU, 135_000_000)
    if expected is None:
        assert peak is None
        return
    assert peak == (expected, "this CPU's calibrated bf16 matmul peak",
                    time_estimate.CPU_BF16_EFFICIENCY)
    assert time_estimate._cpu_bf16_peak(store, cfg, GPU, 135_000_000) is None
    fp32 = estimate_time(cfg, device=CPU, examples=800, tokens=40_000, **SHAPE)
    timed = estimate_time(cfg, device=CPU, examples=800, tokens=40_000, **SHAPE, peak=peak)
    assert "bf16" in timed.source and "bf16" not in fp32.source
    assert timed.tokens_per_s / fp32.tokens_per_s == pytest.approx(
        420e9 * time_estimate.CPU_BF16_EFFICIENCY / (100e9 * 0.35))
