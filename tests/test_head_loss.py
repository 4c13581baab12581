"""The output head run on the label tokens only, in checkpointed chunks: the same loss and the
same gradients as the plain full-logits cross-entropy, for every kind of trainable weight."""

from __future__ import annotations

import random

import pytest
import torch

from workbench.core.config import MethodConfig, ModelConfig
from workbench.core.knowledge.render import IGNORE_INDEX, Rendered
from workbench.core.methods.registry import get_method
from workbench.core.models import load_model
from workbench.core.train import head_loss
from workbench.core.train.batching import collate
from workbench.core.train.loop import causal_lm_loss, full_logits_loss


def batch(seed: int = 0) -> list[Rendered]:
    """Prompt tokens without labels, then an answer with labels; uneven lengths (padding)."""
    rng = random.Random(seed)
    rows = []
    for n in (9, 17, 23, 12):
        ids = [rng.randrange(10, 300) for _ in range(n)]
        rows.append(Rendered(ids, [IGNORE_INDEX] * (n // 2) + ids[n // 2:], None, False))
    return rows


def loss_and_grads(model: torch.nn.Module, fn, rows: list[Rendered]) -> tuple[float, list]:
    model.zero_grad(set_to_none=True)
    loss = fn(model, rows, 0, "cpu")
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]


def model_for(path, method: str, **settings) -> torch.nn.Module:
    torch.manual_seed(0)
    loaded = load_model(ModelConfig(name_or_path=str(path), device="cpu", dtype="float32"))
    return get_method(method).apply(loaded.model, MethodConfig(name=method, **settings))


@pytest.mark.parametrize("method,settings", [
    ("lora", {"target_modules": ["all-linear"], "lora_r": 4}),
    ("lora", {"target_modules": ["lm_head", "down_proj"], "lora_r": 4}),  # a LoRA head too
    ("full", {}),  # the head's own weight trains (tied or not)
])
@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2"])
def test_same_loss_and_gradients_as_full_logits(arch, method, settings, request,
                                                monkeypatch) -> None:
    model = model_for(request.getfixturevalue(arch), method, **settings)
    rows = batch()
    want_loss, want = loss_and_grads(model, full_logits_loss, rows)
    got_loss, got = loss_and_grads(model, causal_lm_loss, rows)
    assert head_loss.output_head(model) is not None  # the fast path was taken
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    # Chunks of 7 rows, each checkpointed (logits recomputed in backward): still the same.
    vocab = head_loss.output_head(model).weight.shape[0]
    monkeypatch.setattr(head_loss, "LOGITS_BUDGET", 7 * 4 * vocab)
    chunk_loss, chunked = loss_and_grads(model, causal_lm_loss, rows)
    assert chunk_loss == pytest.approx(want_loss, rel=1e-5)
    for g, w in zip(chunked, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    # The model's own head is back in place after every call.
    assert not isinstance(head_loss.causal_model(model).get_output_embeddings(),
                          head_loss.LossHead)


def test_a_micro_batch_without_labels_gives_zero_and_keeps_the_graph(tiny_llama) -> None:
    model = model_for(tiny_llama, "lora", target_modules=["all-linear"], lora_r=4)
    rows = [Rendered([5, 6, 7, 8], [IGNORE_INDEX] * 4, None, False)]
    loss, grads = loss_and_grads(model, causal_lm_loss, rows)
    assert loss == 0.0 and all(torch.count_nonzero(g) == 0 for g in grads)


def test_models_that_transform_their_logits_keep_the_full_loss(tiny_llama) -> None:
    model = model_for(tiny_llama, "lora", target_modules=["all-linear"], lora_r=4)
    head_loss.causal_model(model).config.final_logit_softcapping = 30.0  # as Gemma 2 has
    assert head_loss.output_head(model) is None
    assert causal_lm_loss(model, batch(), 0, "cpu").item() == pytest.approx(
        full_logits_loss(model, batch(), 0, "cpu").item())


def test_replay_matched_in_distribution_is_kl_to_the_adapterless_base(tiny_llama) -> None:
    """data.replay_match distribution: knowledge rows keep their cross-entropy; replay rows
    add KL(base ‖ tuned) at their answer tokens: zero while the adapter is a no-op, positive
    once it moves, and its gradient reaches the adapter."""
    import torch.nn.functional as F

    from workbench.core.knowledge.render import Example
    from workbench.core.train import replay

    model = model_for(tiny_llama, "lora", target_modules=["all-linear"], lora_r=4)
    rows = batch()
    anchor = Example("qa", "q", "a", replay=True)
    mixed = [rows[0], Rendered(rows[1].input_ids, rows[1].labels, anchor, False),
             rows[2], Rendered(rows[3].input_ids, rows[3].labels, anchor, False)]
    loss = replay.anchored(causal_lm_loss)
    assert replay.base_kl(model, mixed[1::2], 0, "cpu").item() == pytest.approx(0.0, abs=1e-5)
    with torch.no_grad():  # move the adapter off its no-op start
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    kl = replay.base_kl(model, mixed[1::2], 0, "cpu")
    assert kl.item() > 0
    # The same KL computed by hand from full logits.
    inputs = collate(mixed[1::2], 0)
    keep = inputs["labels"][:, 1:] != IGNORE_INDEX
    with torch.no_grad():
        with model.disable_adapter():
            base = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        tuned = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    want = F.kl_div(F.log_softmax(tuned[:, :-1][keep], -1), F.log_softmax(base[:, :-1][keep], -1),
                    log_target=True, reduction="sum")
    assert kl.item() == pytest.approx(want.item(), rel=1e-4)
    # One forward of the whole micro-batch gives what two separate passes give, gradients too.
    total, grads = loss_and_grads(model, loss, mixed)
    split, want = loss_and_grads(model, lambda m, rows, pad, dev: causal_lm_loss(
        m, rows[0::2], pad, dev) + replay.base_kl(m, rows[1::2], pad, dev), mixed)
    assert total == pytest.approx(split, rel=1e-4)
    assert any(torch.count_nonzero(g) for g in grads)
    for g, w in zip(grads, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-6)


def test_question_kl_adds_the_questions_positions(tiny_llama, monkeypatch) -> None:
    """replay.QUESTION_KL: the replay rows' KL also covers their question's tokens (from
    `question_at` to the answer), the knowledge rows' cross-entropy unchanged."""
    import torch.nn.functional as F

    from workbench.core.knowledge.render import Example
    from workbench.core.train import replay

    model = model_for(tiny_llama, "lora", target_modules=["all-linear"], lora_r=4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    rows = batch()
    anchor = Example("qa", "q", "a", replay=True)
    replayed = [Rendered(r.input_ids, r.labels, anchor, False, question_at=2) for r in rows[1::2]]
    mixed = [rows[0], replayed[0], rows[2], replayed[1]]
    answers_only = replay.anchored(causal_lm_loss)(model, mixed, 0, "cpu").item()
    monkeypatch.setattr(replay, "QUESTION_KL", True)
    with_question = replay.anchored(causal_lm_loss)(model, mixed, 0, "cpu").item()
    # By hand: KL at every position from the one before the question's second token on.
    inputs = collate(replayed, 0)
    first = (inputs["labels"] != IGNORE_INDEX).int().argmax(1)
    at = torch.arange(inputs["labels"].shape[1])[None, 1:]
    question = (at >= 2) & (at < first[:, None])
    with torch.no_grad():
        with model.disable_adapter():
            base = model(**{k: inputs[k] for k in ("input_ids", "attention_mask")}).logits
        tuned = model(**{k: inputs[k] for k in ("input_ids", "attention_mask")}).logits
    extra = F.kl_div(F.log_softmax(tuned[:, :-1][question], -1),
                     F.log_softmax(base[:, :-1][question], -1), log_target=True, reduction="sum")
    assert extra.item() > 0
    assert with_question == pytest.approx(answers_only + extra.item(), rel=1e-4)


def test_reverse_share_takes_that_share_of_the_divergence_as_kl_tuned_to_base(
        tiny_llama, monkeypatch) -> None:
    """replay.KL_REVERSE_SHARE: the replay rows' divergence is (1 - s)·KL(base ‖ tuned) +
    s·KL(tuned ‖ base), in the one-pass mixed head as in `base_kl`; the reverse charges a
    token the tuned model raised from almost nothing more than the forward does."""
    from workbench.core.knowledge.render import Example
    from workbench.core.train import replay

    base = torch.log_softmax(torch.tensor([[4.0, 2.0, -6.0]]), -1)
    spilled = torch.log_softmax(torch.tensor([[4.0, 2.0, 1.0]]), -1)  # the last token raised
    forward = replay.divergence(spilled, base).item()
    monkeypatch.setattr(replay, "KL_REVERSE_SHARE", 1.0)
    reverse = replay.divergence(spilled, base).item()
    p, q = spilled.exp(), base.exp()
    assert reverse == pytest.approx((p * (p.log() - q.log())).sum().item(), rel=1e-5)
    assert forward == pytest.approx((q * (q.log() - p.log())).sum().item(), rel=1e-5)
    assert reverse > 2 * forward
    assert replay.divergence(base, base).item() == pytest.approx(0.0, abs=1e-6)

    model = model_for(tiny_llama, "lora", target_modules=["all-linear"], lora_r=4)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 3.0)  # far enough for the two directions to differ
    rows = batch()
    anchor = Example("qa", "q", "a", replay=True)
    mixed = [rows[0], Rendered(rows[1].input_ids, rows[1].labels, anchor, False),
             rows[2], Rendered(rows[3].input_ids, rows[3].labels, anchor, False)]
    share = {}
    for s in (0.0, 0.5, 1.0):
        monkeypatch.setattr(replay, "KL_REVERSE_SHARE", s)
        share[s] = replay.base_kl(model, mixed[1::2], 0, "cpu").item()
        one_pass = replay.anchored(causal_lm_loss)(model, mixed, 0, "cpu").item()
        assert one_pass == pytest.approx(
            causal_lm_loss(model, mixed[0::2], 0, "cpu").item() + share[s], rel=1e-4)
    assert share[0.0] != pytest.approx(share[1.0], rel=1e-3)
    assert share[0.5] == pytest.approx((share[0.0] + share[1.0]) / 2, rel=1e-5)


def test_target_temperature_sharpens_the_base_as_replays_target(monkeypatch) -> None:
    """replay.TARGET_TEMPERATURE: the target is the base's logits over the temperature, so
    at 0.5 a tuned model whose logits are twice the base's matches it exactly, and the base
    itself no longer does."""
    from workbench.core.train import replay

    base = torch.tensor([[3.0, 2.5, -1.0], [0.2, 0.1, 0.0]])
    assert replay.divergence(base, base).item() == pytest.approx(0.0, abs=1e-6)
    monkeypatch.setattr(replay, "TARGET_TEMPERATURE", 0.5)
    assert replay.divergence(2 * base, base).item() == pytest.approx(0.0, abs=1e-6)
    assert replay.divergence(base, base).item() > 0.01
