"""Injection methods: one module each, registered here by name.

A method takes the loaded base model and the run's `MethodConfig` and returns the model to
train, with exactly the parameters it should update marked trainable. LoRA-family methods
wrap peft rather than re-implementing it.

Prompt distillation (a LoRA student matching a teacher that sees the facts in its prompt)
needs its own loss and is not registered yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.core.config import MethodConfig
from workbench.core.errors import ConfigError
from workbench.core.methods import full, located, lora


@dataclass(frozen=True)
class Method:
    name: str
    apply: Callable[[Any, MethodConfig], Any]
    advice: str  # one line for users choosing a method
    adapter: bool  # saves a peft adapter (True) or full weights (False)


REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (
        Method("lora", lora.apply, lora.ADVICE["lora"], True),
        Method("qlora", lora.apply, lora.ADVICE["qlora"], True),
        Method("dora", lora.apply, lora.ADVICE["dora"], True),
        Method("rslora", lora.apply, lora.ADVICE["rslora"], True),
        Method("full", full.apply, full.ADVICE, False),
        Method("located", located.apply, located.ADVICE, False),
    )
}


def get_method(name: str) -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"method {name!r} is not available yet; available: "
                          f"{', '.join(REGISTRY)}") from None


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
