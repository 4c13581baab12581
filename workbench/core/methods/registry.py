"""The injection methods by name: the only list of them.

Each method module declares its `Method`s (methods/base.py says what one holds); this module
collects them. The run config's method section, the CLI flags, the Method tab's choices and
the memory estimate all read `REGISTRY`, so a method registered here (or with `register`)
appears in all of them. LoRA-family methods wrap peft rather than re-implementing it.
"""

from __future__ import annotations

from typing import Any

from workbench.core.errors import ConfigError
from workbench.core.methods import distill, full, located, lora
from workbench.core.methods.base import Method, MethodSettings

REGISTRY: dict[str, Method] = {
    m.name: m for m in (*lora.METHODS, full.METHOD, located.METHOD, distill.METHOD)
}
METHODS = tuple(REGISTRY)  # the built-in names, in the order the UI and the CLI list them


def register(method: Method) -> None:
    """Add a method (a plug-in, or a test's toy method); its settings join the method
    section of every run config built afterwards."""
    if method.name in REGISTRY:
        raise ValueError(f"a method named {method.name!r} is already registered")
    REGISTRY[method.name] = method


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def get_method(name: str) -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"method {name!r} is not available; available: "
                          f"{', '.join(REGISTRY)}") from None


def settings_classes() -> list[type[MethodSettings]]:
    """Every registered method's settings dataclass, each once, in registry order."""
    return list(dict.fromkeys(m.settings for m in REGISTRY.values()))


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
