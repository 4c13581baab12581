"""Optimizer steps and micro-batches with little padding.

An epoch is planned as a list of optimizer *steps*, each the examples of one effective batch
(micro batch × accumulation × processes). Examples are sorted by length inside shuffled pools
of steps, so a step holds examples of similar length; step order is reshuffled every epoch.

Replay (the base's own answers, `replay.py`) is sorted by length together with the knowledge,
so the share of replay varies from step to step: the base's replayed sentences run longer
(55 tokens against the facts' 47 on the bench set), and at replay 0.5 a fifth of a run's steps
are all replay and a third at most 30% replay. Dealing replay into every step at the run's
share instead (BALANCED) was measured and not adopted: on SmolLM2-135M it kept 91% and 82% of
known answers under two seeds, where these plans kept 90% and 93%, and each step padded its
facts to its replayed answers' length (+6% tokens; `balanced` in bench/results/recipe.md).

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
# Replay dealt into every step at the run's share, each part sorted on its own (above): the
# bench's `balanced` variant; not adopted.
BALANCED = False


def plan_epoch(items: Sequence[Rendered], step_size: int, *, seed: int,
               epoch: int) -> list[list[Rendered]]:
    """The examples of each optimizer step of one epoch (the last step may be short). With
    BALANCED, each step holds replay at the epoch's share (±1 example)."""
    rng = random.Random(seed * 7919 + epoch)
    replay: list[Rendered] = []
    knowledge: list[Rendered] = []
    for r in of_epoch(items, epoch):
        (replay if BALANCED and r.example is not None and r.example.replay else knowledge).append(r)
    order = _interleave(_pooled(replay, step_size, rng), _pooled(knowledge, step_size, rng))
    steps = [order[i:i + step_size] for i in range(0, len(order), step_size)]
    rng.shuffle(steps)
    return steps


def of_epoch(items: Sequence[Rendered], epoch: int) -> list[Rendered]:
    """The examples epoch `epoch` trains on: every one without a turn, and of the replay
    dealt over epochs (`replay.replay_examples`' turns) the part whose turn this epoch is."""
    turns = 1 + max((r.example.turn for r in items
                     if r.example is not None and r.example.turn is not None), default=0)
    return [r for r in items if r.example is None or r.example.turn is None
            or r.example.turn == epoch % turns]


def _pooled(items: list[Rendered], step_size: int, rng: random.Random) -> list[Rendered]:
    """`items` shuffled, then sorted by length inside pools of POOL_STEPS steps' worth."""
    order = list(items)
    rng.shuffle(order)
    pool = step_size * POOL_STEPS
    return [r for start in range(0, len(order), pool)
            for r in sorted(order[start:start + pool], key=lambda r: len(r.input_ids))]


def _interleave(a: list[Rendered], b: list[Rendered]) -> list[Rendered]:
    """`a` and `b` merged in order, `a` spread evenly: at every prefix the share of `a` is
    len(a) / (len(a) + len(b)) to within one example."""
    total = len(a) + len(b)
    merged: list[Rendered] = []
    i = j = 0
    for k in range(total):
        if (k + 1) * len(a) // total > i:
            merged.append(a[i])
            i += 1
        else:
            merged.append(b[j])
            j += 1
    return merged


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
