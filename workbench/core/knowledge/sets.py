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

import sqlite_utils

from workbench.core.errors import KnowledgeError, quoted
from workbench.core.knowledge import io
from workbench.core.knowledge.types import Fact, FactDraft, text_problem
from workbench.core.scoring import normalize
from workbench.core.store import Store, now

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


def _name_taken(db: sqlite_utils.Database, name: str, except_id: int | None = None) -> bool:
    row = db.execute("SELECT id FROM knowledge_sets WHERE name = ? COLLATE NOCASE", [name]).fetchone()
    return row is not None and row[0] != except_id


def create_set(store: Store, name: str, description: str = "") -> int:
    name = _check_name(name)
    with store.write() as db:
        if _name_taken(db, name):
            raise KnowledgeError(f"a knowledge set named {name!r} already exists")
        t = now()
        return int(db["knowledge_sets"].insert(
            {"name": name, "description": description.strip(), "created_at": t, "updated_at": t}
        ).last_pk)


def set_id(store: Store, name_or_id: str | int) -> int:
    """The id of a set given its name (case-insensitive) or id."""
    db = store.db
    text, row = str(name_or_id), None
    if not isinstance(name_or_id, int):
        name = " ".join(text.split())
        # A name no set can have (an unpaired surrogate) would make SQLite raise on the query.
        row = None if text_problem(name) else db.execute(
            "SELECT id FROM knowledge_sets WHERE name = ? COLLATE NOCASE", [name]).fetchone()
    # Then an id: the name comes first, so a set called "2024" is found by its name. Only
    # decimal digits that fit SQLite's integer ("²" is a digit to isdigit() but not to int(),
    # and 30 digits overflow).
    if row is None and (isinstance(name_or_id, int) or (text.isdecimal() and len(text) <= 18)):
        row = db.execute("SELECT id FROM knowledge_sets WHERE id = ?", [int(text)]).fetchone()
    if row is None:
        known = [r[0] for r in db.execute("SELECT name FROM knowledge_sets ORDER BY name")]
        hint = f" (sets: {', '.join(known[:10])})" if known else " (there are no sets yet)"
        raise KnowledgeError(f"no knowledge set {quoted(text)}{hint}")
    return int(row[0])


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
    with store.write() as db:
        set_id(store, sid)
        if _name_taken(db, new_name, except_id=sid):
            raise KnowledgeError(f"a knowledge set named {new_name!r} already exists")
        db.execute("UPDATE knowledge_sets SET name = ?, updated_at = ? WHERE id = ?",
                   [new_name, now(), sid])


def delete_set(store: Store, sid: int) -> None:
    with store.write() as db:
        set_id(store, sid)
        db.execute("DELETE FROM knowledge_sets WHERE id = ?", [sid])  # facts, probes cascade


def copy_set(store: Store, sid: int, new_name: str) -> int:
    """A full copy (facts, phrasings, probes, labels) under a new name."""
    with store.write() as db:
        set_id(store, sid)
        source = db["knowledge_sets"].get(sid)
        new_id = create_set(store, new_name, source["description"])
        fact_map: dict[int, int] = {}
        for row in db.execute_returning_dicts("SELECT * FROM facts WHERE set_id = ? ORDER BY id", [sid]):
            old = row.pop("id")
            row["set_id"] = new_id
            fact_map[old] = int(db["facts"].insert(row).last_pk)
        for row in db.execute_returning_dicts("SELECT * FROM probes WHERE set_id = ? ORDER BY id", [sid]):
            row.pop("id")
            row["set_id"] = new_id
            row["fact_id"] = fact_map.get(row["fact_id"]) if row["fact_id"] else None
            db["probes"].insert(row)
        return new_id


def touch(db: sqlite_utils.Database, sid: int) -> None:
    db.execute("UPDATE knowledge_sets SET updated_at = ? WHERE id = ?", [now(), sid])


def list_sets(store: Store) -> list[SetSummary]:
    rows = store.db.execute(
        """
        SELECT s.id, s.name, s.description, s.updated_at,
          (SELECT count(*) FROM facts f WHERE f.set_id = s.id),
          (SELECT count(*) FROM probes p WHERE p.set_id = s.id AND p.split = 'train'
             AND p.approved = 1),
          (SELECT count(*) FROM probes p WHERE p.set_id = s.id AND p.split = 'probe'
             AND p.fact_id IS NOT NULL AND p.approved = 1),
          (SELECT count(*) FROM probes p WHERE p.set_id = s.id AND p.split = 'probe'
             AND p.kind IN ('locality', 'neighbour'))
        FROM knowledge_sets s ORDER BY s.name COLLATE NOCASE
        """
    ).fetchall()
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


def _asked(db: sqlite_utils.Database, sid: int) -> list[tuple[str, str]]:
    """(question, answer) of every question of every fact in the set."""
    return db.execute(
        "SELECT p.question, f.answer FROM probes p JOIN facts f ON f.id = p.fact_id "
        "WHERE p.set_id = ? AND p.kind = 'question' UNION "
        "SELECT question, answer FROM facts WHERE set_id = ?", [sid, sid]).fetchall()


def _insert_questions(db: sqlite_utils.Database, sid: int, fid: int, questions: Sequence[str],
                      answer: str) -> None:
    t = now()
    for question in questions:
        db["probes"].insert({"set_id": sid, "fact_id": fid, "kind": "question",
                             "split": "train", "question": question, "answer": answer,
                             "origin": "user", "approved": 1, "created_at": t})


def _train_probes_asking(db: sqlite_utils.Database, sid: int, questions: Iterable[str]) -> None:
    """A question is always trained, so a held-out probe anywhere in the set with the same
    text is trained from now on: held out, it would be a probe whose answer was taught."""
    keys = {normalize(q) for q in questions}
    for pid, text in db.execute("SELECT id, question FROM probes WHERE set_id = ? AND "
                                "split = 'probe' AND fact_id IS NOT NULL", [sid]).fetchall():
        if normalize(text) in keys:
            db.execute("UPDATE probes SET split = 'train' WHERE id = ?", [pid])


def add_facts(store: Store, sid: int, drafts: Sequence[FactDraft], *,
              origin: str = "input", lines: Sequence[int] | None = None) -> list[int]:
    """Add facts all-or-nothing, each with all of its questions. A duplicate (one of its
    questions with the same answer, after normalising) of a fact already in the set, or
    within `drafts`, is an error naming the item (or, for a file, the line given in
    `lines`)."""
    with store.write() as db:
        set_id(store, sid)
        seen = {_fact_key(q, a): "the set" for q, a in _asked(db, sid)}
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
            t = now()
            fid = int(db["facts"].insert({**row, "set_id": sid, "created_at": t,
                                          "updated_at": t}).last_pk)
            _insert_questions(db, sid, fid, questions, row["answer"])
            ids.append(fid)
            asked += questions
        _train_probes_asking(db, sid, asked)
        touch(db, sid)
        return ids


def add_fact(store: Store, sid: int, draft: FactDraft) -> int:
    return add_facts(store, sid, [draft], origin="new fact")[0]


def update_fact(store: Store, fact_id: int, **changes: Any) -> None:
    """Edit a fact. Phrasings generated from the old question or answer no longer fit, so
    they are removed when those change (the user's own phrasings are kept)."""
    unknown = set(changes) - set(_FACT_FIELDS)
    if unknown:
        raise KnowledgeError(f"facts have no field(s) {', '.join(sorted(unknown))}")
    with store.write() as db:
        old = get_fact(store, fact_id)
        merged = FactDraft(**{k: changes.get(k, getattr(old, k)) for k in _FACT_FIELDS})
        row = _clean_draft(merged, f"fact {fact_id}")
        clash = db.execute(
            "SELECT id, question, answer FROM facts WHERE set_id = ? AND id != ?",
            [old.set_id, fact_id]).fetchall()
        key = _fact_key(row["question"], row["answer"])
        if any(_fact_key(q, a) == key for _, q, a in clash):
            raise KnowledgeError(f"fact {fact_id}: the edit makes it a duplicate of another fact")
        db["facts"].update(fact_id, {**row, "updated_at": now()})
        if row["question"] != old.question or row["answer"] != old.answer:
            db.execute("DELETE FROM probes WHERE fact_id = ? AND origin != 'user'", [fact_id])
            _replace_question(db, fact_id, old.question, row["question"])
            _train_probes_asking(db, old.set_id, [row["question"]])
            db.execute("UPDATE probes SET answer = ? WHERE fact_id = ? AND kind = 'question'",
                       [row["answer"], fact_id])
            db.execute("UPDATE facts SET known = '', known_detail = '' WHERE id = ?", [fact_id])
        touch(db, old.set_id)


def _replace_question(db: sqlite_utils.Database, fact_id: int, old: str, new: str) -> None:
    """Reword the fact's first question only: its other questions are still good ways of
    asking it. A further question that now repeats the first one is dropped."""
    rows = db.execute("SELECT id, question FROM probes WHERE fact_id = ? AND kind = 'question' "
                      "ORDER BY id", [fact_id]).fetchall()
    first = next((pid for pid, q in rows if q == old), rows[0][0] if rows else None)
    for pid, question in rows:
        if pid != first and normalize(question) == normalize(new):
            db.execute("DELETE FROM probes WHERE id = ?", [pid])
    if first is not None:
        db.execute("UPDATE probes SET question = ? WHERE id = ?", [new, first])


def delete_facts(store: Store, fact_ids: Iterable[int]) -> int:
    ids = list(fact_ids)
    with store.write() as db:
        sets = {r[0] for r in db.execute(
            f"SELECT set_id FROM facts WHERE id IN ({','.join('?' * len(ids))})", ids)} if ids else set()
        for fid in ids:
            db.execute("DELETE FROM facts WHERE id = ?", [fid])
        for sid in sets:
            touch(db, sid)
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


def _questions(store: Store, where: str, arg: int) -> dict[int, list[str]]:
    """fact id → its question phrasings in the order they were added."""
    out: dict[int, list[str]] = {}
    for fid, question in store.db.execute(
            f"SELECT fact_id, question FROM probes WHERE {where} = ? AND kind = 'question' "
            "AND fact_id IS NOT NULL ORDER BY id", [arg]):
        out.setdefault(fid, []).append(question)
    return out


def get_fact(store: Store, fact_id: int) -> Fact:
    rows = list(store.db.execute_returning_dicts("SELECT * FROM facts WHERE id = ?", [fact_id]))
    if not rows:
        raise KnowledgeError(f"no fact with id {fact_id}")
    return _fact_from_row(rows[0], _questions(store, "fact_id", fact_id).get(fact_id, []))


def list_facts(store: Store, sid: int) -> list[Fact]:
    rows = store.db.execute_returning_dicts("SELECT * FROM facts WHERE set_id = ? ORDER BY id", [sid])
    questions = _questions(store, "set_id", sid)
    return [_fact_from_row(r, questions.get(r["id"], [])) for r in rows]


def set_known(store: Store, labels: dict[int, tuple[str, str]]) -> None:
    """Store pre-screen labels: {fact_id: (label, detail)}."""
    with store.write() as db:
        for fid, (label, detail) in labels.items():
            db.execute("UPDATE facts SET known = ?, known_detail = ? WHERE id = ?",
                       [label, detail, fid])
