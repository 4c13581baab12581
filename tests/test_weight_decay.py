"""Weight decay pulls matrices toward zero (a LoRA update toward the base), never the 1-D
parameters: DoRA's magnitudes, biases, norms."""

from __future__ import annotations

import pytest
import torch

from workbench.core.sections import TrainingConfig
from workbench.core.train.loop import decay_groups, make_optimizer


def _dora() -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    return get_peft_model(base, LoraConfig(r=2, target_modules=["0", "2"], use_dora=True,
                                           init_lora_weights=False))


def test_decay_reaches_the_lora_matrices_and_spares_doras_magnitudes() -> None:
    model = _dora()
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    params = list(named.values())
    before = {n: p.detach().clone() for n, p in named.items()}
    opt = make_optimizer(params, TrainingConfig(learning_rate=0.1, weight_decay=1.0),
                         "adamw", "cpu")
    for p in params:  # no gradient signal: the step is the decay alone
        p.grad = torch.zeros_like(p)
    opt.step()
    magnitudes = [n for n in named if "magnitude" in n]
    matrices = [n for n in named if "lora_A" in n or "lora_B" in n]
    assert magnitudes and matrices
    for n in magnitudes:
        assert torch.equal(named[n], before[n]), n
    for n in matrices:  # AdamW's decoupled decay: p ← p·(1 − lr·wd)
        assert torch.allclose(named[n], before[n] * 0.9), n


@pytest.mark.parametrize("decay", [0.0, 0.01])
def test_groups_only_when_there_is_decay(decay: float) -> None:
    params = [torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2))]
    groups = decay_groups(params, decay)
    if not decay:
        assert groups is params
    else:
        assert [len(g["params"]) for g in groups] == [1, 1]
        assert groups[1]["weight_decay"] == 0.0
