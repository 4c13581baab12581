"""The recommended recipe: a function of model size, set size and device."""

from __future__ import annotations

from workbench.core.config import RunConfig
from workbench.core.device import DeviceInfo
from workbench.core.recipe import Situation, apply, recommend, situation_for

GIB = 2**30


def _values(s: Situation) -> dict[str, object]:
    return {c.path: c.value for c in recommend(s)}


def test_every_choice_has_a_reason_and_applies_as_a_valid_config() -> None:
    s = Situation(params=135_000_000, facts=90, examples_per_fact=12, device="cpu",
                  memory=16 * GIB)
    choices = recommend(s)
    assert all(c.why and len(c.why) < 200 for c in choices)
    assert len({c.path for c in choices}) == len(choices)
    cfg = apply(RunConfig(), choices)
    assert cfg.data.replay_ratio == 0.5 and cfg.training.early_stop_patience == 3
    assert cfg.training.min_locality == 0.9 and cfg.method.target_modules == ["all-linear"]


def test_model_size_sets_the_learning_rate() -> None:
    rates = [_values(Situation(params=p, facts=90, examples_per_fact=12, device="cuda",
                               memory=24 * GIB))["training.learning_rate"]
             for p in (135e6, 1.5e9, 8e9)]
    assert rates == [1e-3, 5e-4, 2e-4]


def test_set_size_sets_the_rank_and_the_epochs() -> None:
    few = _values(Situation(params=135e6, facts=20, examples_per_fact=10, device="cpu",
                            memory=16 * GIB))
    many = _values(Situation(params=135e6, facts=5000, examples_per_fact=10, device="cpu",
                             memory=16 * GIB))
    assert few["method.lora_r"] == 16 and many["method.lora_r"] == 64
    assert few["training.epochs"] > many["training.epochs"] >= 3
    assert many["method.lora_alpha"] == 128.0


def test_device_sets_the_method() -> None:
    base = dict(params=8e9, facts=90, examples_per_fact=12)
    assert _values(Situation(**base, device="cpu", memory=64 * GIB))["method.name"] == "lora"
    assert _values(Situation(**base, device="cuda", memory=8 * GIB,
                             fits_in_bf16=False))["method.name"] == "qlora"
    assert _values(Situation(**base, device="cuda", memory=80 * GIB))["method.name"] == "lora"


def test_the_situation_is_read_from_the_set_and_the_model(bench) -> None:
    ws, store, config = bench
    cpu = DeviceInfo(kind="cpu", name="test", total_memory=16 * GIB, cpu_cores=2)
    s = situation_for(store, config(), cpu)
    assert s.facts == 5 and s.examples_per_fact > 1 and 0 < s.params < 10e6
    assert s.device == "cpu" and s.fits_in_bf16
