"""Full fine-tuning: every weight is trained. Most capacity, most memory (weights, gradients
and two AdamW moments: ~16 bytes per parameter in fp32), and the largest risk to what the
model already knows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.core.errors import ConfigError
from workbench.core.methods.base import Change, MemoryTerms, Method, MethodSettings, RunView

if TYPE_CHECKING:
    from workbench.core.model_shape import ModelShape


def check_base_weights_trainable(name: str, run: RunView) -> None:
    """Rules of every method that trains the base weights themselves (full, located)."""
    if run.data.replay_match == "distribution" and run.data.replay_ratio > 0:
        raise ConfigError(
            f"data.replay_match distribution compares with the base model by disabling the "
            f"adapter, and method {name} has none (set data.replay_match to answers)"
        )
    if run.model.quantization != "none":
        raise ConfigError(
            f"method {name} updates the base weights, which cannot be trained while "
            f"quantized (set model.quantization to none, or choose qlora/lora)"
        )


@dataclass
class FullSettings(MethodSettings):
    """Nothing to set: every weight trains."""

    def validate(self, run: RunView) -> None:
        check_base_weights_trainable("full", run)


def apply(model: Any, settings: FullSettings) -> Any:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def memory(shape: ModelShape, settings: FullSettings, *, dtype_bytes: int,
           compute_bytes: int) -> MemoryTerms:
    """A gradient per parameter in the model's dtype; trained norm weights also keep their
    normalized input (2·d more values per token and layer)."""
    return MemoryTerms(trained_params=shape.total_params, param_bytes=dtype_bytes,
                       adds_weights=False, layer_values=2 * shape.hidden)


def lighter(run: RunView) -> list[Change]:
    return [("use lora instead of full fine-tuning", {"method.name": "lora"}),
            ("use qlora (4-bit base) instead of full fine-tuning", {"method.name": "qlora"})]


METHOD = Method("full", FullSettings, apply, memory, adapter=False, lighter=lighter,
                advice="Train every weight: most capacity but ~4x the model's memory for "
                       "optimizer state, and the most forgetting; use replay.")
