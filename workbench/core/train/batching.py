"""Optimizer steps and micro-batches with little padding.

An epoch is planned as a list of optimizer *steps*, each the examples of one effective batch
(micro batch × accumulation × processes). Examples are sorted by length inside shuffled pools
of steps, so a step holds examples of similar length; step order is reshuffled every epoch.

Planning steps rather than micro-batches keeps the effective batch a property of the data
plan: when an out-of-memory error halves the micro-batch, the same step's examples are simply
cut into twice as many micro-batches, and resuming at step k replays exactly the same data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from workbench.core.knowledge.render import IGNORE_INDEX, Rendered

POOL_STEPS = 16  # sort within pools of this many steps: low padding, still random


def plan_epoch(items: Sequence[Rendered], step_size: int, *, seed: int,
               epoch: int) -> list[list[Rendered]]:
    """The examples of each optimizer step of one epoch (the last step may be short)."""
    rng = random.Random(seed * 7919 + epoch)
    order = list(items)
    rng.shuffle(order)
    pool = step_size * POOL_STEPS
    steps: list[list[Rendered]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda r: len(r.input_ids))
        steps += [chunk[i:i + step_size] for i in range(0, len(chunk), step_size)]
    rng.shuffle(steps)
    return steps


def steps_per_epoch(n_items: int, step_size: int) -> int:
    return -(-n_items // step_size)


def rank_share(step: Sequence[Rendered], rank: int, world: int) -> list[Rendered]:
    """This process's part of a step. A step with fewer examples than processes repeats its
    first example on the idle ones: every process must take part in the gradient all-reduce."""
    share = list(step[rank::world])
    return share or [step[0]]


def micro_batches(items: Sequence[Rendered], micro_batch: int) -> list[list[Rendered]]:
    ordered = sorted(items, key=lambda r: len(r.input_ids))
    return [ordered[i:i + micro_batch] for i in range(0, len(ordered), micro_batch)]


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


def loss_tokens(batch: Sequence[Rendered]) -> int:
    """Tokens that carry loss after the causal shift (the first position predicts nothing)."""
    return sum(sum(1 for label in r.labels[1:] if label != IGNORE_INDEX) for r in batch)
