"""A micro-batch's common prompt start computed once: the same loss and gradients as the
plain path, for cross-entropy and for replay matched by KL, on tiny Llama and Qwen2."""

from __future__ import annotations

import random

import pytest
import torch

from workbench.core.knowledge.render import IGNORE_INDEX, Example, Rendered
from workbench.core.train import replay, shared_prefix
from workbench.core.train.batching import collate
from workbench.core.train.loop import causal_lm_loss, full_logits_loss

from test_head_loss import loss_and_grads, model_for

PREFIX = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22]  # as a chat template's system turn


def chat_rows(seed: int = 0, replayed: tuple[bool, ...] = (False,) * 4) -> list[Rendered]:
    """The shared start, then a question of its own (no labels) and an answer (labels);
    uneven lengths, so the rows are padded."""
    rng = random.Random(seed)
    rows = []
    for i, (question, answer) in enumerate([(3, 4), (7, 2), (5, 6), (2, 3)]):
        ids = PREFIX + [rng.randrange(30, 300) for _ in range(question + answer)]
        labels = [IGNORE_INDEX] * (len(PREFIX) + question) + ids[-answer:]
        example = Example("qa", "q", "a", replay=True) if replayed[i] else None
        rows.append(Rendered(ids, labels, example, False))
    return rows


def test_the_shared_length_stops_at_the_first_label_and_at_padding() -> None:
    rows = chat_rows()
    assert shared_prefix.shared_length(collate(rows, 0)) == len(PREFIX)
    # A row whose answer starts right after the shared start: its last prompt position
    # predicts the first answer token, so it is not shared.
    early = Rendered(PREFIX + [40, 41], [IGNORE_INDEX] * len(PREFIX) + [40, 41], None, False)
    assert shared_prefix.shared_length(collate(rows + [early], 0)) == len(PREFIX) - 1
    # Identical rows share up to their first label only.
    same = [rows[0], rows[0]]
    assert shared_prefix.shared_length(collate(same, 0)) == len(PREFIX) + 3 - 1
    # Too short a common start, or one row, is not worth a second call.
    short = [Rendered(PREFIX[:5] + [50 + i] * 6, [IGNORE_INDEX] * 8 + [1, 2, 3], None, False)
             for i in range(3)]
    assert shared_prefix.shared_length(collate(short, 0)) == 0
    assert shared_prefix.shared_length(collate(rows[:1], 0)) == 0


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2"])
@pytest.mark.parametrize("method,settings", [
    ("lora", {"target_modules": ["all-linear"], "lora_r": 4}),
    ("full", {}),
])
def test_cross_entropy_and_gradients_match_the_plain_path(arch, method, settings,
                                                           request) -> None:
    model = model_for(request.getfixturevalue(arch), method, **settings)
    assert shared_prefix.supported(model)
    rows = chat_rows()
    want_loss, want = loss_and_grads(model, full_logits_loss, rows)
    shared_prefix.take_saved()
    got_loss, got = loss_and_grads(model, causal_lm_loss, rows)
    assert shared_prefix.take_saved() == (len(rows) - 1) * len(PREFIX)  # it was shared
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2"])
def test_replay_matched_by_kl_matches_the_plain_path(arch, request, monkeypatch) -> None:
    model = model_for(request.getfixturevalue(arch), "lora", target_modules=["all-linear"],
                      lora_r=4)
    with torch.no_grad():  # move the adapter off its no-op start, so the KL is not zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    rows = chat_rows(replayed=(False, True, False, True))
    loss = replay.anchored(causal_lm_loss)
    shared, got = loss_and_grads(model, loss, rows)
    monkeypatch.setattr(shared_prefix, "MIN_SHARED", 10**9)  # the plain path
    plain, want = loss_and_grads(model, loss, rows)
    assert shared == pytest.approx(plain, rel=1e-5) and shared > 0
    for g, w in zip(got, want, strict=True):  # as test_head_loss allows for the KL
        torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-5)


def test_not_used_with_activation_checkpointing(tiny_llama) -> None:
    model = model_for(tiny_llama, "lora", target_modules=["all-linear"], lora_r=4)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert not shared_prefix.supported(model)


def test_the_time_estimate_counts_the_shared_start_once_per_micro_batch() -> None:
    from types import SimpleNamespace

    from workbench.core.estimate.tokens import _shared_tokens

    rows = [Rendered(r.input_ids, r.labels, Example("qa", "q", "a"), False) for r in chat_rows()]
    cfg = SimpleNamespace(training=SimpleNamespace(gradient_checkpointing=False,
                                                   micro_batch_size=4))
    assert _shared_tokens(rows, cfg) == round(4 * len(PREFIX) * (1 - 1 / 4))
    cfg.training.gradient_checkpointing = True  # then nothing is shared
    assert _shared_tokens(rows, cfg) == 0
    text = [Rendered(r.input_ids, r.labels, Example("statement", "", "a"), False) for r in rows]
    assert _shared_tokens(text, SimpleNamespace(training=SimpleNamespace(
        gradient_checkpointing=False, micro_batch_size=4))) == 0
