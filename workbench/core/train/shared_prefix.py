"""A micro-batch's common prompt start, computed once instead of once per row.

Chat data starts every row with the same tokens: the chat template's system turn and the
user-turn header. SmolLM2's template adds "You are a helpful AI assistant named SmolLM…" to
every conversation, 20 of the 44 tokens of "What is the capital of X?" / "Y" — so nearly half
of each step's forward and backward went to the same tokens sixteen times. Here the shared
start runs once (batch of one), its keys and values are repeated across the rows
(transformers' own `DynamicCache`, differentiable: the gradient of all rows flows back into
the one computation), and the rows' own tokens run on top of it. The loss is the same up to
float rounding (tests/test_shared_prefix.py compares losses and gradients with the plain path).

Only the positions before the first label token of every row are shared, so every position
that carries loss is computed as before. Not used where it could change the result or is
not known to work: under DDP (two forwards per backward), under FSDP (the rows' gradient
reaches the shared start's keys and values through the cache, past the layer outputs whose
backward hooks gather the weights again: the backward finds them freed), with activation
checkpointing (transformers drops the cache there), for sliding-window or hybrid attention
layers, or when the shared start is under MIN_SHARED tokens (the extra forward would not pay).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from workbench.core.knowledge.render import IGNORE_INDEX

MIN_SHARED = 8  # shorter shared starts are not worth a second forward call
_saved = [0]  # positions not computed since the last `take_saved` (one training process)


def take_saved() -> int:
    """Token positions the trained forwards skipped since the last call: the loop subtracts
    them from the step's tokens, so tokens/s and MFU count the work actually done."""
    saved, _saved[0] = _saved[0], 0
    return saved


def supported(model: Any) -> bool:
    """Whether this model can run a micro-batch with its shared start computed once."""
    from workbench.core.train.head_loss import causal_model

    from workbench.core.device import is_sharded

    if isinstance(model, torch.nn.parallel.DistributedDataParallel) or is_sharded(model):
        return False
    causal = causal_model(model)
    checkpointing = getattr(causal, "is_activation_checkpointing", None)
    if checkpointing is None:
        checkpointing = getattr(causal, "is_gradient_checkpointing", False)
    if checkpointing:
        return False
    config = getattr(causal, "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(text, "layer_types", None) or []
    if any(kind != "full_attention" for kind in layer_types):
        return False
    return _cache_argument(causal) is not None


def shared_length(inputs: dict[str, torch.Tensor]) -> int:
    """Leading positions that are the same token in every row and carry no loss in any row
    (position t predicts token t + 1, so a row whose first label is at f needs position
    f - 1 of its own); 0 when fewer than MIN_SHARED or a single row."""
    ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(0) & (mask == 1).all(0)
    common = int(same.int().cumprod(0).sum())
    has_label = labels != IGNORE_INDEX
    first = torch.where(has_label.any(1), has_label.int().argmax(1),
                        torch.full_like(has_label[:, 0], labels.shape[1], dtype=torch.long))
    n = min(common, int(first.min()) - 1)
    return n if n >= MIN_SHARED else 0


def run_with_head(model: Any, inputs: dict[str, torch.Tensor],
                  make_head: Callable[[torch.Tensor], torch.nn.Module], *,
                  share: bool = True) -> Any:
    """`model`'s output with its head replaced by `make_head(labels)`, the micro-batch's
    shared start computed once when `share` and the model allows; `make_head` then receives
    the labels of the positions after the shared start, the only ones the head sees."""
    from workbench.core.train.head_loss import causal_model, head_replaced

    n = shared_length(inputs) if share and supported(model) else 0
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    if not n:
        with head_replaced(model, make_head(inputs["labels"])):
            return model(input_ids=ids, attention_mask=mask).logits
    causal = causal_model(model)
    argument = _cache_argument(causal)
    cache = _new_cache(causal)
    with head_replaced(model, _NoLogits()):
        model(input_ids=ids[:1, :n], attention_mask=mask[:1, :n], use_cache=True,
              **{argument: cache})
    cache.batch_repeat_interleave(ids.shape[0])
    if torch.is_grad_enabled():
        _saved[0] += (ids.shape[0] - 1) * n
    with head_replaced(model, make_head(inputs["labels"][:, n:])):
        return model(input_ids=ids[:, n:], attention_mask=mask, use_cache=True,
                     **{argument: cache}).logits


def _cache_argument(causal: Any) -> str | None:
    """The forward's name for the key/value cache: `cache` in transformers 5.2x, before
    that `past_key_values` (still accepted, with a deprecation warning per call)."""
    try:
        parameters = inspect.signature(causal.forward).parameters
    except (TypeError, ValueError):
        return None
    for name in ("cache", "past_key_values"):
        if name in parameters:
            return name
    return None


def _new_cache(causal: Any) -> Any:
    from transformers import DynamicCache

    try:
        return DynamicCache(config=causal.config)
    except TypeError:  # older transformers: no config argument
        return DynamicCache()


class _NoLogits(torch.nn.Module):
    """Stands in for the head while the shared start runs: only its cache is wanted."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden[..., :0]
