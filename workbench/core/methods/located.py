"""Located fine-tuning: train the full weights of chosen modules in chosen layers only
(e.g. one MLP down-projection, where factual associations are stored; LocFT-BF), everything
else frozen. Few parameters, precise edits, little collateral change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.core.errors import ConfigError
from workbench.core.settings import Section, setting

if TYPE_CHECKING:
    from workbench.core.config import MethodConfig

@dataclass
class LocatedSettings(Section):
    section: ClassVar[str] = "method"

    located_modules: list[str] = setting(
        ["mlp.down_proj"],
        "For located fine-tuning: which modules of the chosen layers are trained in full.",
        advanced=True,
    )
    located_layers: list[int] = setting(
        [],
        "For located fine-tuning: layer indices to train; empty picks a middle layer.",
        advanced=True,
    )

    def check_together(self) -> None:
        super().check_together()
        if any(i < 0 for i in self.located_layers):
            raise self.fail("located_layers", "a list of layer indices >= 0", self.located_layers)


ADVICE = ("Train one module (default: the MLP down-projection of a middle layer) in full: "
          "precise edits with the least collateral change.")


def _layers(model: Any) -> Any:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ConfigError(f"located fine-tuning needs a decoder with model.layers; "
                          f"{type(model).__name__} has none")
    return layers


def apply(model: Any, cfg: MethodConfig) -> Any:
    layers = _layers(model)
    chosen = cfg.located_layers or [len(layers) // 2]
    bad = [i for i in chosen if i >= len(layers)]
    if bad:
        raise ConfigError(f"method.located_layers {bad} out of range: the model has "
                          f"{len(layers)} layers (0-{len(layers) - 1})")
    for p in model.parameters():
        p.requires_grad_(False)
    found = 0
    for index in chosen:
        for path in cfg.located_modules:
            module = layers[index]
            for part in path.split("."):
                module = getattr(module, part, None)
                if module is None:
                    raise ConfigError(f"layer {index} has no module {path!r} "
                                      f"(method.located_modules)")
            for p in module.parameters():
                p.requires_grad_(True)
                found += p.numel()
    if not found:
        raise ConfigError("located fine-tuning selected no parameters")
    return model
