"""Injection methods: one module each, registered here by name.

A method takes the loaded base model and the run's `MethodConfig` and returns the model to
train, with exactly the parameters it should update marked trainable. LoRA-family methods
wrap peft rather than re-implementing it.

A method may bring its own loss (prompt distillation matches a teacher's distribution
instead of the answer tokens) and optimizer (QLoRA's paged 8-bit AdamW on CUDA).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.core.config import MethodConfig
from workbench.core.errors import ConfigError
from workbench.core.methods import distill, full, located, lora
from workbench.core.train.loop import LossFn, causal_lm_loss


@dataclass(frozen=True)
class Method:
    name: str
    apply: Callable[[Any, MethodConfig], Any]
    advice: str  # one line for users choosing a method
    adapter: bool  # saves a peft adapter (True) or full weights (False)
    loss: LossFn = causal_lm_loss
    optimizer: str = "adamw"  # adamw | paged_adamw_8bit
    distills: bool = False  # needs teacher renderings (the fact in the prompt)


REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (
        Method("lora", lora.apply, lora.ADVICE["lora"], True),
        Method("qlora", lora.apply, lora.ADVICE["qlora"], True, optimizer="paged_adamw_8bit"),
        Method("dora", lora.apply, lora.ADVICE["dora"], True),
        Method("rslora", lora.apply, lora.ADVICE["rslora"], True),
        Method("full", full.apply, full.ADVICE, False),
        Method("located", located.apply, located.ADVICE, False),
        Method("prompt_distillation", distill.apply, distill.ADVICE, True,
               loss=distill.distillation_loss, distills=True),
    )
}


def get_method(name: str) -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"method {name!r} is not available; available: "
                          f"{', '.join(REGISTRY)}") from None


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
