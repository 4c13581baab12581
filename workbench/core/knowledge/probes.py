"""Phrasings of facts and the held-out probe split.

Each fact has phrasings: its questions (kind 'question', always trained: efficacy is
measured on each), paraphrases (templates or a model, in several forms: see `forms`) and
statements. `split_probes` holds out `holdout` paraphrases per fact as probes (split
'probe'); those are never trained on.

The guarantee is set-wide, not per fact: a text held out for one fact may be the trained
question of another (two rows of a file asking the same thing), and training on it would
teach the probe's answer. So a text has one split in a set: the split never holds out a
text trained anywhere in the set, moving a phrasing moves every phrasing with its text,
`training_phrasings` drops any train row whose text is held out anywhere in the set, and
rendering asserts split == 'train'.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from workbench.core.data import phrasings as stored  # the name `phrasings` is a parameter below
from workbench.core.errors import KnowledgeError, quoted
from workbench.core.knowledge import forms, paraphrase
from workbench.core.knowledge.sets import list_facts, set_id, touch
from workbench.core.knowledge.types import Fact, Phrasing, text_problem
from workbench.core.scoring import normalize
from workbench.core.store import Store
from workbench.core.progress import Progress, no_progress

LOCALITY_KINDS = ("locality", "neighbour")



def _phrasing(row: dict[str, Any]) -> Phrasing:
    return Phrasing(id=row["id"], fact_id=row["fact_id"], question=row["question"],
                    answer=row["answer"], kind=row["kind"], split=row["split"],
                    origin=row["origin"], aliases=json.loads(row["aliases"]),
                    approved=bool(row["approved"]))


def list_phrasings(store: Store, sid: int, *, split: str | None = None,
                   kinds: Iterable[str] | None = None, fact_id: int | None = None) -> list[Phrasing]:
    rows = stored.rows(store, sid, split=split, kinds=list(kinds or []), fact_id=fact_id)
    return [_phrasing(r) for r in rows]


def _held_texts(store: Store, sid: int) -> set[str]:
    """Normalised texts held out as probes of the set's facts."""
    return {normalize(text) for text in stored.held_out_texts(store, sid)}


def add_phrasings(store: Store, fact: Fact, phrasings: Iterable[Phrasing]) -> int:
    """Add phrasings to a fact, skipping any whose normalised text it already has. A text
    already held out elsewhere in the set is added held out too, never trained."""
    with store.write():
        have = {normalize(text) for text in stored.fact_texts(store, fact.id)}
        held = _held_texts(store, fact.set_id)
        added = 0
        for p in phrasings:
            text = " ".join(p.question.split())
            key = normalize(text)
            if not key or key in have:
                continue
            have.add(key)
            split = "probe" if key in held and p.kind != "question" else p.split
            stored.insert(store, {
                "set_id": fact.set_id, "fact_id": fact.id, "kind": p.kind, "split": split,
                "question": text, "answer": p.answer or fact.answer,
                "aliases": json.dumps(p.aliases or fact.aliases, ensure_ascii=False),
                "origin": p.origin, "approved": int(p.approved),
            })
            added += 1
        touch(store, fact.set_id)
        return added


def generate_template_phrasings(store: Store, sid: int, *, n: int = 5,
                                include_statements: bool = True,
                                progress: Progress = no_progress) -> int:
    """Built-in template paraphrases for every fact of a set: `n` questions, plus up to two
    in each other form (imperative, inverted, completion) so held-out probes can differ in
    form from the trained question; and statements."""
    facts = list_facts(store, sid)
    added = 0
    for i, fact in enumerate(facts):
        texts = [*paraphrase.template_paraphrases(fact.question, fact.answer, fact.subject, n=n),
                 *paraphrase.form_variants(fact.question, fact.answer, fact.subject)]
        items = [Phrasing(question=q, kind="paraphrase", origin="template") for q in texts]
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


def _same_text(store: Store, sid: int, text: str) -> list[tuple[int, str, str]]:
    """(id, kind, split) of the set's fact phrasings whose normalised text is `text`'s."""
    key = normalize(text)
    return [(pid, kind, split) for pid, _, kind, split, _, q in stored.of_facts(store, sid)
            if normalize(q) == key]


def _move_text(store: Store, sid: int, text: str, split: str) -> None:
    """Put every phrasing of the set with this text in `split`: a text trained for one fact
    and held out for another would leak. A fact's question is always trained."""
    same = _same_text(store, sid, text)
    if split == "probe" and any(kind == "question" for _, kind, _ in same):
        raise KnowledgeError("a fact's own question is always trained (efficacy is measured "
                             "on it); hold out a paraphrase instead")
    for pid, _, current in same:
        if current != split:
            stored.update(store, pid, {"split": split})


def _check_not_repeated(store: Store, phrasing_id: int, fact_id: int | None, kind: str,
                        text: str) -> None:
    """An edit may not turn a phrasing into another one its fact already has."""
    if fact_id is None:
        return
    key = normalize(text)
    for pid, other_kind, other in stored.siblings(store, fact_id, phrasing_id):
        if normalize(other) == key and (other_kind == kind or other == text):
            raise KnowledgeError(f"phrasing {phrasing_id}: fact {fact_id} already has "
                                 f"{quoted(other)} (phrasing {pid})")


def update_phrasing(store: Store, phrasing_id: int, *, question: str | None = None,
                    approved: bool | None = None, split: str | None = None) -> None:
    """Edit, approve/drop, or move a phrasing between train and probe (with every phrasing
    of the set that has the same text). Edited text that is held out elsewhere in the set
    is held out here too, unless one of them is a fact's question: those stay trained."""
    with store.write():
        row = stored.get(store, phrasing_id)
        if row is None:
            raise KnowledgeError(f"no phrasing with id {phrasing_id}")
        kind, fact_id, sid, text, current = row
        if split is not None and split not in ("train", "probe"):
            raise KnowledgeError(f"split must be train or probe, got {split!r}")
        if kind == "question" and split == "probe":
            raise KnowledgeError("a fact's own question is always trained (efficacy is "
                                 "measured on it); hold out a paraphrase instead")
        if question is not None:
            if not question.strip():
                raise KnowledgeError("a phrasing cannot be empty")
            if problem := text_problem(question):
                raise KnowledgeError(f"phrasing {phrasing_id} {problem}")
            new_text = " ".join(question.split())
            if new_text != text:
                _check_not_repeated(store, phrasing_id, fact_id, kind, new_text)
                stored.update(store, phrasing_id, {"question": new_text})
                text = new_text
                # The table sends every row's split; only a changed one is a move.
                if fact_id is not None and split in (None, current):
                    same = _same_text(store, sid, text)
                    kinds, splits = {k for _, k, _ in same}, {s for _, _, s in same}
                    settled = "train" if "question" in kinds or splits == {"train"} else "probe"
                    _move_text(store, sid, text, settled)
        if approved is not None:
            stored.update(store, phrasing_id, {"approved": int(approved)})
        if split is not None and split != current:
            if fact_id is None:
                stored.update(store, phrasing_id, {"split": split})
            else:
                _move_text(store, sid, text, split)


def _pick_spread(candidates: list[tuple[str, str]], own_form: str, holdout: int,
                 rng: random.Random) -> list[str]:
    """Up to `holdout` texts from (text key, form) candidates: one of each form other than
    `own_form` in turn (forms in random order), and the fact's own form only when those run
    out."""
    by_form: dict[str, list[str]] = {}
    for key, form in candidates:
        by_form.setdefault(form, []).append(key)
    for queue in by_form.values():
        rng.shuffle(queue)
    others = sorted(f for f in by_form if f != own_form)
    rng.shuffle(others)
    picked: list[str] = []
    for turn in (others, [own_form]):
        queues = [by_form[f] for f in turn if f in by_form]
        while queues and len(picked) < holdout:
            for queue in queues[:holdout - len(picked)]:
                picked.append(queue.pop())
            queues = [q for q in queues if q]
    return picked


def split_probes(store: Store, sid: int, holdout: int = 2, *, seed: int = 0) -> dict[str, int]:
    """Hold out `holdout` approved paraphrases per fact as probes, the rest train.

    Never held out: a text (normalised) that any trained phrasing of the set has: a fact's
    question, a statement, a paraphrase of another fact kept for training; nor the start of
    a trained question or statement ("The capital of X is" of "The capital of X is Y.":
    training on the sentence teaches that completion word for word). A text that is
    held out is held out wherever it occurs, so it is trained for no fact (a fact sharing
    paraphrases with another may so get more than `holdout` probes). Per fact, phrasings in
    another form than its question (`forms.form_of`) come first, spread over the forms.
    Deterministic for a seed; re-running re-draws the split of paraphrases only (questions
    and statements are always trained). Returns counts for the summary."""
    if holdout < 0:
        raise KnowledgeError(f"the number of held-out phrasings must be 0 or more, got {holdout}")
    short = 0
    with store.write():
        set_id(store, sid)
        rows = stored.of_facts(store, sid)
        fixed = [(normalize(q), split) for _, _, kind, split, _, q in rows if kind != "paraphrase"]
        trained = {key for key, split in fixed if split == "train"}
        held = {key for key, split in fixed if split == "probe"} - trained
        starts = {" ".join(words[:n]) for words in (key.split() for key in trained)
                  for n in range(1, len(words))}
        candidates: dict[int, list[tuple[str, str]]] = {}
        seen: set[tuple[int, str]] = set()
        for _, fid, kind, _, approved, q in rows:
            key = normalize(q)
            usable = key not in trained and key not in starts
            if kind == "paraphrase" and approved and usable and (fid, key) not in seen:
                seen.add((fid, key))
                candidates.setdefault(fid, []).append((key, forms.form_of(q)))
        for fact in list_facts(store, sid):
            fid, question = fact.id, fact.question
            mine = candidates.get(fid, [])
            rng = random.Random(seed * 1_000_003 + fid)
            held.update(_pick_spread(mine, forms.form_of(question), holdout, rng))
            short += len(mine) < holdout
        for pid, _, kind, split, _, q in rows:
            wanted = "probe" if normalize(q) in held else "train"
            if kind == "paraphrase" and split != wanted:
                stored.update(store, pid, {"split": wanted})
        touch(store, sid)
    counts = split_counts(store, sid)
    counts["facts_short_of_probes"] = short
    return counts


def split_counts(store: Store, sid: int) -> dict[str, int]:
    counts = {"train": 0, "probe": 0, "statements": 0, "locality": 0}
    for split, kind, n in stored.split_counts(store, sid):
        if kind in LOCALITY_KINDS:
            counts["locality"] += n
            continue
        counts[split] += n
        if kind == "statement":
            counts["statements"] += n
    return counts


def training_phrasings(store: Store, sid: int) -> list[Phrasing]:
    """Approved train phrasings of a set's facts, minus any whose text equals a probe
    anywhere in the set, of any fact (a second line of defence: an edit or an import can make
    two rows identical)."""
    held = {normalize(p.question) for p in list_phrasings(store, sid, split="probe")}
    return [p for p in list_phrasings(store, sid, split="train")
            if p.approved and p.fact_id is not None and normalize(p.question) not in held]


def disjointness_violations(store: Store, sid: int) -> list[str]:
    """Texts marked train somewhere in the set and probe somewhere in the set, with the facts
    on each side. Empty after `split_probes` and the edits above; `training_phrasings`
    filters such texts out regardless."""
    train: dict[str, set[int | None]] = {}
    for p in list_phrasings(store, sid, split="train"):
        train.setdefault(normalize(p.question), set()).add(p.fact_id)
    held: dict[str, set[int | None]] = {}
    for p in list_phrasings(store, sid, split="probe"):
        held.setdefault(normalize(p.question), set()).add(p.fact_id)

    def facts(ids: set[int | None]) -> str:
        return ", ".join(str(i) for i in sorted(i for i in ids if i is not None)) or "none"

    return sorted(f"{key}: trained for fact {facts(train[key])}, held out for fact "
                  f"{facts(held[key])}" for key in train.keys() & held.keys())


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
    with store.write():
        have = {normalize(text) for text in stored.of_kind(store, sid, "abstention")}
        added = 0
        for text in texts:
            if normalize(text) in have:
                continue
            have.add(normalize(text))
            stored.insert(store, {"set_id": sid, "fact_id": None, "kind": "abstention",
                                     "split": "probe", "question": text, "answer": "unknown",
                                     "aliases": "[]", "origin": "user", "approved": 1})
            added += 1
        touch(store, sid)
    return added
