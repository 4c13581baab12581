"""The replayed rows' relative output change (`activation_anchor`): zero for a fresh adapter,
the same with the shared chat start computed once as without, equal to the change computed
directly from the layers, and only over replayed rows."""

from __future__ import annotations

import pytest
import torch

from workbench.core.train import replay, shared_prefix
from workbench.core.train.activation_anchor import replay_change
from workbench.core.train.batching import collate
from workbench.core.train.loop import causal_lm_loss

from test_head_loss import loss_and_grads, model_for
from test_shared_prefix import chat_rows


def moved(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # off the adapter's no-op start, so there is a change
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model


def direct_change(model: torch.nn.Module, rows, replayed: list[bool]) -> float:
    """Σ over replayed rows' real tokens of the mean over LoRA layers of ‖ΔW x‖²/‖W x‖²,
    from each layer's input: no hooks, no shared start."""
    from peft.tuners.lora import LoraLayer

    inputs = collate(rows, 0)
    seen: dict[int, torch.Tensor] = {}
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    handles = [m.register_forward_hook(
        lambda mod, args, out, i=i: seen.__setitem__(i, args[0].detach()))
        for i, m in enumerate(layers)]
    with torch.no_grad():
        model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    for h in handles:
        h.remove()
    total = torch.zeros(inputs["input_ids"].shape)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            x = seen[i]
            delta = (layer.lora_B["default"](layer.lora_A["default"](x))
                     * layer.scaling["default"])
            total += delta.pow(2).sum(-1) / layer.base_layer(x).pow(2).sum(-1) / len(layers)
    at = inputs["attention_mask"].bool() & torch.tensor(replayed)[:, None]
    return float(total[at].sum())


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2"])
def test_the_change_is_the_layers_relative_change_at_replayed_tokens(arch, request,
                                                                      monkeypatch) -> None:
    model = moved(model_for(request.getfixturevalue(arch), "lora",
                            target_modules=["all-linear"], lora_r=4))
    replayed = [False, True, False, True]
    rows = chat_rows(replayed=tuple(replayed))
    inputs = collate(rows, 0)
    want = direct_change(model, rows, replayed)
    assert want > 0
    for share in (True, False):  # the shared start counted once per replayed row
        monkeypatch.setattr(shared_prefix, "MIN_SHARED", 8 if share else 10**9)
        shared_prefix.take_saved()
        with replay_change(model, torch.tensor(replayed), inputs["attention_mask"]) as change:
            shared_prefix.run_with_head(model, inputs, lambda labels: torch.nn.Identity())
        assert (shared_prefix.take_saved() > 0) == share  # the path meant was taken
        assert float(change.total) == pytest.approx(want, rel=1e-4)
    # No replayed row: nothing counted, no hook left behind.
    with replay_change(model, torch.tensor([False] * 4), inputs["attention_mask"]) as change:
        model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    assert change.total == 0.0
    assert not any(m._forward_hooks for m in model.modules())


def test_a_fresh_adapter_changes_nothing_and_the_weight_adds_the_penalty(
        tiny_llama, monkeypatch) -> None:
    model = model_for(tiny_llama, "lora", target_modules=["all-linear"], lora_r=4)
    rows = chat_rows(replayed=(False, True, False, True))
    inputs = collate(rows, 0)
    with replay_change(model, torch.tensor([False, True, False, True]),
                       inputs["attention_mask"]) as change:
        model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    assert float(change.total) == 0.0  # lora_B starts at zero
    moved(model)
    plain, _ = loss_and_grads(model, replay.anchored(causal_lm_loss), rows)
    monkeypatch.setattr(replay, "ACTIVATION_WEIGHT", 2.0)
    weighed, grads = loss_and_grads(model, replay.anchored(causal_lm_loss), rows)
    assert weighed == pytest.approx(plain + 2.0 * direct_change(model, rows,
                                                                [False, True, False, True]),
                                    rel=1e-4)
    assert all(torch.isfinite(g).all() for g in grads)
