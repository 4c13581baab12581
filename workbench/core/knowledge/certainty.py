"""How sure the base model is of an answer it gives: at each token of its answer, up to where
the answer is complete (first marked correct), the log-probability of that token minus the
best other token's; the answer's margin is the smallest (nats; near 0: a coin flip at one
token). The answer is teacher-forced after the same chat prompt generation uses, so one
forward pass per answer, no generation.

Why: on SmolLM2-135M the known answers a run loses are mostly the ones the base was least
sure of (`bench/results/known_margins.md`): of the fifth under 0.13 nats trained updates lost
18% and random updates of their size 14%; above 0.61 nats random ones lost none. The verdict
uses the margin to tell an answer the run damaged (the base was sure of it) from one any
update of that size could flip.

Coarse: a small gap between two wordings that both end right ("The capital…" or the name at
once) counts as small too, and the answer is re-tokenised from its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.core.generate import prompt_ids, question_messages
from workbench.core.models import LoadedModel
from workbench.core.scoring import is_correct
from workbench.core.tokens import token_ids

# nats. No random update of a trained one's size lost an answer above 0.52 on the bench;
# below UNSURE (its two least-sure fifths) trained updates lost 14-18%.
SURE = 0.6
UNSURE = 0.25
BATCH = 16


def smallest_gap(logp: Any, tokens: Sequence[int]) -> float:
    """min over rows of logp[i, tokens[i]] minus the best other entry of row i (logp: one
    row of log-probabilities per answer token)."""
    import torch

    rows = torch.arange(len(tokens))
    chosen = logp[rows, torch.tensor(list(tokens))]
    others = logp.clone()
    others[rows, torch.tensor(list(tokens))] = float("-inf")
    return float((chosen - others.max(-1).values).min())


def answer_margins(loaded: LoadedModel, rows: Sequence[tuple[str, str, str, Sequence[str]]],
                   *, system: str = "") -> list[float]:
    """(question, the model's answer, gold, aliases) → the model's margin on that answer up
    to where it is correct (the whole answer where it never is); 0.0 for an empty answer.
    Asked BATCH at a time, right-padded (a causal model's earlier positions never see the
    padding): 108 answers took 19 s on two CPU cores, 29 s one by one."""
    import torch

    if not rows:
        return []
    tokenizer, model = loaded.tokenizer, loaded.model
    # Where its first weights are (a model spread over devices moves inputs on from there).
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    asked = []
    for question, answer, gold, aliases in rows:
        prompt = prompt_ids(tokenizer, question_messages(question, system))
        reply = token_ids(tokenizer(answer, add_special_tokens=False))
        decisive = next((k for k in range(1, len(reply) + 1)
                         if is_correct(tokenizer.decode(reply[:k]), gold, aliases)), len(reply))
        asked.append((prompt, reply, decisive))
    margins = [0.0] * len(rows)
    live = [i for i, (_, reply, _) in enumerate(asked) if reply]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(live), BATCH):
            batch = live[start:start + BATCH]
            width = max(len(asked[i][0]) + len(asked[i][1]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                seq = asked[i][0] + asked[i][1]
                ids[row, :len(seq)] = torch.tensor(seq)
                mask[row, :len(seq)] = 1
            with torch.no_grad():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            for row, i in enumerate(batch):
                prompt, reply, decisive = asked[i]
                at = logits[row, len(prompt) - 1:len(prompt) - 1 + decisive].float()
                margins[i] = smallest_gap(torch.log_softmax(at, -1), reply[:decisive])
    finally:
        model.train(was_training)
    return margins
