"""Knowledge sets and their facts in the store: create, rename, copy, delete; add, edit,
delete facts. Every change is one transaction: an import of 500 facts with one bad row
writes nothing.

A fact's own question is also stored as its first phrasing (kind 'question', split 'train'),
so the phrasings table alone says what is trained on and what is held out. A fact asked in
several ways has one such row per question (origin 'user'); the facts table keeps the first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from workbench.core.data import knowledge, phrasings
from workbench.core.errors import KnowledgeError, quoted
from workbench.core.knowledge import io
from workbench.core.knowledge.types import Fact, FactDraft, text_problem
from workbench.core.scoring import normalize
from workbench.core.store import Store

MAX_NAME = 80
_FACT_FIELDS = ("subject", "question", "answer", "aliases", "tags", "source", "system")


@dataclass(frozen=True)
class SetSummary:
    id: int
    name: str
    description: str
    facts: int
    train_phrasings: int
    probes: int
    locality: int
    updated_at: float


# ---- sets ------------------------------------------------------------------------------
def _check_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise KnowledgeError("a knowledge set needs a name")
    if len(name) > MAX_NAME:
        raise KnowledgeError(f"set names are at most {MAX_NAME} characters, got {len(name)}")
    problem = text_problem(name)
    if problem:  # else SQLite fails on it, or it shows up in every menu
        raise KnowledgeError(f"the set name {problem}")
    return name


def _name_taken(store: Store, name: str, except_id: int | None = None) -> bool:
    found = knowledge.set_id_named(store, name)
    return found is not None and found != except_id


def create_set(store: Store, name: str, description: str = "") -> int:
    name = _check_name(name)
    with store.write():
        if _name_taken(store, name):
            raise KnowledgeError(f"a knowledge set named {name!r} already exists")
        return knowledge.insert_set(store, name, description.strip())


def set_id(store: Store, name_or_id: str | int) -> int:
    """The id of a set given its name (case-insensitive) or id."""
    text, found = str(name_or_id), None
    if not isinstance(name_or_id, int):
        name = " ".join(text.split())
        # A name no set can have (an unpaired surrogate) would make SQLite raise on the query.
        found = None if text_problem(name) else knowledge.set_id_named(store, name)
    # Then an id: the name comes first, so a set called "2024" is found by its name. Only
    # decimal digits that fit SQLite's integer ("²" is a digit to isdigit() but not to int(),
    # and 30 digits overflow).
    if found is None and (isinstance(name_or_id, int) or (text.isdecimal() and len(text) <= 18)):
        found = int(text) if knowledge.set_exists(store, int(text)) else None
    if found is None:
        known = knowledge.set_names(store)
        hint = f" (sets: {', '.join(known[:10])})" if known else " (there are no sets yet)"
        raise KnowledgeError(f"no knowledge set {quoted(text)}{hint}")
    return found


@contextmanager
def ensuring_set(store: Store, name: str) -> Iterator[int]:
    """The id of the set called `name`, created if missing, for adding to in the block. If
    the block fails, a set created here is deleted again: a refused import or fact leaves no
    empty set behind, so a failed add changes nothing at all."""
    try:
        sid, created = set_id(store, name), False
    except KnowledgeError:
        sid, created = create_set(store, name), True
    try:
        yield sid
    except BaseException:
        if created:
            delete_set(store, sid)
        raise


def rename_set(store: Store, sid: int, new_name: str) -> None:
    new_name = _check_name(new_name)
    with store.write():
        set_id(store, sid)
        if _name_taken(store, new_name, except_id=sid):
            raise KnowledgeError(f"a knowledge set named {new_name!r} already exists")
        knowledge.rename_set(store, sid, new_name)


def delete_set(store: Store, sid: int) -> None:
    with store.write():
        set_id(store, sid)
        knowledge.delete_set(store, sid)


def copy_set(store: Store, sid: int, new_name: str) -> int:
    """A full copy (facts, phrasings, probes, labels) under a new name."""
    with store.write():
        set_id(store, sid)
        source = knowledge.set_row(store, sid)
        assert source is not None  # set_id() above refuses an unknown set
        new_id = create_set(store, new_name, source["description"])
        knowledge.copy_contents(store, sid, new_id)
        return new_id


touch = knowledge.touch  # re-exported: phrasing edits and tests mark a set changed through here


def list_sets(store: Store) -> list[SetSummary]:
    rows = knowledge.set_summaries(store)
    return [SetSummary(id=r[0], name=r[1], description=r[2], updated_at=r[3], facts=r[4],
                       train_phrasings=r[5], probes=r[6], locality=r[7]) for r in rows]


# ---- facts -----------------------------------------------------------------------------
def _more_questions(draft: FactDraft, question: str, where: str) -> list[str]:
    """The draft's further questions, cleaned, without empties or repeats of one another."""
    seen, out = {normalize(question)}, []
    for text in draft.more_questions:
        text = io.clean_field(text, where, "a question")
        if text and normalize(text) not in seen:
            seen.add(normalize(text))
            out.append(text)
    return out


def _clean_draft(draft: FactDraft, where: str) -> dict[str, Any]:
    # Forms and table edits reach here without the file importer: the same field checks
    # (length, NUL, unpaired surrogates) apply, or SQLite fails on the text mid-transaction.
    def clean(value: str, name: str) -> str:
        return io.clean_field(value, where, name)

    q, a = clean(draft.question, "question"), clean(draft.answer, "answer")
    if not q:
        raise KnowledgeError(f"{where}: the question is empty")
    if not a:
        raise KnowledgeError(f"{where}: the answer is empty")
    aliases = [x for x in (clean(x, "an alias") for x in draft.aliases) if x and x != a]
    tags = [t for t in (clean(t, "a tag") for t in draft.tags) if t]
    return {
        "subject": clean(draft.subject, "subject"), "question": q, "answer": a,
        "aliases": json.dumps(list(dict.fromkeys(aliases)), ensure_ascii=False),
        "tags": json.dumps(list(dict.fromkeys(tags)), ensure_ascii=False),
        "source": clean(draft.source, "source"), "system": clean(draft.system, "system"),
    }


def _fact_key(question: str, answer: str) -> tuple[str, str]:
    return normalize(question), normalize(answer)


def _train_probes_asking(store: Store, sid: int, questions: Iterable[str]) -> None:
    """A question is always trained, so a held-out probe anywhere in the set with the same
    text is trained from now on: held out, it would be a probe whose answer was taught."""
    keys = {normalize(q) for q in questions}
    for pid, text in phrasings.held_out(store, sid):
        if normalize(text) in keys:
            phrasings.update(store, pid, {"split": "train"})


def add_facts(store: Store, sid: int, drafts: Sequence[FactDraft], *,
              origin: str = "input", lines: Sequence[int] | None = None) -> list[int]:
    """Add facts all-or-nothing, each with all of its questions. A duplicate (one of its
    questions with the same answer, after normalising) of a fact already in the set, or
    within `drafts`, is an error naming the item (or, for a file, the line given in
    `lines`)."""
    with store.write():
        set_id(store, sid)
        seen = {_fact_key(q, a): "the set" for q, a in knowledge.asked(store, sid)}
        ids, asked = [], []
        for index, draft in enumerate(drafts, start=1):
            if lines is not None:
                where = f"{origin} line {lines[index - 1]}"
            else:
                where = f"{origin} item {index}" if len(drafts) > 1 else origin
            row = _clean_draft(draft, where)
            questions = [row["question"], *_more_questions(draft, row["question"], where)]
            for question in questions:
                key = _fact_key(question, row["answer"])
                if key in seen:
                    raise KnowledgeError(f"{where}: duplicate of a fact already in {seen[key]} "
                                         f"({quoted(question)} → {quoted(row['answer'])})")
                seen[key] = f"line {lines[index - 1]}" if lines is not None else f"item {index}"
            ids.append(knowledge.insert_fact(store, sid, row, questions))
            asked += questions
        _train_probes_asking(store, sid, asked)
        touch(store, sid)
        return ids


def add_fact(store: Store, sid: int, draft: FactDraft) -> int:
    return add_facts(store, sid, [draft], origin="new fact")[0]


def update_fact(store: Store, fact_id: int, **changes: Any) -> None:
    """Edit a fact. Phrasings generated from the old question or answer no longer fit, so
    they are removed when those change (the user's own phrasings are kept)."""
    unknown = set(changes) - set(_FACT_FIELDS)
    if unknown:
        raise KnowledgeError(f"facts have no field(s) {', '.join(sorted(unknown))}")
    with store.write():
        old = get_fact(store, fact_id)
        merged = FactDraft(**{k: changes.get(k, getattr(old, k)) for k in _FACT_FIELDS})
        row = _clean_draft(merged, f"fact {fact_id}")
        key = _fact_key(row["question"], row["answer"])
        if any(_fact_key(q, a) == key for _, q, a in knowledge.other_facts(store, old.set_id,
                                                                            fact_id)):
            raise KnowledgeError(f"fact {fact_id}: the edit makes it a duplicate of another fact")
        knowledge.update_fact(store, fact_id, row)
        if row["question"] != old.question or row["answer"] != old.answer:
            # Generated phrasings no longer fit, the questions take the new answer and the
            # pre-screen is stale; none of that depends on the rewording below.
            knowledge.reanswer_fact(store, fact_id, row["answer"])
            _replace_question(store, fact_id, old.question, row["question"])
            _train_probes_asking(store, old.set_id, [row["question"]])
        touch(store, old.set_id)


def _replace_question(store: Store, fact_id: int, old: str, new: str) -> None:
    """Reword the fact's first question only: its other questions are still good ways of
    asking it. A further question that now repeats the first one is dropped."""
    rows = knowledge.fact_question_rows(store, fact_id)
    first = next((pid for pid, q in rows if q == old), rows[0][0] if rows else None)
    for pid, question in rows:
        if pid != first and normalize(question) == normalize(new):
            phrasings.delete(store, pid)
    if first is not None:
        phrasings.update(store, first, {"question": new})


def delete_facts(store: Store, fact_ids: Iterable[int]) -> int:
    ids = list(fact_ids)
    with store.write():
        sets = knowledge.fact_sets(store, ids)
        for fid in ids:
            knowledge.delete_fact(store, fid)
        for sid in sets:
            touch(store, sid)
    return len(ids)


def _fact_from_row(row: dict[str, Any], questions: Sequence[str] = ()) -> Fact:
    first = normalize(row["question"])
    return Fact(
        id=row["id"], set_id=row["set_id"], subject=row["subject"], question=row["question"],
        answer=row["answer"], aliases=json.loads(row["aliases"]), tags=json.loads(row["tags"]),
        source=row["source"], system=row["system"], known=row["known"],
        known_detail=row["known_detail"],
        more_questions=[q for q in questions if normalize(q) != first],
    )


def get_fact(store: Store, fact_id: int) -> Fact:
    rows = knowledge.fact_rows(store, fact_id=fact_id)
    if not rows:
        raise KnowledgeError(f"no fact with id {fact_id}")
    questions = knowledge.questions_by_fact(store, fact_id=fact_id)
    return _fact_from_row(rows[0], questions.get(fact_id, []))


def list_facts(store: Store, sid: int) -> list[Fact]:
    questions = knowledge.questions_by_fact(store, sid=sid)
    return [_fact_from_row(r, questions.get(r["id"], []))
            for r in knowledge.fact_rows(store, sid=sid)]


def set_known(store: Store, labels: dict[int, tuple[str, str]]) -> None:
    """Store pre-screen labels: {fact_id: (label, detail)}."""
    knowledge.set_known(store, [(fid, label, detail) for fid, (label, detail) in labels.items()])
