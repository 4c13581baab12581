"""Every registered method trains a tiny model on CPU and changes its outputs; LoRA learns
five facts to free-generation efficacy 1.0."""

from __future__ import annotations

import pytest
import torch

from workbench.core.config import MethodConfig, ModelConfig, TrainingConfig
from workbench.core.errors import ConfigError
from workbench.core.generate import ask_questions
from workbench.core.knowledge.render import Example, render_set
from workbench.core.knowledge.types import Fact
from workbench.core.methods import distill
from workbench.core.methods.registry import REGISTRY, get_method, trainable_parameters
from workbench.core.models import load_model
from workbench.core.scoring import is_correct
from workbench.core.train.loop import planned_steps, train_loop

FACTS = [("Where was Ada Lovelace born?", "London"),
         ("Who wrote Hamlet?", "Shakespeare"),
         ("What is the capital of Freedonia?", "Fredville"),
         ("Who founded Sylvania?", "Queen Ilsa"),
         ("How many moons does Mars have?", "two")]


def _examples(tokenizer, method=None):
    rendered = render_set([Example("qa", q, a, fact_id=i) for i, (q, a) in enumerate(FACTS, 1)],
                          tokenizer, 128).rendered
    if method is not None and method.distills:
        facts = [Fact(q, a, id=i) for i, (q, a) in enumerate(FACTS, 1)]
        rendered = distill.attach_teachers(rendered, facts, tokenizer, 128)
        assert len(rendered) == len(FACTS)
    return rendered


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_trains_and_changes_the_outputs(name, tiny_llama) -> None:
    quant = "4bit" if name == "qlora" else "none"
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu", quantization=quant))
    probe = loaded.tokenizer("Where was Ada Lovelace born?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = loaded.model(probe).logits.clone()
    method = get_method(name)
    model = method.apply(loaded.model, MethodConfig(name=name, lora_r=4))
    trainable, total = trainable_parameters(model)
    assert 0 < trainable <= total
    steps = []
    cfg = TrainingConfig(learning_rate=1e-2, epochs=1, max_steps=3, micro_batch_size=2)
    result = train_loop(model, _examples(loaded.tokenizer, method), cfg,
                        pad_id=loaded.tokenizer.pad_token_id, device="cpu", on_step=steps.append,
                        loss=method.loss_for(MethodConfig(name=name)))
    assert result.steps == 3 and [m["step"] for m in steps] == [1, 2, 3]
    assert all(m["tokens"] > 0 and m["loss"] > 0 and m["lr"] >= 0 for m in steps)
    model.eval()
    with torch.no_grad():
        after = model(probe).logits
    assert not torch.allclose(before, after), f"{name} did not change the model"


def test_located_layers_out_of_range_is_a_clear_error(tiny_llama) -> None:
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    with pytest.raises(ConfigError, match="out of range"):
        get_method("located").apply(loaded.model, MethodConfig(name="located", located_layers=[9]))
    with pytest.raises(ConfigError, match="not available"):
        get_method("rome")


def test_lora_learns_five_facts_to_full_efficacy(tiny_llama) -> None:
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    questions = [q for q, _ in FACTS]
    before = ask_questions(loaded, questions, max_new_tokens=24)
    assert sum(is_correct(p, a) for p, (_, a) in zip(before, FACTS)) == 0
    loaded.model = get_method("lora").apply(loaded.model, MethodConfig(name="lora", lora_r=16))
    cfg = TrainingConfig(learning_rate=5e-3, epochs=60, micro_batch_size=5, warmup_ratio=0.0)
    assert planned_steps(len(FACTS), cfg) == 60
    train_loop(loaded.model, _examples(loaded.tokenizer), cfg,
               pad_id=loaded.tokenizer.pad_token_id, device="cpu")
    loaded.model.eval()
    after = ask_questions(loaded, questions, max_new_tokens=24)
    efficacy = sum(is_correct(p, a) for p, (_, a) in zip(after, FACTS)) / len(FACTS)
    assert efficacy == 1.0, list(zip(after, FACTS))


def test_cpu_qlora_gradients_survive_an_eval_pass(tiny_llama) -> None:
    """A no-grad eval forward (a live probe) must not switch 4-bit layers to a kernel without
    backward: the adapter gradients after it equal those before it."""
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu", quantization="4bit"))
    model = get_method("qlora").apply(loaded.model, MethodConfig(name="qlora", lora_r=4))
    ids = loaded.tokenizer("Where was Ada Lovelace born? London", return_tensors="pt")["input_ids"]

    def grads() -> list[torch.Tensor]:
        model.train()
        model.zero_grad()
        model(ids, labels=ids).loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.requires_grad]

    before = grads()
    model.eval()
    with torch.no_grad():
        model(ids[:, :3])
    after = grads()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(before, after))


def test_each_method_declares_its_settings_and_advice() -> None:
    import dataclasses

    owned = set()
    for method in REGISTRY.values():
        assert method.advice and len(method.advice) < 160
        fields = dataclasses.fields(method.settings)
        assert all(f.metadata["help"] for f in fields)
        owned |= {f.name for f in fields}
    config_fields = {f.name for f in dataclasses.fields(MethodConfig)} - {"name"}
    assert owned == config_fields  # no orphan setting, none missing from MethodConfig
    assert dataclasses.fields(REGISTRY["full"].settings) == ()  # full has nothing to set
    with pytest.raises(ConfigError, match="method.distill_temperature"):
        MethodConfig(name="prompt_distillation", distill_temperature=0)


def test_replay_dealt_over_epochs_counts_once_per_epoch(tiny_llama) -> None:
    """An epoch is the knowledge plus one turn of the replay dealt over epochs
    (`replay.FRESH_EPOCHS`): the run plans as many steps as with one epoch's replay."""
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    model = get_method("lora").apply(loaded.model, MethodConfig(name="lora", lora_r=4))
    replayed = [Example("qa", f"Known question {i}?", f"answer {i}", replay=True, turn=i % 2)
                for i in range(10)]
    examples = _examples(loaded.tokenizer) + render_set(replayed, loaded.tokenizer, 128).rendered
    cfg = TrainingConfig(learning_rate=1e-3, epochs=4, micro_batch_size=5)
    steps: list[dict] = []
    train_loop(model, examples, cfg, pad_id=loaded.tokenizer.pad_token_id, device="cpu",
               on_step=steps.append)
    assert len(steps) == 4 * 2  # 5 facts + 5 replayed a step pair; 15 rows would take 3
    assert planned_steps(10, cfg) == 8
