"""The knowledge set's real length, as the run would render it with the model's tokenizer:
the widest batch (for activations) and the tokens of one epoch (for the time estimate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.core.config import RunConfig
    from workbench.core.store import Store


@dataclass(frozen=True)
class SetTokens:
    """One epoch of a run's knowledge set as rendered with the model's tokenizer."""

    longest: int  # the widest micro-batch is padded to this (capped at data.max_seq_len)
    examples: int  # knowledge examples plus the replay examples mixed in
    # Tokens a step computes for those examples (replay counted at the set's mean length): a
    # micro-batch's shared chat-template start counts once (`train/shared_prefix`).
    tokens: int


def set_tokens(store: Store, cfg: RunConfig, tokenizer: Any) -> SetTokens:
    from workbench.core.train.replay import replay_count
    from workbench.core.train.run import render_knowledge

    rendered = render_knowledge(store, cfg, tokenizer).rendered
    tokens = sum(len(r.input_ids) for r in rendered) - _shared_tokens(rendered, cfg)
    replay = replay_count(len(rendered), cfg.data.replay_ratio)
    return SetTokens(longest=min(max(len(r.input_ids) for r in rendered), cfg.data.max_seq_len),
                     examples=len(rendered) + replay,
                     tokens=tokens + round(replay * tokens / len(rendered)))


def _shared_tokens(rendered: list[Any], cfg: RunConfig) -> int:
    """Tokens not computed because chat rows share their template's start: every row of a
    micro-batch but the first skips it (an estimate: it assumes chat rows batch together,
    as length bucketing mostly makes them)."""
    from workbench.core.train.batching import collate
    from workbench.core.train.shared_prefix import shared_length

    chat = [r for r in rendered if r.example is not None and r.example.kind == "qa"]
    if len(chat) < 2 or cfg.training.gradient_checkpointing or cfg.training.micro_batch_size < 2:
        return 0
    # The training loss's own rule, over the whole set (padding is masked, so any pad id).
    common = shared_length(collate(chat, 0))
    return round(len(chat) * common * (1 - 1 / cfg.training.micro_batch_size))


def batch_seq_len(store: Store, cfg: RunConfig, tokenizer: Any) -> int:
    """Tokens in the longest rendered training example of the run's knowledge set (capped at
    data.max_seq_len, as rendering drops longer ones): the width the widest micro-batch is
    padded to."""
    return set_tokens(store, cfg, tokenizer).longest


def set_tokens_or_none(store: Store, cfg: RunConfig, tokenizer: Any = None) -> SetTokens | None:
    """`set_tokens` of the run's knowledge set with the model's own tokenizer (loaded here
    unless given), or None when the set or the tokenizer cannot be read: the memory estimate
    then falls back to data.max_seq_len, an upper bound, and there is no time estimate."""
    from workbench.core.errors import WorkbenchError
    from workbench.core.models import load_tokenizer

    if not cfg.data.knowledge_set:
        return None
    try:
        return set_tokens(store, cfg, tokenizer or load_tokenizer(cfg.model))
    except WorkbenchError:
        return None
