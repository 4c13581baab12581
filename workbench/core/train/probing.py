"""Live recall: ask the injected facts by free generation while the model trains.

Every `training.probe_every` steps the worker asks each fact's own question (efficacy: does
it answer as trained?) and its held-out paraphrases (generalization: does the knowledge
transfer to wordings never trained on?), greedy, with the chat template, exactly as a user
would ask (design §4). Teacher-forced scores would flatter the edit about 2×, so they are not
used here. At the end, locality probes (questions the base answered correctly) are asked too:
a probe keeps its locality when the tuned answer is still correct (the gold answer or an alias
occurs in it, as for efficacy). Whether the text is also unchanged from the base's answer is
stored beside it as a stricter view: a chatty model rewords many answers it still gets right,
so "unchanged" alone reads as damage where there is none.

Each answer becomes a `probe_results` row (run, step, metric), so the UI can draw per-fact
curves and the scorecard can show every answer. Held-out probes come in several forms
(question, imperative, inverted, completion: see `knowledge.forms`); `by_form` splits a score
by them, since a model may answer re-worded questions yet miss the same fact asked another way.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.core.data import phrasings, runs
# UNCHANGED is re-exported too: the scorecard and the report read it here.
from workbench.core.data.names import SCORE_METRICS, UNCHANGED, ScoreMetric
from workbench.core.generate import Interrupted, ask_questions
from workbench.core.knowledge.certainty import SURE
from workbench.core.knowledge.forms import FORMS, form_of
from workbench.core.knowledge.probes import LOCALITY_KINDS
from workbench.core.models import LoadedModel
from workbench.core.scoring import is_correct, is_exact, normalize, percent
from workbench.core.store import Store, now
from workbench.core.train.sharding import Ranks

METRICS = SCORE_METRICS  # the names are defined once, in data.records; re-exported here


# Questions per generate call when every rank must ask together: a Stop is agreed between
# calls, so this bounds how long a Stop waits (seconds on a GPU).
LOCKSTEP_BATCH = 16


@dataclass(frozen=True)
class ProbeItem:
    probe_id: int
    fact_id: int | None
    metric: str  # efficacy | generalization | locality
    question: str
    answer: str  # gold answer
    aliases: tuple[str, ...]
    system: str = ""
    reference: str = ""  # locality: the base model's answer, to tell whether it is unchanged
    form: str = ""  # efficacy/generalization: how the phrasing asks (knowledge.forms)


@dataclass(frozen=True)
class AnswerMark:
    """How one answer scores."""

    correct: bool  # gold or alias occurs: the headline of every metric, locality included
    exact: bool  # strict exact match with the gold answer
    unchanged: bool | None  # locality only: the text is the base's (normalised); else None


def probe_items(store: Store, sid: int, *, locality: bool = False) -> list[ProbeItem]:
    items = []
    for r in phrasings.with_facts(store, sid):
        if r["kind"] == "question" and r["split"] == "train":
            metric = ScoreMetric.EFFICACY
        elif r["split"] == "probe" and r["kind"] in ("question", "paraphrase"):
            metric = ScoreMetric.GENERALIZATION
        else:
            continue
        items.append(ProbeItem(r["id"], r["fact_id"], metric, r["question"], r["answer"],
                               tuple(json.loads(r["aliases"] or "[]")), r["system"] or "",
                               form=form_of(r["question"])))
    return items + (_locality_items(store, sid) if locality else [])


def _locality_items(store: Store, sid: int) -> list[ProbeItem]:
    rows = phrasings.with_base_answers(store, sid, LOCALITY_KINDS)
    return [ProbeItem(r["id"], None, ScoreMetric.LOCALITY, r["question"], r["answer"],
                      tuple(json.loads(r["aliases"] or "[]")), reference=r["reference"])
            for r in rows]


def live_sample(items: Sequence[ProbeItem], limit: int, *, seed: int = 0) -> list[ProbeItem]:
    """At most `limit` items for a live round, the same ones every round (so the curve
    follows one group of questions), split evenly between the metrics and spread over the
    facts. On a real model on a CPU a round of every probe of 90 facts takes minutes; the
    final round still asks them all."""
    if limit <= 0 or len(items) <= limit:
        return list(items)
    by_metric: dict[str, list[ProbeItem]] = {}
    for item in items:
        by_metric.setdefault(item.metric, []).append(item)
    share = max(1, limit // len(by_metric))
    chosen: list[ProbeItem] = []
    for metric, group in by_metric.items():
        rng = random.Random(f"{seed}:{metric}")
        # One per fact first (a random fact order), then second questions, and so on.
        # Probes of no fact (locality) are each their own group, so they are drawn at random
        # too, not the first ones stored (which are one relation's neighbours).
        per_fact: dict[int | str, list[ProbeItem]] = {}
        for item in group:
            key = item.fact_id if item.fact_id is not None else f"probe {item.probe_id}"
            per_fact.setdefault(key, []).append(item)
        facts = list(per_fact)
        rng.shuffle(facts)
        rounds = [per_fact[f][k] for k in range(max(len(v) for v in per_fact.values()))
                  for f in facts if k < len(per_fact[f])]
        chosen += rounds[:share]
    keep = {id(item) for item in chosen}
    return [item for item in items if id(item) in keep]  # the stored order


def ask_items(loaded: LoadedModel, model: Any, items: Sequence[ProbeItem], *,
              should_stop: Callable[[], bool] | None = None,
              ranks: Ranks | None = None) -> list[str]:
    """Greedy answers of `model` (the training model, possibly wrapped) to every item.
    Raises `generate.Interrupted` as soon as `should_stop()` (a Stop mid-round).

    A sharded model (`ranks.lockstep`) is asked by every rank at once, in batches of
    LOCKSTEP_BATCH with rank 0's Stop agreed before each: a rank that left a round alone
    would leave the others waiting in the next all-gather."""
    lockstep = ranks is not None and ranks.lockstep
    view = dataclasses.replace(loaded, model=model)
    answers: list[str] = [""] * len(items)
    # Batched by system prompt, and the facts' probes apart from locality's: a batch decodes
    # until its longest reply ends, and a tuned model answers its facts in a few tokens
    # ("Quencorwyn") but a general question at length (~100 characters on SmolLM2); mixed,
    # every batch ran to the 32-token budget.
    by_system: dict[tuple[str, bool], list[int]] = {}
    for i, item in enumerate(items):
        by_system.setdefault((item.system, item.metric == ScoreMetric.LOCALITY), []).append(i)
    was_training = model.training
    model.eval()
    try:
        for (system, _), group in by_system.items():
            size = LOCKSTEP_BATCH if lockstep else len(group)
            for start in range(0, len(group), size):
                indices = group[start:start + size]
                if lockstep and ranks.agree(should_stop is not None and should_stop()):
                    raise Interrupted
                replies = ask_questions(view, [items[i].question for i in indices],
                                        system=system, max_new_tokens=32,
                                        should_stop=None if lockstep else should_stop)
                for i, reply in zip(indices, replies):
                    answers[i] = reply
    finally:
        model.train(was_training)
    return answers


def score(item: ProbeItem, answer: str) -> AnswerMark:
    """Correct and exact against the gold answer; for locality also whether it is unchanged."""
    unchanged = (normalize(answer) == normalize(item.reference)
                 if item.metric == ScoreMetric.LOCALITY else None)
    return AnswerMark(is_correct(answer, item.answer, item.aliases),
                      is_exact(answer, item.answer, item.aliases), unchanged)


def marks(items: Sequence[ProbeItem], answers: Sequence[str]) -> list[tuple[str, AnswerMark]]:
    """(metric, mark) of each answer: what `shares` and `record` count."""
    return [(item.metric, score(item, answer)) for item, answer in zip(items, answers)]


def shares(verdicts: Sequence[tuple[str, AnswerMark]]) -> dict[str, float]:
    """Share correct per metric, plus `locality_unchanged` (the share of locality answers
    whose text is the base's) when there were locality answers."""
    totals: dict[str, list[int]] = {}
    for metric, verdict in verdicts:
        totals.setdefault(metric, []).append(int(verdict.correct))
        if verdict.unchanged is not None:
            totals.setdefault(UNCHANGED, []).append(int(verdict.unchanged))
    return {metric: sum(v) / len(v) for metric, v in totals.items()}


def by_form(marked: Iterable[tuple[ProbeItem, bool]],
            metric: str = ScoreMetric.GENERALIZATION) -> dict[str, float]:
    """Share correct of `metric`'s probes per form, from (item, correct) pairs; only forms
    that have probes, in the order of FORMS."""
    found: dict[str, list[bool]] = {}
    for item, correct in marked:
        if item.metric == metric:
            found.setdefault(item.form or "question", []).append(correct)
    return {form: sum(found[form]) / len(found[form]) for form in FORMS if form in found}


def form_line(shares: dict[str, float]) -> str:
    """ "held-out: question 80%, imperative 70%", or '' when there are none."""
    if not shares:
        return ""
    return "held-out: " + ", ".join(f"{form} {percent(share)}" for form, share in shares.items())


def record(store: Store, run_id: int, step: int, items: Sequence[ProbeItem],
           answers: Sequence[str]) -> dict[str, float]:
    """Write one probe_results row per answer; return the share correct per metric (and the
    share of locality answers unchanged, as `locality_unchanged`)."""
    verdicts, rows = marks(items, answers), []
    for item, answer, (_, verdict) in zip(items, answers, verdicts):
        rows.append({"run_id": run_id, "probe_id": item.probe_id, "step": step, "metric": item.metric,
                     "answer": answer, "correct": int(verdict.correct), "exact": int(verdict.exact),
                     "unchanged": None if verdict.unchanged is None else int(verdict.unchanged),
                     "created_at": now()})
    runs.add_answers(store, rows)
    return shares(verdicts)


def wrong_locality(store: Store, run_id: int,
                   step: int) -> list[tuple[str, str, str, float | None]]:
    """(question, gold answer, the run's answer, the base's margin on it) of locality probes
    answered wrongly at `step`: what the run made the model forget, for its verdict."""
    return runs.wrong_locality(store, run_id, step)


def kept_of_sure(store: Store, run_id: int, step: int) -> tuple[int, int]:
    """(still correct, asked) over the locality probes the base was sure of (margin ≥ SURE,
    `knowledge/certainty.py`) at `step`; (0, 0) where no margin was measured."""
    return runs.locality_at_least(store, run_id, step, SURE)


def final_answers(store: Store, run_id: int, step: int) -> list[dict[str, Any]]:
    """Every answer of a run's round at `step`, with its fact and gold answer: the per-fact
    part of an exported scorecard."""
    rows = runs.answers_at(store, run_id, step)
    return [{**r, "correct": bool(r["correct"]), "exact": bool(r["exact"])} for r in rows]


def forget_step(store: Store, run_id: int, step: int) -> None:
    """Drop a step's answers before it is asked again (the final round after a live one)."""
    runs.forget_answers_at(store, run_id, step)


def mark_best(store: Store, run_id: int, step: int) -> None:
    runs.update(store, run_id, {"best_step": step})


def recall_curve(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per probed step, the share correct of each metric (and `locality_unchanged` where
    locality was asked): the live recall chart's data."""
    rows = runs.round_scores(store, run_id)
    curve: dict[int, dict[str, Any]] = {}
    for r in rows:
        point = curve.setdefault(r["step"], {"step": r["step"]})
        point[r["metric"]] = r["score"]
        if r["unchanged"] is not None:  # avg() skips the NULLs of other metrics
            point[UNCHANGED] = r["unchanged"]
    return list(curve.values())
