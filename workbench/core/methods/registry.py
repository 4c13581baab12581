"""The injection methods by name: one module each, registered here.

A method takes the loaded base model and the run's `MethodConfig` and returns the model to
train, with exactly the parameters it should update marked trainable. LoRA-family methods
wrap peft rather than re-implementing it. A method may bring its own loss (prompt
distillation matches a teacher's distribution instead of the answer tokens) and optimizer
(QLoRA's paged 8-bit AdamW on CUDA). `settings` names the dataclasses whose fields the method
reads, so the UI shows only those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.core.config import MethodConfig
from workbench.core.errors import ConfigError
from workbench.core.methods import distill, full, located, lora
from workbench.core.settings import Section
from workbench.core.train.loop import LossFn, causal_lm_loss


def _token_loss(cfg: MethodConfig) -> LossFn:
    return causal_lm_loss


@dataclass(frozen=True)
class Method:
    name: str
    apply: Callable[[Any, MethodConfig], Any]
    advice: str  # one line for users choosing a method
    adapter: bool  # saves a peft adapter (True) or full weights (False)
    settings: tuple[type[Section], ...] = ()
    loss_for: Callable[[MethodConfig], LossFn] = _token_loss
    optimizer: str = "adamw"  # adamw | paged_adamw_8bit
    distills: bool = False  # needs teacher renderings (the fact in the prompt)


_LORA = (lora.LoraSettings,)

REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (
        Method("lora", lora.apply, lora.ADVICE["lora"], True, _LORA),
        Method("qlora", lora.apply, lora.ADVICE["qlora"], True, _LORA, optimizer="paged_adamw_8bit"),
        Method("dora", lora.apply, lora.ADVICE["dora"], True, _LORA),
        Method("rslora", lora.apply, lora.ADVICE["rslora"], True, _LORA),
        Method("full", full.apply, full.ADVICE, False),
        Method("located", located.apply, located.ADVICE, False, (located.LocatedSettings,)),
        Method("prompt_distillation", distill.apply, distill.ADVICE, True,
               (*_LORA, distill.DistillSettings),
               loss_for=lambda cfg: distill.distillation_loss(cfg.distill_temperature),
               distills=True),
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
