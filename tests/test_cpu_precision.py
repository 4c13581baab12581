"""bf16 autocast on a CPU: chosen only where this CPU's calibration says bf16 matmuls are
at least BF16_GAIN times as fast and the model is not tiny; applied around the loss by the
loop itself, so runs of one process may differ in precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from workbench.core.config import RunConfig
from workbench.core.train import calibration
from workbench.core.train.loop import TrainLoop, causal_lm_loss
from tests.test_head_loss import batch, model_for


def _rates(monkeypatch: pytest.MonkeyPatch, fp32: float, bf16: float) -> list[str]:
    measured: list[str] = []

    def measure(dtype: str, sizes: tuple[int, ...] = calibration.SIZES, repeats: int = 5,
                **_: float) -> tuple[float, list[int]]:
        measured.append(dtype)
        return bf16 if dtype == "bf16" else fp32, list(sizes)

    monkeypatch.setattr(calibration, "measure", measure)
    return measured


@pytest.mark.parametrize("fp32,bf16,expected", [(150e9, 420e9, "bf16"),  # AVX512-BF16
                                                 (150e9, 200e9, "no"),  # a small gain
                                                 (150e9, 40e9, "no")])  # emulated
def test_bf16_only_where_this_cpu_multiplies_it_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     fp32: float, bf16: float, expected: str) -> None:
    measured = _rates(monkeypatch, fp32, bf16)
    path = tmp_path / "cpu-peak.json"
    choice, why = calibration.cpu_autocast(135_000_000, path)
    assert choice == expected and f"{bf16 / fp32:.1f}x" in why
    assert sorted(measured) == ["bf16", "fp32"]
    calibration.cpu_autocast(135_000_000, path)
    assert len(measured) == 2  # kept in the workspace's calibration, not measured again


def test_emulated_bf16_is_timed_at_the_smallest_size_only(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Where bf16 is emulated a 2048² matmul takes seconds (14 s on a CPU without AVX512), so
    its calibration stops after the first size that runs far below the fp32 rate."""
    timed: list[tuple[str, int]] = []

    def rate(device: str, dtype: str, size: int, repeats: int = 3) -> float:
        timed.append((dtype, size))
        return 1.2e9 if dtype == "bf16" else 139e9

    monkeypatch.setattr(calibration, "measure_peak_flops", rate)
    path = tmp_path / "cpu-peak.json"
    choice, why = calibration.cpu_autocast(135_000_000, path)
    assert choice == "no" and "0.0x" in why
    assert timed == [("fp32", 512), ("fp32", 1024), ("fp32", 2048), ("bf16", 512)]
    entries = json.loads(path.read_text())
    assert [e["sizes"] for e in entries.values()] == [[512, 1024, 2048], [512]]


def test_native_bf16_is_timed_at_every_size(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    timed: list[int] = []

    def rate(device: str, dtype: str, size: int, repeats: int = 3) -> float:
        timed.append(size)
        return (300e9 if dtype == "bf16" else 139e9) * size / 2048  # small sizes run below peak

    monkeypatch.setattr(calibration, "measure_peak_flops", rate)
    choice, _ = calibration.cpu_autocast(135_000_000, tmp_path / "cpu-peak.json")
    assert choice == "bf16" and timed == [512, 1024, 2048] * 2


def test_a_tiny_model_stays_fp32_without_measuring(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    measured = _rates(monkeypatch, 150e9, 420e9)
    choice, why = calibration.cpu_autocast(4_700_000, tmp_path / "cpu-peak.json")
    assert choice == "no" and "5M" in why and not measured


def test_the_loop_autocasts_the_loss_to_bf16_and_runs_of_one_process_may_differ(tiny_llama) -> None:
    autocast: list[bool] = []

    def loss(model, rows, pad_id, device):  # noqa: ANN001, ANN202
        autocast.append(torch.is_autocast_enabled("cpu")
                        and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return causal_lm_loss(model, rows, pad_id, device)

    for precision in ("bf16", "no", "bf16"):  # accelerate's per-process state would refuse
        cfg = RunConfig().with_values({"training.mixed_precision": precision,
                                       "training.micro_batch_size": 4, "training.epochs": 1,
                                       "training.probe_every": 0})
        model = model_for(tiny_llama, "lora", target_modules=["down_proj"], lora_r=4)
        loop = TrainLoop(model, batch(), cfg.training, pad_id=0, device="cpu", loss=loss)
        assert loop.compute_dtype == ("bf16" if precision == "bf16" else None)
        result = loop.run()
        assert result.steps == 1 and torch.isfinite(torch.tensor(result.final_loss))
        assert autocast.pop() == (precision == "bf16")
        # the trained weights and their optimizer stay fp32
        assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
