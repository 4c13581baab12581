"""The fact scorecard (design §4), scored by free generation for several subjects at once.

For a knowledge set and a list of subjects (base, runs, baselines) every probe is asked of
every subject greedily, with the chat template, in the batched generation of `ComparePool`:

- **efficacy**: each fact's own (trained) question answered correctly;
- **generalization**: held-out paraphrases answered correctly, also per form (question,
  imperative, inverted, completion: `by_form`);
- **locality**: locality probes (questions the base answered right when they were built)
  still answered correctly; beside it, the stricter share whose answer text is unchanged
  from the base's (asked in the same pass), since a reworded answer can still be right;
- **abstention** (when the set has abstention probes): questions whose right answer is
  "unknown", answered with "I don't know" rather than a made-up fact.

Correct = the normalised gold or an alias occurs in the normalised answer; strict exact match
is reported beside it. Answers are stored per subject with a fingerprint of what was asked of
what, and reused until the run or the set changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.core.compare.baselines import Baselines
from workbench.core.compare.pool import BASE, ComparePool, Sampling, Subject
from workbench.core.data import knowledge, phrasings
from workbench.core.data.names import SCORE_METRICS, ScoreMetric
from workbench.core.generate import Messages, question_messages
from workbench.core.knowledge.probes import LOCALITY_KINDS
from workbench.core.knowledge.sets import list_facts
from workbench.core.progress import Progress, no_progress
from workbench.core.scoring import abstains, is_correct, is_exact, normalize
from workbench.core.store import Store
from workbench.core.train.probing import UNCHANGED, ProbeItem, by_form, form_line, probe_items

METRICS = (*SCORE_METRICS, ScoreMetric.ABSTENTION)
SCORING = Sampling(max_new_tokens=32, first_line_only=True)  # as the live probes ask
VERSION = 1  # bump when how answers are asked changes: stored answers are then asked again


@dataclass(frozen=True)
class Mark:
    answer: str
    correct: bool  # counts for the metric (locality: still correct, like efficacy)
    exact: bool  # strict exact match with the gold answer
    unchanged: bool | None = None  # locality only: the answer text is the base's


@dataclass
class ScoreRow:
    item: ProbeItem
    marks: dict[str, Mark]  # subject key → mark


@dataclass
class Scorecard:
    set_name: str
    subjects: list[Subject]
    labels: dict[str, str]
    rows: list[ScoreRow]
    notes: dict[str, str] = field(default_factory=dict)  # subject key → how it was asked
    reused: list[str] = field(default_factory=list)  # subjects whose stored answers were used

    def counts(self) -> dict[str, int]:
        return {m: sum(r.item.metric == m for r in self.rows) for m in METRICS}

    def score(self, key: str, metric: str, *, exact: bool = False) -> float | None:
        """Share of `metric`'s probes `key` got right; None when there are none."""
        marks = [r.marks[key] for r in self.rows if r.item.metric == metric and key in r.marks]
        if not marks:
            return None
        return sum(m.exact if exact else m.correct for m in marks) / len(marks)

    def by_form(self, key: str, metric: str = ScoreMetric.GENERALIZATION) -> dict[str, float]:
        """Share of `metric`'s probes `key` got right, per phrasing form that has probes."""
        return by_form(((r.item, r.marks[key].correct) for r in self.rows if key in r.marks),
                       metric)

    def form_line(self, key: str) -> str:
        """ "held-out: question 80%, imperative 70%, …" for `key`; '' without held-out probes."""
        return form_line(self.by_form(key))

    def unchanged(self, key: str) -> float | None:
        """Share of locality probes whose answer text is the base's; None when there are none,
        and for the base, which is the reference itself."""
        marks = [r.marks[key] for r in self.rows
                 if r.item.metric == ScoreMetric.LOCALITY and key in r.marks]
        if not marks or key == BASE.key:
            return None
        return sum(bool(m.unchanged) for m in marks) / len(marks)

    def summary(self) -> dict[str, dict[str, float | None]]:
        return {s.key: {**{m: self.score(s.key, m) for m in METRICS},
                        **{f"{m}_exact": self.score(s.key, m, exact=True) for m in METRICS},
                        UNCHANGED: self.unchanged(s.key)}
                for s in self.subjects}

    def as_json(self) -> dict[str, Any]:
        return {
            "set": self.set_name,
            "subjects": [{"key": s.key, "label": self.labels[s.key], "note": self.notes.get(s.key, "")}
                         for s in self.subjects],
            "counts": self.counts(),
            "summary": self.summary(),
            "generalization_by_form": {s.key: self.by_form(s.key) for s in self.subjects},
            "rows": [{"probe_id": r.item.probe_id, "fact_id": r.item.fact_id,
                      "metric": r.item.metric, "form": r.item.form, "question": r.item.question,
                      "gold": r.item.answer, "aliases": list(r.item.aliases),
                      "answers": {k: {"answer": m.answer, "correct": m.correct, "exact": m.exact,
                                      **({} if m.unchanged is None else {"unchanged": m.unchanged})}
                                  for k, m in r.marks.items()}}
                     for r in self.rows],
        }


def scorecard_items(store: Store, sid: int) -> list[ProbeItem]:
    """Efficacy and generalization probes, then locality and abstention probes."""
    kinds = ("abstention", *LOCALITY_KINDS)
    rows = phrasings.approved_of_kinds(store, sid, kinds)
    extra = [ProbeItem(r["id"], None, ScoreMetric.ABSTENTION if r["kind"] == "abstention"
                       else ScoreMetric.LOCALITY,
                       r["question"], r["answer"], tuple(json.loads(r["aliases"] or "[]")))
             for r in rows]
    return probe_items(store, sid) + sorted(extra, key=lambda i: i.metric != ScoreMetric.LOCALITY)


def mark(item: ProbeItem, answer: str, base_answer: str) -> Mark:
    if item.metric == ScoreMetric.LOCALITY:
        right = bool(item.answer) and is_correct(answer, item.answer, item.aliases)
        return Mark(answer, right, bool(item.answer) and is_exact(answer, item.answer, item.aliases),
                    normalize(answer) == normalize(base_answer))
    if item.metric == ScoreMetric.ABSTENTION:
        return Mark(answer, abstains(answer), abstains(answer))
    return Mark(answer, is_correct(answer, item.answer, item.aliases),
                is_exact(answer, item.answer, item.aliases))


def fingerprint(store: Store, pool: ComparePool, sid: int, subject: Subject,
                baselines: Baselines | None) -> str:
    """What the stored answers depend on: the set's last change, the model (base config or
    the run's outputs and when they were written), how it is asked."""
    parts: dict[str, Any] = {"set": knowledge.set_updated_at(store, sid), "subject": subject.key,
                             "sampling": SCORING.__dict__, "version": VERSION}
    if subject.kind == "run" and subject.run_id in pool.runs:
        out = pool.runs[subject.run_id]
        files = sorted(out.folder.glob("*.safetensors"))
        parts["outputs"] = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    else:
        assert pool.base_cfg is not None
        parts["model"] = [pool.base_cfg.name_or_path, pool.base_cfg.quantization,
                          pool.base_cfg.revision, pool.base_cfg.dtype]
        if baselines is not None and subject.kind in ("in_context", "retrieval"):
            parts["context"] = baselines.describe(subject.kind)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stored(store: Store, sid: int, key: str, fp: str, items: Sequence[ProbeItem]) -> list[str] | None:
    rows = phrasings.scorecard_answers(store, sid, key, fp)
    if not items or any(i.probe_id not in rows for i in items):
        return None
    return [rows[i.probe_id] for i in items]


def _save(store: Store, sid: int, key: str, fp: str, items: Sequence[ProbeItem],
          answers: Sequence[str]) -> None:
    phrasings.save_scorecard_answers(store, sid, key, fp,
                                     ((i.probe_id, a) for i, a in zip(items, answers)))


def conversation(item: ProbeItem, subject: Subject, baselines: Baselines | None) -> Messages:
    system = item.system
    if subject.kind in ("in_context", "retrieval") and baselines is not None:
        system = baselines.system(subject.kind, item.question, system)
    return question_messages(item.question, system)


def build_scorecard(store: Store, pool: ComparePool, sid: int, subjects: Sequence[Subject], *,
                    set_name: str = "", baselines: Baselines | None = None,
                    reuse: bool = True, progress: Progress = no_progress) -> Scorecard:
    """Ask every probe of every subject (the base always: it is locality's reference) in
    batched generations, reusing stored answers whose fingerprint still matches."""
    subjects = [BASE, *[s for s in subjects if s != BASE]]
    subjects = [s for s in subjects if s.key not in pool.unavailable]
    if any(s.kind in ("in_context", "retrieval") for s in subjects) and baselines is None:
        assert pool.base is not None
        baselines = Baselines.build(list_facts(store, sid), pool.base.model, pool.base.tokenizer)
    items = scorecard_items(store, sid)
    answers: dict[str, list[str]] = {}
    prints = {s.key: fingerprint(store, pool, sid, s, baselines) for s in subjects}
    reused = []
    for s in subjects:
        stored = _stored(store, sid, s.key, prints[s.key], items) if reuse else None
        if stored is not None:
            answers[s.key] = stored
            reused.append(s.key)
    todo = [s for s in subjects if s.key not in answers]
    if todo and items:
        # Question-major order: a question's rows for all subjects share a batch (same length).
        requests = [(s, conversation(i, s, baselines)) for i in items for s in todo]
        replies = _ask(pool, requests, progress)
        for n, s in enumerate(todo):
            answers[s.key] = replies[n::len(todo)]
            _save(store, sid, s.key, prints[s.key], items, answers[s.key])
    rows = []
    for n, item in enumerate(items):
        base_answer = answers[BASE.key][n]
        rows.append(ScoreRow(item, {s.key: mark(item, answers[s.key][n], base_answer)
                                    for s in subjects}))
    notes = {k: baselines.describe(k) for k in ("in_context", "retrieval")
             if baselines is not None and any(s.key == k for s in subjects)}
    return Scorecard(set_name, subjects, {s.key: pool.label(s) for s in subjects}, rows,
                     notes, reused)


def _ask(pool: ComparePool, requests: list[tuple[Subject, Messages]], progress: Progress,
         chunk: int = 64) -> list[str]:
    """All requests, `chunk` at a time (each chunk is one mixed batch per model group)."""
    replies: list[str] = []
    for start in range(0, len(requests), chunk):
        replies += pool.generate(requests[start:start + chunk], SCORING, batch_size=chunk)
        progress(min(1.0, (start + chunk) / len(requests)),
                 f"{min(start + chunk, len(requests))} of {len(requests)} answers")
    return replies

