"""Cross-entropy that runs the output head only on the tokens that carry loss, in chunks.

A causal LM computes logits at every position: batch × length × vocabulary floats. With
question/answer data most positions are the prompt, which carries no loss; and with a large
vocabulary the logits dominate memory (Qwen2.5's 151,936 entries: a 4 × 2048 batch is 5 GB of
fp32 logits, more than the rest of a QLoRA step on a 1.5B model). So the model runs with its
head swapped for an identity (it returns the final hidden states), the hidden states of the
loss positions are gathered, and head + cross-entropy run on those alone, a chunk at a time.
A chunk whose logits would pass `LOGITS_BUDGET` is checkpointed: its logits are recomputed in
the backward pass instead of kept, so the step holds one chunk of logits at a time.

Cost: the head matmul shrinks to the loss tokens (a third to a tenth of them in QA data); the
recompute adds one head forward on those tokens for checkpointed chunks only. Models that
transform the logits after the head (soft-capping, logit scales) keep the plain full-logits
loss, since the head alone would not give their logits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from workbench.core.knowledge.render import IGNORE_INDEX

LOGITS_BUDGET = 256 * 2**20  # bytes of fp32 logits per chunk before it is checkpointed
# Config fields of architectures whose logits are not simply head(hidden): Gemma 2/3
# soft-capping, Cohere's logit_scale, Granite's logits_scaling.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")
# A label token the model already gives at least this probability carries no loss (None: every
# token does), so a fact once learned stops pulling the weights further its way. 0.9 (the
# bench's learned-0.9) kept what the default keeps at the same share of its update: off.
LEARNED_P: float | None = None


def causal_model(model: Any) -> Any:
    """The transformers CausalLM inside DDP / peft wrappers."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def output_head(model: Any) -> Any | None:
    """The head module whose output *is* the logits, or None when that is not so."""
    causal = causal_model(model)
    head = causal.get_output_embeddings() if hasattr(causal, "get_output_embeddings") else None
    config = getattr(causal, "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if head is None or not hasattr(causal, "set_output_embeddings"):
        return None
    if any(getattr(text, name, None) not in (None, 1, 1.0) for name in LOGIT_TRANSFORMS):
        return None
    return head


@contextmanager
def head_replaced(model: Any, replacement: Any) -> Iterator[None]:
    """`model` computes `replacement(final hidden states)` in place of its logits while inside."""
    causal = causal_model(model)
    head = causal.get_output_embeddings()
    causal.set_output_embeddings(replacement)
    try:
        yield
    finally:
        causal.set_output_embeddings(head)


def _chunk_loss(head: Any, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if LEARNED_P is None:
        return F.cross_entropy(head(hidden).float(), targets, reduction="sum")
    losses = F.cross_entropy(head(hidden).float(), targets, reduction="none")
    return (losses * (losses.detach() > -math.log(LEARNED_P))).sum()


def selected_head_loss(head: Any, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of `head(hidden)` against `targets` (N rows), chunked so that no
    more than LOGITS_BUDGET bytes of fp32 logits are held for the backward pass."""
    vocab = int(getattr(head, "out_features", 0) or head.weight.shape[0])
    rows = max(1, LOGITS_BUDGET // (4 * vocab))
    if hidden.shape[0] <= rows:
        return _chunk_loss(head, hidden, targets)
    total = torch.zeros((), device=hidden.device, dtype=torch.float32)
    for start in range(0, hidden.shape[0], rows):
        total = total + checkpoint(_chunk_loss, head, hidden[start:start + rows],
                                   targets[start:start + rows], use_reentrant=False)
    return total


class LossHead(torch.nn.Module):
    """Stands in for the head during one forward and returns the summed loss as the "logits".
    Running inside the forward keeps what the forward is wrapped in: mixed-precision autocast
    (accelerate) and DDP's view of which weights were used."""

    def __init__(self, head: Any, labels: torch.Tensor) -> None:
        super().__init__()
        self.head = head
        self.keep = labels[:, 1:] != IGNORE_INDEX  # position t predicts token t + 1
        self.targets = labels[:, 1:][self.keep]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.targets.numel() == 0:  # no label here; every weight stays in the graph
            return hidden.sum() * 0.0
        return selected_head_loss(self.head, hidden[:, :-1][self.keep], self.targets)


class AtLabels(torch.nn.Module):
    """Stands in for the output head: logits at the label positions only (N × vocabulary)."""

    def __init__(self, head: Any, keep: torch.Tensor) -> None:
        super().__init__()
        self.head, self.keep = head, keep

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden[:, :-1][self.keep])
