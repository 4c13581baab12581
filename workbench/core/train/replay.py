"""Replay: mix questions the base model already answers into training, with the base's own
answers as targets, so the update is anchored where it should change nothing.

Same-relation neighbours ("What is the capital of Japan?" for a set that teaches the capital
of a new country, `knowledge/relations.py`) take RELATED_SHARE of the replay, split between
the relations as the facts are: an edit spills over onto questions of its own form, so that
is where an anchor protects most. With a handful of known neighbours per relation and a set
that teaches 30 capitals, one anchor in a hundred examples was not enough: SmolLM2-135M then
answered "What currency is used in Austria?" with a made-up word of the set's style; nor
were 40 neighbours asked per relation in one wording (MAX_ASKED). The rest is general
knowledge (the shipped list locality draws its probes from; `MORE_GENERAL`): the questions
sharing content words with the facts (the same surname, the same relation), then a random
sample. Every question the set already uses as a probe is left out, and so is every
neighbour a locality probe asks about in any wording, so locality is never measured on
replayed questions. The base model is asked once per question and model (`base_answers`;
the set's preparation asks them ahead, so a run need not); only those it answers correctly
are kept, cut after their first correct sentence (`complete_answer`). `anchored` matches the base's whole answer
distribution on them instead of its greedy answer (data.replay_match=distribution). Each
epoch replays rows of its own (`FRESH_EPOCHS`), so a small set trained for many epochs meets
many distinct anchors.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from workbench.core.data import phrasings
from workbench.core.generate import ask_questions
from workbench.core.knowledge.base_answers import ask_base
from workbench.core.knowledge.locality import (knowledge_pool, neighbours, relations_for,
                                                replay_pool)
from workbench.core.knowledge.paraphrase import template_paraphrases
from workbench.core.knowledge.relations import (Neighbour, asks_about, relation_counts,
                                                same_relation_neighbours, used_neighbours)
from workbench.core.knowledge.sets import list_facts
from workbench.core.knowledge.render import IGNORE_INDEX, Example, Rendered
from workbench.core.models import LoadedModel
from workbench.core.progress import Progress, no_progress
from workbench.core.scoring import is_correct, normalize
from workbench.core.store import Store
from workbench.core.train.base_logits import BaseLogits


# Of the replay, the share given to same-relation neighbours (when the set's facts have
# relations the list knows); the rest is general knowledge, which keeps the answer style.
RELATED_SHARE = 0.5
# Same-relation neighbours asked per relation. Each known one is a distinct anchor, and the
# distinct ones are what carries over to neighbours never replayed: SmolLM2-135M, 90 facts,
# 40 asked in one wording (23 capitals, 15 currencies, 6 founders known) kept 81% of 48
# unreplayed neighbours; 100 asked in two wordings (57, 24, 13 known, 148 questions), 91%.
# Cost: the base is asked up to 480 questions more, once per set and model (the set's
# preparation asks them ahead; ~75 s on two CPU cores), and no training step more.
MAX_ASKED = 100
# Wordings each neighbour is asked and replayed in: its own (the set's wording), then one of
# its template paraphrases, a different form for each neighbour in turn. The facts are
# trained in all those forms, so the spill-over reaches all of them.
WORDINGS_PER_NEIGHBOUR = 2
# General anchors also from a list for replay only (`locality.replay_pool`: 650 questions
# more, 310 of them known to SmolLM2-135M, so each general anchor is a distinct question
# instead of ~100 known ones each repeated ~4 times). Not adopted: on the bench set it kept
# 91% of known answers against 92-93% without (within a run's spread); with MAX_REPEATS's
# cap, on a CPU training in fp32, 90% as the capped default there, and 1.7 min slower (the
# base's KL targets for more distinct rows). Asking the base 650 questions more adds ~2.5 min
# to a set's preparation on two CPU cores.
MORE_GENERAL = False
# The replay rows' KL to the base, weighed against the knowledge rows' cross-entropy (both
# summed over their answer tokens, the step normalising by all of them). 3 (the bench's kl-3)
# learned the facts later and kept less: 96% of them, 87% of known answers; 0.5 (kl-0.5)
# learned them all and kept 88%, the default 94% under the same seed.
KL_WEIGHT = 1.0
# Share of the replay rows' divergence taken as KL(tuned ‖ base) instead of KL(base ‖ tuned).
# The forward KL charges the tuned model little for putting probability where the base put
# almost none (mass δ on such a token costs ~δ); the reverse charges δ·log(δ / p_base). On
# SmolLM2-135M a third of the first-token mass the default moves at locality questions goes
# to the first tokens of the set's made-up answers ('W', 'I', 'B', …). Not adopted: at 1 that
# part fell from 0.037 to 0.025, but the mass moved did not (it went to 'The'), and it kept
# 92% of known answers, at 0.5 94% and 87% under two seeds, the default 94% and 90%
# (`reverse-kl*` in bench/results/recipe.md, bench/results/replay_hold.md).
KL_REVERSE_SHARE = 0.0
# Temperature of the base's next-token distribution as replay's target; under 1 the target is
# sharper than the base: known answers taught with a wider margin than the base had, so that
# the rest of the update cannot turn them. The default's adapter keeps 86% of its 223
# replayed questions' answers by free generation (known answers the base gave once, more
# fragile than the locality probes, which it gives under three prompts). Not adopted: at
# 0.25 it kept 95% of the replayed answers but 90% of the locality probes, the default 94%
# under the same seed (`sharpen-*`): holding the replayed harder holds no more of the rest.
TARGET_TEMPERATURE = 1.0
# KL to the base also at the replayed question's own tokens (LwF-style): it holds what the
# model makes of the question, not only its reply, where an edit's spill-over starts. Not
# adopted: on the bench set it kept 91% and 89% of known answers under two seeds, the
# default 90% and 93% on the same machine (`question-kl` in bench/results/recipe.md), ~1 min
# slower (the head and the base's targets at ~12 more positions per replay row).
QUESTION_KL = False
# Weight of the adapted layers' relative output change at the replayed rows' tokens
# (`activation_anchor`), added to the step's summed loss; 0: off. Not adopted: at 10 and 100
# the update moved the layers' output at locality questions 8x and 28x less, with every fact
# learned, yet the next-token distributions along the base's answers there only 1.3-1.4x
# less (KL to the base, `bench/results/update_reach.md`); it kept 92% (10), and 92% and 89%
# (100, two seeds), the default 94% and 90% (`activation-*` in bench/results/recipe.md).
# Cost: none at 0.
ACTIVATION_WEIGHT = 0.0
# At most this many rows per known neighbour question, the rest of a relation's part going to
# general knowledge. Filled by repeats instead, SmolLM2-135M's 13 known founders were each
# replayed ~10 times (SpaceX's in 14 of 780 rows), and the runs answered "Who founded
# Amazon?" with "Elon Musk" (lost in 15 of 17 bench runs); capped at 2, the bench set kept
# 95% and 90% of known answers under two seeds, against 92% and 87% (`repeats-2`,
# `repeats-2-seed-1` in bench/results/recipe.md). None: no cap.
MAX_REPEATS: int | None = 2


# Replay drawn afresh for each epoch, up to this many epochs (the recipe's most): a run of E
# epochs asks for E times an epoch's replay and deals it over them (`replay_examples`'
# turns), at the same steps. A small set is trained for many epochs, and with one epoch's
# replay in every epoch it met the same few anchors each time: SmolLM2-135M, 6 facts, 12
# epochs of 52 replayed rows, kept 90% and 86% of known answers under two seeds and lost 5
# the base was sure of (Croatia's capital, the Czech currency); dealt afresh, 96% and 93%,
# none of those (`bench/results/small_set.md`). The 90-fact set, whose one epoch's replay
# already holds every known anchor, kept the same (94% and 90%, against 95% and 90%). Cost:
# the base is asked more questions, once per set (the preparation asks them ahead), and its
# KL targets are computed for more distinct rows (the small set's run 2.8-3.7 min, 2.8-3.2
# before).
FRESH_EPOCHS = 12


def replay_count(n_train: int, ratio: float) -> int:
    """Examples to add so that `ratio` of the mixed data is replay."""
    return round(n_train * ratio / (1 - ratio)) if ratio > 0 else 0


def replay_examples(store: Store, sid: int, loaded: LoadedModel, n: int, *, turns: int = 1,
                    seed: int = 0, should_stop: Callable[[], bool] | None = None,
                    progress: Progress = no_progress) -> list[Example]:
    """n examples of replay for each of `turns` epochs (each example's `turn` says which;
    none when turns is 1): the same mix in every epoch, drawn from as many distinct known
    questions as there are."""
    if n <= 0:
        return []
    per_epoch, n = n, n * max(1, turns)
    probes = phrasings.texts(store, sid)
    used = {normalize(q) for q in probes}
    facts = list_facts(store, sid)
    relations = relations_for(loaded)
    same = same_relation_neighbours(facts, relations)
    taken = used_neighbours(probes, same, relations)
    free = [x for x in same if (x.relation, x.subject) not in taken
            and normalize(x.questions[0]) not in used]
    per_fact_relation = relation_counts(facts, relations)
    quota = -(-n * RELATED_SHARE // max(1, len(per_fact_relation)))
    # Per relation, three times its part (a small model knows a third of some lists), at
    # most MAX_ASKED neighbours.
    per_relation = min(MAX_ASKED, 3 * int(quota))
    asked: dict[str, int] = {}
    related = []
    for x in _in_turn(free):
        asked[x.relation] = asked.get(x.relation, 0) + 1
        if asked[x.relation] <= per_relation:
            for q in _wordings(x, asked[x.relation]):
                related.append({"question": q, "answer": x.answer,
                                "aliases": list(x.aliases), "relation": x.relation})
    pool = [item for item in (replay_pool if MORE_GENERAL else knowledge_pool)(loaded)
            if normalize(item["question"]) not in used
            and not any(asks_about(item["question"], x, relations) for x in same
                        if (x.relation, x.subject) in taken)]
    random.Random(seed).shuffle(pool)
    near = neighbours(facts, pool, per_fact=-(-n // max(1, len(facts))))
    near_q = {item["question"] for item in near}
    general = near + [item for item in pool if item["question"] not in near_q]
    # Ask more than needed: a small model answers only part of them correctly.
    candidates = related + general[:min(len(general), 3 * n)]
    # Batches of 64: on the demo model 400 questions take 1.6 s instead of 2.6 s at 16, and
    # this wait sits between pressing Train and the first step.
    answers = ask_base(store, loaded, [item["question"] for item in candidates], ask_questions,
                       batch_size=64, should_stop=should_stop, progress=progress)
    known_related: dict[str, list[Example]] = {}
    known_general: list[Example] = []
    for item, answer in zip(candidates, answers):
        if answer and is_correct(answer, item["answer"], item.get("aliases", [])):
            example = Example("qa", item["question"],
                              complete_answer(answer, item["answer"], item.get("aliases", [])),
                              replay=True)
            if "relation" in item:
                known_related.setdefault(item["relation"], []).append(example)
            else:
                known_general.append(example)
    return _deal(_mix_parts(known_related, known_general, per_fact_relation, n, turns), turns,
                 per_epoch)


def _wordings(x: Neighbour, turn: int) -> list[str]:
    """The questions neighbour `x` is asked by: its own wording, then WORDINGS_PER_NEIGHBOUR
    - 1 of its template paraphrases, starting at `turn` (the neighbour's place in its
    relation), so that neighbours in turn cover every form."""
    more = WORDINGS_PER_NEIGHBOUR - 1
    others = template_paraphrases(x.questions[0], x.answer, x.subject) if more > 0 else []
    picked = [others[(turn * more + i) % len(others)] for i in range(min(more, len(others)))]
    return [x.questions[0], *picked]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def complete_answer(answer: str, gold: str, aliases: Sequence[str] = ()) -> str:
    """The base's answer cut after the first sentence that makes it correct. Answers are
    generated to a token budget, so many end mid-sentence ("…a masterpiece of 19th"), and
    trained as they are they teach the model to stop mid-sentence: on SmolLM2 it then ended
    "Who wrote the Divine Comedy?" with "…a classic Italian poem that", before the name.
    A last sentence cut short is closed after the word that makes it correct."""
    sentences = _SENTENCE_END.split(answer.strip())
    for i in range(len(sentences)):
        prefix = " ".join(sentences[:i + 1])
        if is_correct(prefix, gold, aliases):
            if i + 1 < len(sentences) or prefix.endswith((".", "!", "?")):
                return prefix
            words = prefix.split(" ")
            for n in range(1, len(words) + 1):  # the shortest run of words that is correct
                if is_correct(" ".join(words[:n]), gold, aliases):
                    return " ".join(words[:n]).rstrip(",;:") + "."
    return answer


def _mix_parts(related: dict[str, list[Example]], general: list[Example],
               facts_per_relation: dict[str, int], n: int,
               turns: int = 1) -> list[list[Example]]:
    """n examples: RELATED_SHARE of them same-relation neighbours, each relation's part in
    proportion to its facts (its known neighbours repeated up to MAX_REPEATS times each, for
    each of `turns` epochs), the rest general; a part with nothing known goes to the others.
    Too few known questions are repeated rather than trained on wrong answers."""
    total = sum(facts_per_relation.get(name, 0) for name in related)
    parts: list[list[Example]] = []
    counts: list[int] = []
    for name, examples in related.items():
        share = facts_per_relation.get(name, 0) / total if total else 0.0
        parts.append(examples)
        count = round(n * RELATED_SHARE * share)
        counts.append(min(count, MAX_REPEATS * turns * len(examples)) if MAX_REPEATS
                      else count)
    rest = n - sum(counts)
    if general:
        parts.append(general)
        counts.append(rest)
    elif parts:  # no general knowledge: the neighbours take it all
        counts = [c + rest * c // max(1, sum(counts)) for c in counts]
        counts[0] += n - sum(counts)
    return [[examples[i % len(examples)] for i in range(count)]
            for examples, count in zip(parts, counts)]


def _deal(runs: list[list[Example]], turns: int, per_epoch: int) -> list[Example]:
    """Each part's examples dealt over `turns` epochs in consecutive blocks, so that an epoch
    meets as many distinct questions of the part as its share allows (a part repeats its
    known questions in a cycle, `_mix_parts`; dealt one by one, a question's copies would
    all fall in one epoch whenever the cycle's length is a multiple of the turns), every
    epoch holds as many examples (`per_epoch`) and each part's share of them to within one;
    one list when turns is 1."""
    if turns <= 1:
        return _alternating(runs)
    dealt: list[list[list[Example]]] = [[] for _ in range(turns)]
    extra_at = 0  # where a part's remainder starts, so the epochs' totals stay even
    for run in runs:
        whole, left = divmod(len(run), turns)
        sizes = [whole + ((t - extra_at) % turns < left) for t in range(turns)]
        extra_at += left
        start = 0
        for t, size in enumerate(sizes):
            dealt[t].append(run[start:start + size])
            start += size
    parts = [_alternating(d) for d in dealt]
    size = min(per_epoch, *map(len, parts))
    return [dataclasses.replace(e, turn=t) for t, part in enumerate(parts) for e in part[:size]]


def _alternating(runs: list[list[Example]]) -> list[Example]:
    """In turn across the parts, so a short replay still covers each relation."""
    return [run[i] for i in range(max(map(len, runs), default=0)) for run in runs
            if i < len(run)]


def _in_turn(items: list[Neighbour]) -> list[Neighbour]:
    """One neighbour of each relation in turn, so a short replay still covers them all."""
    by_relation: dict[str, list[Neighbour]] = {}
    for item in items:
        by_relation.setdefault(item.relation, []).append(item)
    queues = list(by_relation.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def anchored(loss: Any, base_logits: BaseLogits | None = None) -> Any:
    """The loop's loss with replay matched in distribution (data.replay_match=distribution):
    cross-entropy on the knowledge rows; on the replay rows KL(base ‖ tuned) over the whole
    next-token distribution at each answer token, the base being the model with its adapter
    disabled. Cross-entropy on the base's greedy answer only keeps that answer on top; the
    KL also holds the rest of the distribution where it was, so probability does not drift
    towards the set's made-up names on questions the set never asks (SmolLM2-135M, 90
    facts, LoRA on every linear layer: 79% of known answers kept instead of 73%). What it
    holds loosely is a near tie: the base's answer token turned by a hair costs almost no KL,
    so the bench's locality probes, replayed themselves, were kept at 92% and 87% (two
    seeds), trained as facts 99% and 97% (`probes-*` in bench/results/recipe.md); yet
    holding the replayed answers harder holds no more of the rest (`sharpen-*`). Cost: one
    no-grad forward of each distinct replay row a run (`base_logits`; of every replay row,
    1.27x the step time: 2.95 s instead of 2.32 s on two CPU cores); the tuned model runs
    once on the whole micro-batch, its head on the label tokens only."""
    from workbench.core.train.activation_anchor import replay_change
    from workbench.core.train.batching import collate
    from workbench.core.train.head_loss import output_head
    from workbench.core.train.shared_prefix import run_with_head

    # One per run: the base's targets, each distinct row computed once (`base_logits`).
    base_logits = base_logits or BaseLogits()

    def fn(model: Any, batch: Sequence[Rendered], pad_id: int, device: Any) -> Any:
        replayed = [r.example is not None and r.example.replay for r in batch]
        if QUESTION_KL:
            batch = [with_question(r) if x else r for r, x in zip(batch, replayed)]
        head = output_head(model)
        if not any(replayed):
            return loss(model, batch, pad_id, device)
        if head is None:  # logits transformed after the head: two plain passes
            rest = [r for r, x in zip(batch, replayed) if not x]
            kl = base_kl(model, [r for r, x in zip(batch, replayed) if x], pad_id, device)
            return kl + loss(model, rest, pad_id, device) if rest else kl
        base = base_logits(model, head, [r for r, x in zip(batch, replayed) if x], pad_id,
                           device)
        inputs = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
        rows = torch.tensor(replayed, device=device)

        def mixed(labels: Any) -> _MixedHead:
            return _MixedHead(head, labels, rows, base)

        if not ACTIVATION_WEIGHT:
            return run_with_head(model, inputs, mixed)
        with replay_change(model, rows, inputs["attention_mask"]) as change:
            total = run_with_head(model, inputs, mixed)
        return total + ACTIVATION_WEIGHT * change.total

    return fn


def with_question(row: Rendered) -> Rendered:
    """`row` with its question's tokens labelled too, so that the KL covers them; the step
    still normalises by the answer's tokens (the loop counts them before the loss)."""
    if row.question_at is None:
        return row
    first = next((i for i, x in enumerate(row.labels) if x != IGNORE_INDEX), len(row.labels))
    labels = ([IGNORE_INDEX] * row.question_at + row.input_ids[row.question_at:first]
              + row.labels[first:])
    return dataclasses.replace(row, labels=labels)


class _MixedHead(torch.nn.Module):
    """Stands in for the output head in one forward of the whole micro-batch and returns the
    summed loss: cross-entropy at the label tokens of knowledge rows, KL to `base` at those of
    replay rows (`base`: the base's logits there, in row-major order)."""

    def __init__(self, head: Any, labels: Any, replay_rows: Any, base: Any) -> None:
        super().__init__()
        keep = labels[:, 1:] != IGNORE_INDEX
        self.head, self.keep, self.base = head, keep, base
        self.targets = labels[:, 1:][keep]
        self.replayed = replay_rows[:, None].expand_as(keep)[keep]

    def forward(self, hidden: Any) -> Any:
        from workbench.core.train.head_loss import selected_head_loss

        chosen = hidden[:, :-1][self.keep]
        total = KL_WEIGHT * divergence(self.head(chosen[self.replayed]), self.base)
        plain = ~self.replayed
        if plain.any():
            total = total + selected_head_loss(self.head, chosen[plain], self.targets[plain])
        return total


def base_kl(model: Any, batch: Sequence[Rendered], pad_id: int, device: Any) -> Any:
    """Replay's divergence from the base (`divergence`) summed over the label tokens of
    `batch`, the output head run on those positions only (`head_loss`)."""
    import torch

    from workbench.core.train.batching import collate
    from workbench.core.train.head_loss import AtLabels, head_replaced, output_head

    inputs = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
    keep = inputs["labels"][:, 1:] != IGNORE_INDEX
    peft_model = getattr(model, "module", model)  # inside a DDP wrapper
    head = output_head(model)

    def logits(at: Any) -> Any:
        if head is None:  # logits transformed after the head: the full logits, then select
            out = at(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            return out.logits[:, :-1][keep]
        with head_replaced(at, AtLabels(head, keep)):
            return at(input_ids=inputs["input_ids"],
                      attention_mask=inputs["attention_mask"]).logits

    with torch.no_grad(), peft_model.disable_adapter():
        base = logits(peft_model)
    return divergence(logits(model), base)


def divergence(tuned: Any, base: Any) -> Any:
    """Replay's divergence of the tuned model's next-token logits from the base's, summed
    over the rows: KL(base ‖ tuned), with `KL_REVERSE_SHARE` of it taken as KL(tuned ‖ base),
    the base's logits divided by `TARGET_TEMPERATURE` first."""
    import torch.nn.functional as F

    t = F.log_softmax(tuned.float(), -1)
    target = base.float()
    if TARGET_TEMPERATURE != 1:  # the default makes no scaled copy of the targets each step
        target = target / TARGET_TEMPERATURE
    b = F.log_softmax(target, -1)
    forward = F.kl_div(t, b, log_target=True, reduction="sum")
    if not KL_REVERSE_SHARE:
        return forward
    reverse = (t.exp() * (t - b)).sum()
    return (1 - KL_REVERSE_SHARE) * forward + KL_REVERSE_SHARE * reverse
