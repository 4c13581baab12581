"""The base model's logits at the replay rows' answer tokens, the target of replay's KL
(`replay.anchored`), computed once per distinct row for the length of a run.

The base (the model with its adapter disabled) never changes during a run, and the replay
repeats its rows: each known anchor several times an epoch (too few known answers are
repeated rather than replaced by wrong ones, `replay._mix_parts`), and all of them again every
epoch. On the recipe bench (SmolLM2-135M, 90 facts) the 780 replay rows of an epoch are
223 distinct ones, so the adapter-less forward ran on 1560 rows a run where 223 give the
same targets. Cost: host memory, up to CACHE_BYTES (a row keeps vocabulary × answer tokens
logits in the dtype they were computed in: ~1 MB for a 10-token answer over 49k tokens in
bf16; 331 MB for the bench's 223 rows); rows past it are computed each time they come.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.core.knowledge.render import IGNORE_INDEX, Rendered

CACHE_BYTES = 1 << 30


class BaseLogits:
    """Callable as `(model, head, rows, pad_id, device)` → the base's logits at the label
    tokens of `rows` (N × vocabulary, row by row, position by position), each distinct row
    computed once while the cache has room."""

    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.rows: dict[tuple[tuple[int, ...], tuple[int, ...]], Any] = {}
        self.budget, self.used = budget, 0
        self.computed = 0  # rows the base ran on (a row found in the cache is not counted)

    def __call__(self, model: Any, head: Any, batch: Sequence[Rendered], pad_id: int,
                 device: Any) -> Any:
        import torch

        keys = [(tuple(r.input_ids), tuple(r.labels)) for r in batch]
        missing = {k: r for k, r in zip(keys, batch) if k not in self.rows}
        fresh: dict[Any, Any] = {}
        if missing:
            rows = list(missing.values())
            logits = _base_logits(model, head, rows, pad_id, device)
            self.computed += len(rows)
            counts = [sum(1 for x in r.labels[1:] if x != IGNORE_INDEX) for r in rows]
            for key, part in zip(missing, logits.split(counts)):
                fresh[key] = part
                if self.used + part.nbytes <= self.budget:
                    self.rows[key] = part.to("cpu", copy=True)
                    self.used += part.nbytes
        return torch.cat([fresh[k] if k in fresh else self.rows[k].to(device) for k in keys])


def _base_logits(model: Any, head: Any, batch: Sequence[Rendered], pad_id: int,
                 device: Any) -> Any:
    """The adapter-less model's logits at the label tokens of `batch` (N × vocabulary), in
    the order the loss's head meets them: row by row, position by position."""
    import torch

    from workbench.core.train.batching import collate
    from workbench.core.train.head_loss import AtLabels
    from workbench.core.train.shared_prefix import run_with_head

    inputs = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
    peft_model = getattr(model, "module", model)  # inside a DDP wrapper
    with torch.no_grad(), peft_model.disable_adapter():
        return run_with_head(peft_model, inputs,
                             lambda labels: AtLabels(head, labels[:, 1:] != IGNORE_INDEX))
