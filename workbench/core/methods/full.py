"""Full fine-tuning: every weight is trained. Most capacity, most memory (weights, gradients
and two AdamW moments: ~16 bytes per parameter in fp32), and the largest risk to what the
model already knows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.core.config import MethodConfig

ADVICE = ("Train every weight: most capacity but ~4x the model's memory for optimizer state, "
          "and the most forgetting; use replay.")


def apply(model: Any, cfg: MethodConfig) -> Any:
    for p in model.parameters():
        p.requires_grad_(True)
    return model
