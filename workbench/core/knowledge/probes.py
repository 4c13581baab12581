"""Phrasings of facts and the held-out probe split.

Each fact has phrasings: its own question (kind 'question', always trained: efficacy is
measured on it), paraphrases (templates or a model) and statements. `split_probes` holds out
`holdout` paraphrases per fact as probes (split 'probe'); those are never trained on. The
guarantee is kept in three places: the split marks rows, `training_phrasings` refuses any
train row whose text equals a probe of the same fact, and rendering asserts split == 'train'.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from workbench.core.errors import KnowledgeError
from workbench.core.knowledge import paraphrase
from workbench.core.knowledge.sets import list_facts, set_id, touch
from workbench.core.knowledge.types import Fact, Phrasing, text_problem
from workbench.core.scoring import normalize
from workbench.core.store import Store, now
from workbench.core.progress import Progress, no_progress

LOCALITY_KINDS = ("locality", "neighbour")



def _phrasing(row: dict[str, Any]) -> Phrasing:
    return Phrasing(id=row["id"], fact_id=row["fact_id"], question=row["question"],
                    answer=row["answer"], kind=row["kind"], split=row["split"],
                    origin=row["origin"], aliases=json.loads(row["aliases"]),
                    approved=bool(row["approved"]))


def list_phrasings(store: Store, sid: int, *, split: str | None = None,
                   kinds: Iterable[str] | None = None, fact_id: int | None = None) -> list[Phrasing]:
    sql, args = "SELECT * FROM probes WHERE set_id = ?", [sid]
    if split:
        sql, args = sql + " AND split = ?", [*args, split]
    if fact_id is not None:
        sql, args = sql + " AND fact_id = ?", [*args, fact_id]
    kinds = list(kinds or [])
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        args += kinds
    return [_phrasing(r) for r in store.db.execute_returning_dicts(sql + " ORDER BY id", args)]


def add_phrasings(store: Store, fact: Fact, phrasings: Iterable[Phrasing]) -> int:
    """Add phrasings to a fact, skipping any whose normalised text it already has."""
    with store.write() as db:
        have = {normalize(r[0]) for r in
                db.execute("SELECT question FROM probes WHERE fact_id = ?", [fact.id])}
        added = 0
        for p in phrasings:
            text = " ".join(p.question.split())
            key = normalize(text)
            if not key or key in have:
                continue
            have.add(key)
            db["probes"].insert({
                "set_id": fact.set_id, "fact_id": fact.id, "kind": p.kind, "split": p.split,
                "question": text, "answer": p.answer or fact.answer,
                "aliases": json.dumps(p.aliases or fact.aliases, ensure_ascii=False),
                "origin": p.origin, "approved": int(p.approved), "created_at": now(),
            })
            added += 1
        touch(db, fact.set_id)
        return added


def generate_template_phrasings(store: Store, sid: int, *, n: int = 5,
                                include_statements: bool = True,
                                progress: Progress = no_progress) -> int:
    """Built-in template paraphrases (and statements) for every fact of a set."""
    facts = list_facts(store, sid)
    added = 0
    for i, fact in enumerate(facts):
        items = [Phrasing(question=q, kind="paraphrase", origin="template")
                 for q in paraphrase.template_paraphrases(fact.question, fact.answer, fact.subject, n=n)]
        if include_statements:
            items += [Phrasing(question=s, kind="statement", origin="template")
                      for s in paraphrase.statements(fact.question, fact.answer, fact.subject)]
        added += add_phrasings(store, fact, items)
        progress((i + 1) / max(1, len(facts)), f"fact {i + 1} of {len(facts)}")
    return added


def generate_model_phrasings(store: Store, sid: int, ask: Callable[[list[str]], list[str]], *,
                             n: int = 5, progress: Progress = no_progress) -> int:
    """Paraphrases written by a model (the base or any local instruct model)."""
    facts = list_facts(store, sid)
    added = 0
    for i, fact in enumerate(facts):
        questions = paraphrase.model_paraphrases(fact.question, fact.answer, ask, n=n)
        added += add_phrasings(store, fact, [Phrasing(question=q, kind="paraphrase", origin="model")
                                             for q in questions])
        progress((i + 1) / max(1, len(facts)), f"fact {i + 1} of {len(facts)}")
    return added


def update_phrasing(store: Store, phrasing_id: int, *, question: str | None = None,
                    approved: bool | None = None, split: str | None = None) -> None:
    """Edit, approve/drop, or move a phrasing between train and probe."""
    with store.write() as db:
        row = db.execute("SELECT kind, fact_id FROM probes WHERE id = ?", [phrasing_id]).fetchone()
        if row is None:
            raise KnowledgeError(f"no phrasing with id {phrasing_id}")
        if question is not None:
            if not question.strip():
                raise KnowledgeError("a phrasing cannot be empty")
            if problem := text_problem(question):
                raise KnowledgeError(f"phrasing {phrasing_id} {problem}")
            db.execute("UPDATE probes SET question = ? WHERE id = ?", [" ".join(question.split()), phrasing_id])
        if approved is not None:
            db.execute("UPDATE probes SET approved = ? WHERE id = ?", [int(approved), phrasing_id])
        if split is not None:
            if split not in ("train", "probe"):
                raise KnowledgeError(f"split must be train or probe, got {split!r}")
            if row[0] == "question" and split == "probe":
                raise KnowledgeError("a fact's own question is always trained (efficacy is "
                                     "measured on it); hold out a paraphrase instead")
            db.execute("UPDATE probes SET split = ? WHERE id = ?", [split, phrasing_id])


def delete_phrasing(store: Store, phrasing_id: int) -> None:
    with store.write() as db:
        db.execute("DELETE FROM probes WHERE id = ? AND kind != 'question'", [phrasing_id])


def split_probes(store: Store, sid: int, holdout: int = 2, *, seed: int = 0) -> dict[str, int]:
    """Hold out `holdout` approved paraphrases per fact as probes, the rest train.

    Deterministic for a seed; re-running re-draws the split of paraphrases only (the fact's
    own question and statements are always trained). Returns counts for the summary."""
    if holdout < 0:
        raise KnowledgeError(f"the number of held-out phrasings must be 0 or more, got {holdout}")
    short = 0
    with store.write() as db:
        set_id(store, sid)
        facts = [r[0] for r in db.execute("SELECT id FROM facts WHERE set_id = ? ORDER BY id", [sid])]
        for fid in facts:
            rows = [r[0] for r in db.execute(
                "SELECT id FROM probes WHERE fact_id = ? AND kind = 'paraphrase' AND approved = 1 "
                "ORDER BY id", [fid])]
            rng = random.Random(seed * 1_000_003 + fid)
            held = set(rng.sample(rows, min(holdout, len(rows))))
            short += len(rows) < holdout
            for pid in rows:
                db.execute("UPDATE probes SET split = ? WHERE id = ?",
                           ["probe" if pid in held else "train", pid])
        touch(db, sid)
    counts = split_counts(store, sid)
    counts["facts_short_of_probes"] = short
    return counts


def split_counts(store: Store, sid: int) -> dict[str, int]:
    rows = store.db.execute(
        "SELECT split, kind, count(*) FROM probes WHERE set_id = ? AND approved = 1 "
        "GROUP BY split, kind", [sid]).fetchall()
    counts = {"train": 0, "probe": 0, "statements": 0, "locality": 0}
    for split, kind, n in rows:
        if kind in LOCALITY_KINDS:
            counts["locality"] += n
            continue
        counts[split] += n
        if kind == "statement":
            counts["statements"] += n
    return counts


def training_phrasings(store: Store, sid: int) -> list[Phrasing]:
    """Approved train phrasings of a set's facts, minus any whose text equals a probe of the
    same fact (a second line of defence: an edit could make two rows identical)."""
    probes = {(p.fact_id, normalize(p.question)) for p in list_phrasings(store, sid, split="probe")}
    return [p for p in list_phrasings(store, sid, split="train")
            if p.approved and p.fact_id is not None and (p.fact_id, normalize(p.question)) not in probes]


def disjointness_violations(store: Store, sid: int) -> list[str]:
    """Texts marked both train and probe for a fact in the store (should always be empty;
    `training_phrasings` filters them out regardless)."""
    train = {(p.fact_id, normalize(p.question)) for p in list_phrasings(store, sid, split="train")}
    return sorted(f"fact {f}: {q}" for f, q in train &
                  {(p.fact_id, normalize(p.question)) for p in list_phrasings(store, sid, split="probe")})


def add_abstention_probes(store: Store, sid: int, questions: Iterable[str]) -> int:
    """Questions whose right answer is "I don't know" (about people or things the set never
    mentions): the scorecard's abstention metric counts how often a model declines instead
    of making something up. Held out (split 'probe'), never trained on; repeats are skipped."""
    texts = [" ".join(q.split()) for q in questions if q and q.strip()]
    if not texts:
        raise KnowledgeError("give at least one question whose right answer is unknown")
    too_long = [t for t in texts if len(t) > 1000]
    if too_long:
        raise KnowledgeError(f"an abstention question is {len(too_long[0])} characters; the "
                             "limit is 1000", hint="nothing was added")
    for text in texts:  # checked before the transaction: SQLite would fail on it part-way
        if problem := text_problem(text):
            raise KnowledgeError(f"an abstention question {problem}", hint="nothing was added")
    with store.write() as db:
        have = {normalize(r[0]) for r in db.execute(
            "SELECT question FROM probes WHERE set_id = ? AND kind = 'abstention'", [sid])}
        added = 0
        for text in texts:
            if normalize(text) in have:
                continue
            have.add(normalize(text))
            db["probes"].insert({"set_id": sid, "fact_id": None, "kind": "abstention",
                                 "split": "probe", "question": text, "answer": "unknown",
                                 "aliases": "[]", "origin": "user", "approved": 1,
                                 "created_at": now()})
            added += 1
        touch(db, sid)
    return added
