"""Located fine-tuning: train the full weights of chosen modules in chosen layers only
(e.g. one MLP down-projection, where factual associations are stored; LocFT-BF), everything
else frozen. Few parameters, precise edits, little collateral change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.core.errors import ConfigError
from workbench.core.methods.base import MemoryTerms, Method, MethodSettings, RunView
from workbench.core.methods.full import check_base_weights_trainable
from workbench.core.settings import setting

if TYPE_CHECKING:
    from workbench.core.model_shape import ModelShape


@dataclass
class LocatedSettings(MethodSettings):
    located_modules: list[str] = setting(
        ["mlp.down_proj"],
        "For located fine-tuning: which modules of the chosen layers are trained in full.",
        advanced=True,
        label="Located: modules to train",
    )
    located_layers: list[int] = setting(
        [],
        "For located fine-tuning: layer indices to train; empty picks a middle layer.",
        advanced=True,
        label="Located: layers to train",
    )

    def check_together(self) -> None:
        super().check_together()
        if any(i < 0 for i in self.located_layers):
            raise self.fail("located_layers", "a list of layer indices >= 0", self.located_layers)

    def validate(self, run: RunView) -> None:
        check_base_weights_trainable("located", run)


def chosen_layers(requested: list[int], n_layers: int) -> list[int]:
    """The layers to train: those requested, or the middle one; the same for training and for
    the memory estimate, so both refuse a layer the model lacks with one message."""
    chosen = requested or [n_layers // 2]
    bad = [i for i in chosen if i >= n_layers]
    if bad:
        raise ConfigError(f"method.located_layers {bad} out of range: the model has "
                          f"{n_layers} layers (0-{n_layers - 1})")
    return chosen


def _layers(model: Any) -> Any:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ConfigError(f"located fine-tuning needs a decoder with model.layers; "
                          f"{type(model).__name__} has none")
    return layers


def apply(model: Any, settings: LocatedSettings) -> Any:
    layers = _layers(model)
    chosen = chosen_layers(settings.located_layers, len(layers))
    for p in model.parameters():
        p.requires_grad_(False)
    found = 0
    for index in chosen:
        for path in settings.located_modules:
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


def located_params(shape: ModelShape, modules: list[str], layers: list[int]) -> int:
    """Parameters of `modules` in `layers` (empty: the middle layer, as `apply` picks it)."""
    chosen = chosen_layers(layers, shape.n_layers)
    prefixes = tuple(f"{shape.layers_prefix}.{i}.{m}." for i in chosen for m in modules)
    return sum(n for name, n in shape.params if name.startswith(prefixes))


def memory(shape: ModelShape, settings: LocatedSettings, *, dtype_bytes: int,
           compute_bytes: int) -> MemoryTerms:
    """Gradients of the chosen modules only; layers below the lowest trained one see no tensor
    that needs a gradient, so autograd saves nothing there."""
    chosen = chosen_layers(settings.located_layers, shape.n_layers)
    return MemoryTerms(
        trained_params=located_params(shape, settings.located_modules, settings.located_layers),
        param_bytes=dtype_bytes, adds_weights=False,
        saved_layers=max(shape.n_layers - min(chosen), 1))


METHOD = Method("located", LocatedSettings, apply, memory, adapter=False,
                advice="Train one module (default: the MLP down-projection of a middle layer) in "
                       "full: precise edits with the least collateral change.")
