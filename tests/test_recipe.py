"""The recommended recipe: a function of model size, set size and device."""

from __future__ import annotations

from workbench.core.config import RunConfig
from workbench.core.device import DeviceInfo
from workbench.core.recipe import (Situation, applied_values, apply, describe, mlp_modules,
                                   recommend,
                                   recommend_for, situation_for, summary, untouched)

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
    assert cfg.training.min_locality == 0.6 and cfg.method.target_modules == ["all-linear"]
    assert cfg.data.answer_style == "short" and cfg.data.replay_match == "distribution"
    assert cfg.data.include_statements is False  # questions only: as good and 26% fewer steps


def test_model_size_sets_the_learning_rate() -> None:
    rates = [_values(Situation(params=p, facts=90, examples_per_fact=12, device="cuda",
                               memory=24 * GIB))["training.learning_rate"]
             for p in (135e6, 1.5e9, 8e9)]
    assert rates == [2e-3, 5e-4, 2e-4]


def test_set_size_sets_the_rank_and_the_epochs() -> None:
    few = _values(Situation(params=135e6, facts=20, examples_per_fact=10, device="cpu",
                            memory=16 * GIB))
    many = _values(Situation(params=135e6, facts=5000, examples_per_fact=10, device="cpu",
                             memory=16 * GIB))
    assert few["method.lora_r"] == 16 and many["method.lora_r"] == 64
    assert few["training.epochs"] > many["training.epochs"] >= 2
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
    assert s.mlp_modules == ("gate_proj", "up_proj", "down_proj")  # read from its config


def test_lora_goes_on_the_mlp_projections_where_they_are_known() -> None:
    base = dict(params=135e6, facts=90, examples_per_fact=12, device="cpu", memory=16 * GIB)
    llama = _values(Situation(**base, mlp_modules=("gate_proj", "up_proj", "down_proj")))
    assert llama["method.target_modules"] == ["gate_proj", "up_proj", "down_proj"]
    assert _values(Situation(**base))["method.target_modules"] == ["all-linear"]
    # A name that attention shares is written with its module: GPT-2's c_proj.
    gpt2 = (("h.0.attn.c_attn", 8, 24), ("h.0.attn.c_proj", 8, 8), ("h.0.mlp.c_fc", 8, 32),
            ("h.0.mlp.c_proj", 32, 8), ("lm_head", 8, 100))
    assert mlp_modules(gpt2) == ("c_fc", "mlp.c_proj")


SMALL = Situation(params=4_700_000, facts=100, examples_per_fact=5, device="cpu", memory=16 * GIB)


def test_each_choice_is_described_beside_the_config_and_marked_where_it_differs() -> None:
    choices = recommend(SMALL)
    lines = describe(choices, RunConfig())
    assert [line.path for line in lines] == [c.path for c in choices]
    by_path = {line.path: line for line in lines}
    assert by_path["method.name"].label == "Method"
    rate = by_path["training.learning_rate"]
    assert rate.label == "Learning rate" and rate.why and rate.current == "0.0002"
    assert rate.value == f"{_values(SMALL)['training.learning_rate']:g}" and rate.differs
    assert by_path["method.target_modules"].value == "all-linear"
    assert not by_path["method.name"].differs  # lora is the default
    assert not any(line.differs for line in describe(choices, apply(RunConfig(), choices)))


def test_untouched_means_defaults_or_what_was_last_applied() -> None:
    choices = recommend(SMALL)
    picked = RunConfig().with_values({"data.knowledge_set": "a", "model.name_or_path": "m",
                                      "training.seed": 7})  # fields the recipe leaves alone
    assert untouched(picked, choices)
    applied = apply(picked, choices)
    assert not untouched(applied, choices)
    assert untouched(applied, choices, applied_values(applied, choices))
    edited = applied.with_values({"training.learning_rate": 0.05})
    assert not untouched(edited, choices, applied_values(applied, choices))


def test_the_recommendation_reads_the_model_config_not_its_weights(bench, monkeypatch) -> None:
    ws, store, config = bench

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr("workbench.core.models.load_model", no_weights)
    cpu = DeviceInfo(kind="cpu", name="test", total_memory=16 * GIB, cpu_cores=2)
    # The form's own batch size and method do not change what is recommended.
    s, choices = recommend_for(store, config(**{"training.micro_batch_size": 1,
                                                "method.name": "full"}), cpu)
    assert s == situation_for(store, config(), cpu) and choices == recommend(s)
    assert summary(s).startswith("a 0.") and "5 facts" in summary(s) and s.params < 1e6


def test_replay_matched_in_distribution_only_where_an_adapter_can_be_disabled() -> None:
    choices = recommend(Situation(params=135e6, facts=90, examples_per_fact=12, device="cpu",
                                  memory=16 * GIB))
    assert apply(RunConfig(), choices).data.replay_match == "distribution"
    full = [c for c in choices if c.path != "method.name"]
    cfg = apply(RunConfig().with_values({"method.name": "full"}), full)
    assert cfg.method.name == "full" and cfg.data.replay_match == "answers"
