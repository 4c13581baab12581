"""SQL for knowledge sets and their facts (`knowledge_sets`, `facts`, and the fact's own
question rows in `probes`). Phrasings, probes and the answers stored against them are in
`phrasings.py`.

Functions take the `Store`; inside a caller's `store.write()` they join its transaction (the
store hands each thread one connection), so a multi-step edit stays all-or-nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlite_utils

from workbench.core.store import Store, now


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


# --- sets ------------------------------------------------------------------------------------
def set_id_named(store: Store, name: str) -> int | None:
    """The id of the set called `name`, case ignored."""
    found = store.db.execute("SELECT id FROM knowledge_sets WHERE name = ? COLLATE NOCASE",
                             [name]).fetchone()
    return int(found[0]) if found else None


def set_exists(store: Store, sid: int) -> bool:
    found = store.db.execute("SELECT 1 FROM knowledge_sets WHERE id = ?", [sid]).fetchone()
    return found is not None


def set_names(store: Store) -> list[str]:
    return [r[0] for r in store.db.execute("SELECT name FROM knowledge_sets ORDER BY name")]


def set_row(store: Store, sid: int) -> dict[str, Any] | None:
    rows = store.db.execute_returning_dicts("SELECT * FROM knowledge_sets WHERE id = ?", [sid])
    return rows[0] if rows else None


def set_name(store: Store, sid: int | None) -> str | None:
    found = set_row(store, sid) if sid is not None else None
    return found["name"] if found else None


def set_updated_at(store: Store, sid: int) -> float | None:
    """When the set last changed: what cached answers and token counts are keyed by."""
    found = set_row(store, sid)
    return found["updated_at"] if found else None


def insert_set(store: Store, name: str, description: str) -> int:
    t = now()
    with store.write() as db:
        return int(db["knowledge_sets"].insert(
            {"name": name, "description": description, "created_at": t, "updated_at": t}).last_pk)


def rename_set(store: Store, sid: int, name: str) -> None:
    with store.write() as db:
        db.execute("UPDATE knowledge_sets SET name = ?, updated_at = ? WHERE id = ?",
                   [name, now(), sid])


def delete_set(store: Store, sid: int) -> None:
    with store.write() as db:
        db.execute("DELETE FROM knowledge_sets WHERE id = ?", [sid])  # facts, probes cascade


def copy_contents(store: Store, sid: int, new_id: int) -> None:
    """Copy every fact and phrasing of set `sid` into set `new_id`, keeping which phrasing
    belongs to which fact."""
    with store.write() as db:
        fact_map: dict[int, int] = {}
        for row in db.execute_returning_dicts("SELECT * FROM facts WHERE set_id = ? ORDER BY id",
                                              [sid]):
            old = row.pop("id")
            row["set_id"] = new_id
            fact_map[old] = int(db["facts"].insert(row).last_pk)
        for row in db.execute_returning_dicts("SELECT * FROM probes WHERE set_id = ? ORDER BY id",
                                              [sid]):
            row.pop("id")
            row["set_id"] = new_id
            row["fact_id"] = fact_map.get(row["fact_id"]) if row["fact_id"] else None
            db["probes"].insert(row)


def touch(store: Store | sqlite_utils.Database, sid: int) -> None:
    """Mark the set changed now. Takes an open database too: callers inside a transaction
    (and tests) pass the `db` that `store.write()` gave them."""
    db = store.db if isinstance(store, Store) else store
    db.execute("UPDATE knowledge_sets SET updated_at = ? WHERE id = ?", [now(), sid])


def set_summaries(store: Store) -> list[tuple[Any, ...]]:
    """(id, name, description, updated_at, facts, train phrasings, fact probes, locality
    probes) per set, by name."""
    return store.db.execute(
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


# --- facts -----------------------------------------------------------------------------------
def fact_rows(store: Store, *, fact_id: int | None = None, sid: int | None = None
              ) -> list[dict[str, Any]]:
    """Fact rows by id or by set, in the order they were added."""
    where, arg = ("id", fact_id) if fact_id is not None else ("set_id", sid)
    return store.db.execute_returning_dicts(f"SELECT * FROM facts WHERE {where} = ? ORDER BY id",
                                            [arg])


def questions_by_fact(store: Store, *, fact_id: int | None = None, sid: int | None = None
                      ) -> dict[int, list[str]]:
    """fact id → its question phrasings in the order they were added."""
    where, arg = ("fact_id", fact_id) if fact_id is not None else ("set_id", sid)
    out: dict[int, list[str]] = {}
    for fid, question in store.db.execute(
            f"SELECT fact_id, question FROM probes WHERE {where} = ? AND kind = 'question' "
            "AND fact_id IS NOT NULL ORDER BY id", [arg]):
        out.setdefault(fid, []).append(question)
    return out


def asked(store: Store, sid: int) -> list[tuple[str, str]]:
    """(question, answer) of every question of every fact in the set."""
    return store.db.execute(
        "SELECT p.question, f.answer FROM probes p JOIN facts f ON f.id = p.fact_id "
        "WHERE p.set_id = ? AND p.kind = 'question' UNION "
        "SELECT question, answer FROM facts WHERE set_id = ?", [sid, sid]).fetchall()


def other_facts(store: Store, sid: int, fact_id: int) -> list[tuple[int, str, str]]:
    """(id, question, answer) of the set's facts other than `fact_id`."""
    return store.db.execute("SELECT id, question, answer FROM facts WHERE set_id = ? AND id != ?",
                            [sid, fact_id]).fetchall()


def insert_fact(store: Store, sid: int, row: dict[str, Any], questions: Sequence[str]) -> int:
    """A fact and its question phrasings (always trained, the user's own)."""
    t = now()
    with store.write() as db:
        fid = int(db["facts"].insert({**row, "set_id": sid, "created_at": t,
                                      "updated_at": t}).last_pk)
        for question in questions:
            db["probes"].insert({"set_id": sid, "fact_id": fid, "kind": "question",
                                 "split": "train", "question": question, "answer": row["answer"],
                                 "origin": "user", "approved": 1, "created_at": t})
    return fid


def update_fact(store: Store, fact_id: int, row: dict[str, Any]) -> None:
    with store.write() as db:
        db["facts"].update(fact_id, {**row, "updated_at": now()})


def reanswer_fact(store: Store, fact_id: int, answer: str) -> None:
    """After the question or answer changed: drop the phrasings generated from the old ones
    (the user's own stay), give the questions the new answer and forget the pre-screen."""
    with store.write() as db:
        db.execute("DELETE FROM probes WHERE fact_id = ? AND origin != 'user'", [fact_id])
        db.execute("UPDATE probes SET answer = ? WHERE fact_id = ? AND kind = 'question'",
                   [answer, fact_id])
        db.execute("UPDATE facts SET known = '', known_detail = '' WHERE id = ?", [fact_id])


def fact_question_rows(store: Store, fact_id: int) -> list[tuple[int, str]]:
    """(phrasing id, text) of the fact's questions, oldest first."""
    return store.db.execute("SELECT id, question FROM probes WHERE fact_id = ? AND "
                            "kind = 'question' ORDER BY id", [fact_id]).fetchall()


def fact_sets(store: Store, fact_ids: Sequence[int]) -> set[int]:
    if not fact_ids:
        return set()
    return {r[0] for r in store.db.execute(
        f"SELECT set_id FROM facts WHERE id IN ({_marks(fact_ids)})", list(fact_ids))}


def delete_fact(store: Store, fact_id: int) -> None:
    with store.write() as db:
        db.execute("DELETE FROM facts WHERE id = ?", [fact_id])  # its phrasings cascade


def set_known(store: Store, labels: Iterable[tuple[int, str, str]]) -> None:
    """Pre-screen labels: (fact id, label, detail)."""
    with store.write() as db:
        for fid, label, detail in labels:
            db.execute("UPDATE facts SET known = ?, known_detail = ? WHERE id = ?",
                       [label, detail, fid])
