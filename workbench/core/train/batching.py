"""Micro-batches with little padding: examples are sorted by length inside shuffled pools,
so a batch holds examples of similar length, and batch order is reshuffled every epoch."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from workbench.core.knowledge.render import IGNORE_INDEX, Rendered

POOL_BATCHES = 32  # sort within pools of this many batches: low padding, still random


def epoch_batches(items: Sequence[Rendered], micro_batch: int, *, seed: int,
                  epoch: int) -> list[list[Rendered]]:
    rng = random.Random(seed * 7919 + epoch)
    order = list(items)
    rng.shuffle(order)
    pool = micro_batch * POOL_BATCHES
    batches: list[list[Rendered]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda r: len(r.input_ids))
        batches += [chunk[i:i + micro_batch] for i in range(0, len(chunk), micro_batch)]
    rng.shuffle(batches)
    return batches


def collate(batch: Sequence[Rendered], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors; padding is masked out of attention and loss."""
    import torch

    width = max(len(r.input_ids) for r in batch)
    ids = [r.input_ids + [pad_id] * (width - len(r.input_ids)) for r in batch]
    labels = [r.labels + [IGNORE_INDEX] * (width - len(r.labels)) for r in batch]
    mask = [[1] * len(r.input_ids) + [0] * (width - len(r.input_ids)) for r in batch]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask)}


def real_tokens(batch: Sequence[Rendered]) -> int:
    return sum(len(r.input_ids) for r in batch)
