"""An epoch's plan of optimizer steps: every example once, similar lengths per step; replay
sorted with the knowledge, or dealt into every step at the run's share (BALANCED, measured
and not adopted)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from workbench.core.knowledge.render import Example, Rendered
from workbench.core.train import batching
from workbench.core.train.batching import plan_epoch


def _rows(n: int, *, replay: bool, lengths: range, seed: int) -> list[Rendered]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        width = rng.choice(lengths)
        rows.append(Rendered(input_ids=[1] * width, labels=[1] * width, truncated=False,
                             example=Example("qa", f"q{seed}-{i}", "a", replay=replay)))
    return rows


@pytest.mark.parametrize("n_knowledge, n_replay, step", [(780, 780, 16), (70, 30, 10), (45, 0, 8)])
def test_balanced_steps_hold_replay_at_the_runs_share(n_knowledge, n_replay, step,
                                                      monkeypatch) -> None:
    monkeypatch.setattr(batching, "BALANCED", True)
    # Replayed answers longer than the facts', as the base's sentences are: sorted together
    # by length, they used to fill steps of their own.
    knowledge = _rows(n_knowledge, replay=False, lengths=range(41, 56), seed=1)
    replay = _rows(n_replay, replay=True, lengths=range(50, 76), seed=2)
    steps = plan_epoch(knowledge + replay, step, seed=42, epoch=0)
    planned = [id(r) for s in steps for r in s]
    assert sorted(planned) == sorted(id(r) for r in knowledge + replay)  # each once
    share = n_replay / (n_knowledge + n_replay)
    for s in steps:
        assert abs(sum(r.example.replay for r in s) - share * len(s)) <= 1
    assert [len(s) for s in steps].count(step) >= len(steps) - 1


def test_the_plan_is_fixed_by_seed_and_epoch_and_keeps_lengths_together() -> None:
    rows = _rows(200, replay=False, lengths=range(10, 200), seed=3)
    first = plan_epoch(rows, 8, seed=7, epoch=0)
    assert [[id(r) for r in s] for s in first] == \
        [[id(r) for r in s] for s in plan_epoch(rows, 8, seed=7, epoch=0)]  # resumable
    assert first != plan_epoch(rows, 8, seed=7, epoch=1)
    spread = sum(max(len(r.input_ids) for r in s) - min(len(r.input_ids) for r in s)
                 for s in first) / len(first)
    assert spread < 40  # lengths 10-200 at random: sorted in pools, a step's are close


def test_by_default_replay_and_knowledge_are_sorted_together() -> None:
    """Replay, being longer, gathers in steps of its own (what `balanced` would change)."""
    knowledge = _rows(256, replay=False, lengths=range(41, 50), seed=1)
    replay = _rows(256, replay=True, lengths=range(60, 76), seed=2)
    shares = [sum(r.example.replay for r in s) / len(s)
              for s in plan_epoch(knowledge + replay, 16, seed=42, epoch=0)]
    assert sum(share in (0.0, 1.0) for share in shares) >= 0.75 * len(shares)


def test_the_default_plan_is_the_one_runs_were_trained_and_checkpointed_with() -> None:
    """Resuming at step k must replay the same data: the default plan is step for step the
    one planned before BALANCED existed (the reference below)."""
    rows = _rows(300, replay=False, lengths=range(40, 60), seed=5) + \
        _rows(300, replay=True, lengths=range(45, 80), seed=6)
    rng = random.Random(3 * 7919 + 1)
    order = list(rows)
    rng.shuffle(order)
    before: list[list[Rendered]] = []
    pool = 16 * batching.POOL_STEPS
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda r: len(r.input_ids))
        before += [chunk[i:i + 16] for i in range(0, len(chunk), 16)]
    rng.shuffle(before)
    planned = plan_epoch(rows, 16, seed=3, epoch=1)
    assert [[id(r) for r in s] for s in planned] == [[id(r) for r in s] for s in before]


def test_replay_dealt_over_epochs_is_trained_in_its_epoch_only() -> None:
    """Replay with turns (`replay.replay_examples(turns=…)`): each epoch trains every knowledge
    row and the replay of its turn, the turns coming round again after the last."""
    knowledge = _rows(20, replay=False, lengths=range(5, 9), seed=1)
    replay = [Rendered(r.input_ids, r.labels, dataclasses.replace(r.example, turn=i % 3), False)
              for i, r in enumerate(_rows(12, replay=True, lengths=range(5, 9), seed=2))]
    for epoch in range(5):
        planned = [r for s in plan_epoch(knowledge + replay, 8, seed=3, epoch=epoch) for r in s]
        assert sorted(map(id, planned)) == sorted(
            map(id, knowledge + [r for r in replay if r.example.turn == epoch % 3]))
    assert batching.of_epoch(knowledge, 7) == knowledge  # no turns: every row every epoch
