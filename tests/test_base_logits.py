"""Replay's KL targets computed once per distinct row: the same loss and gradients as
computing them at every occurrence, the base run only on rows not seen before, and nothing
kept past the memory budget."""

from __future__ import annotations

import pytest
import torch

from workbench.core.knowledge.render import Rendered
from workbench.core.train import replay
from workbench.core.train.base_logits import BaseLogits
from workbench.core.train.loop import causal_lm_loss

from test_head_loss import loss_and_grads, model_for
from test_shared_prefix import chat_rows


@pytest.fixture
def tuned(tiny_llama) -> torch.nn.Module:
    model = model_for(tiny_llama, "lora", target_modules=["all-linear"], lora_r=4)
    with torch.no_grad():  # move the adapter off its no-op start, so the KL is not zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model


def repeated(rows: list[Rendered]) -> list[Rendered]:
    """A micro-batch with replay rows 1 and 3 each twice (as `replay._mix_parts` repeats
    anchors)."""
    return [rows[0], rows[1], rows[2], rows[3], rows[1], rows[3]]


def test_each_distinct_row_runs_once_and_the_loss_is_unchanged(tuned) -> None:
    rows = repeated(chat_rows(replayed=(False, True, False, True)))
    # Every occurrence computed: cross-entropy on the knowledge rows, KL on each replay row.
    want_loss, want = loss_and_grads(tuned, lambda m, batch, pad, dev: causal_lm_loss(
        m, batch[0:3:2], pad, dev) + replay.base_kl(m, batch[1:2] + batch[3:], pad, dev), rows)
    cache = BaseLogits()
    loss = replay.anchored(causal_lm_loss, cache)
    first, got = loss_and_grads(tuned, loss, rows)
    assert cache.computed == 2 and len(cache.rows) == 2  # the repeats found the first
    again, again_grads = loss_and_grads(tuned, loss, rows)
    assert cache.computed == 2  # the base did not run again
    assert first == pytest.approx(want_loss, rel=1e-5) and again == pytest.approx(first, rel=1e-6)
    for g, w, a in zip(got, want, again_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(a, g, rtol=1e-5, atol=1e-7)


def test_rows_past_the_budget_are_computed_each_time(tuned) -> None:
    rows = chat_rows(replayed=(False, True, False, True))
    one_row = BaseLogits()
    replay.anchored(causal_lm_loss, one_row)(tuned, rows[1:2], 0, "cpu")
    cache = BaseLogits(budget=one_row.used)  # room for the first replay row only
    loss = replay.anchored(causal_lm_loss, cache)
    want = loss(tuned, rows, 0, "cpu").item()
    assert len(cache.rows) == 1 and cache.used <= cache.budget
    assert loss(tuned, rows, 0, "cpu").item() == pytest.approx(want, rel=1e-6)
    assert cache.computed == 3  # the row without room ran twice
