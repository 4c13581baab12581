"""Keep a LoRA update out of the directions what the model knows runs through (AlphaEdit,
Fang et al. 2025: an edit projected onto the null space of the preserved knowledge's keys
leaves those keys' outputs unchanged).

For each adapted linear layer, the inputs it sees on the replayed known answers (questions
and the base's answers, through the base model) give a covariance C = Σ x xᵀ. Its
eigenvectors ordered by eigenvalue split the input space: the directions that carry most of
that energy, and the rest. With P the projection onto the directions holding at most
`energy` of it, LoRA's A is kept as A·P (at the start and after every optimizer step), so
the update B·A·x is nearly zero for every x the known answers produce, while the new facts
can still move the model through the directions those inputs leave unused.

Cost: one no-grad forward of the distinct replay rows before the first step (their inputs at
every adapted layer summed into in×in matrices), an eigendecomposition per layer, and one
r×in by in×in product per layer per step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from workbench.core.knowledge.render import Rendered
from workbench.core.methods.lora import lora_layers

log = logging.getLogger("workbench.train")
BATCH = 16


def projections(model: Any, rows: Sequence[Rendered], pad_id: int, device: Any,
                energy: float) -> dict[Any, Any]:
    """layer → its projection P (in×in, float32) onto the low-energy directions."""
    import torch

    from workbench.core.train.batching import collate

    layers = lora_layers(model)
    # Replay repeats its few known answers to fill its share: each counts once here.
    rows = list({tuple(r.input_ids): r for r in rows}.values())
    sums: dict[Any, Any] = {}
    mask_now: list[Any] = [None]

    def hook(layer: Any) -> Any:
        def collect(_module: Any, args: tuple[Any, ...]) -> None:
            x = args[0].detach().to(torch.float32)
            x = x.reshape(-1, x.shape[-1])[mask_now[0]]
            sums[layer] = sums.get(layer, 0) + (x.T @ x).to(torch.float64)
        return collect

    handles = [layer.base_layer.register_forward_pre_hook(hook(layer)) for layer in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(rows), BATCH):
                inputs = {k: v.to(device) for k, v in collate(rows[start:start + BATCH],
                                                              pad_id).items()}
                mask_now[0] = inputs["attention_mask"].reshape(-1).bool()
                model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    result, kept = {}, []
    for layer, cov in sums.items():
        values, vectors = torch.linalg.eigh(cov)  # ascending
        share = values.clamp(min=0).cumsum(0) / values.clamp(min=0).sum()
        free = vectors[:, share <= energy]
        kept.append(free.shape[1] / cov.shape[0])
        result[layer] = (free @ free.T).to(torch.float32)
    if kept:
        log.info("update kept out of what the model knows: each adapted layer learns in the "
                 "%.0f%% of its input directions (on average) that carry %s of the replayed "
                 "answers' activation energy", 100 * sum(kept) / len(kept), f"{energy:.1%}")
    return result


def project(projections_by_layer: dict[Any, Any]) -> None:
    """A ← A·P for every adapted layer (in place, no gradient)."""
    import torch

    with torch.no_grad():
        for layer, p in projections_by_layer.items():
            for a in layer.lora_A.values():
                a.weight.copy_(a.weight @ p.to(a.weight.device, a.weight.dtype))
