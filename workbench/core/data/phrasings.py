"""SQL for phrasings and probes (`probes`), and the answers stored against them that belong
to the set rather than to a run: the base model's answers (`base_answers`, and its reference
answers to locality probes) and the Compare tab's scorecard answers (`scorecard_answers`).

Functions take the `Store`; inside a caller's `store.write()` they join its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from workbench.core.store import Store, now

_MAX_PARAMS = 500  # SQLite's limit on bound parameters is 999 in old builds


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


# --- phrasings -------------------------------------------------------------------------------
def rows(store: Store, sid: int, *, split: str | None = None, kinds: Sequence[str] = (),
         fact_id: int | None = None) -> list[dict[str, Any]]:
    """The set's phrasing rows, filtered, in the order they were added."""
    sql, args = "SELECT * FROM probes WHERE set_id = ?", [sid]
    if split:
        sql, args = sql + " AND split = ?", [*args, split]
    if fact_id is not None:
        sql, args = sql + " AND fact_id = ?", [*args, fact_id]
    if kinds:
        sql, args = sql + f" AND kind IN ({_marks(kinds)})", [*args, *kinds]
    return store.db.execute_returning_dicts(sql + " ORDER BY id", args)


def get(store: Store, phrasing_id: int) -> tuple[str, int | None, int, str, str] | None:
    """(kind, fact id, set id, text, split) of one phrasing."""
    return store.db.execute("SELECT kind, fact_id, set_id, question, split FROM probes "
                            "WHERE id = ?", [phrasing_id]).fetchone()


def texts(store: Store, sid: int) -> list[str]:
    """Every phrasing and probe text of the set."""
    return [r[0] for r in store.db.execute("SELECT question FROM probes WHERE set_id = ?", [sid])]


def fact_texts(store: Store, fact_id: int) -> list[str]:
    return [r[0] for r in store.db.execute("SELECT question FROM probes WHERE fact_id = ?",
                                           [fact_id])]


def held_out_texts(store: Store, sid: int) -> list[str]:
    """Texts held out as probes of the set's facts."""
    return [r[0] for r in store.db.execute(
        "SELECT question FROM probes WHERE set_id = ? AND split = 'probe' "
        "AND fact_id IS NOT NULL", [sid])]


def held_out(store: Store, sid: int) -> list[tuple[int, str]]:
    """(id, text) of the probes of the set's facts."""
    return store.db.execute("SELECT id, question FROM probes WHERE set_id = ? AND "
                            "split = 'probe' AND fact_id IS NOT NULL", [sid]).fetchall()


def of_facts(store: Store, sid: int) -> list[tuple[int, int, str, str, int, str]]:
    """(id, fact id, kind, split, approved, text) of every phrasing of the set's facts."""
    return store.db.execute("SELECT id, fact_id, kind, split, approved, question FROM probes "
                            "WHERE set_id = ? AND fact_id IS NOT NULL ORDER BY id",
                            [sid]).fetchall()


def siblings(store: Store, fact_id: int, phrasing_id: int) -> list[tuple[int, str, str]]:
    """(id, kind, text) of the fact's other phrasings."""
    return store.db.execute("SELECT id, kind, question FROM probes WHERE fact_id = ? AND id != ?",
                            [fact_id, phrasing_id]).fetchall()


def of_kind(store: Store, sid: int, kind: str) -> list[str]:
    return [r[0] for r in store.db.execute(
        "SELECT question FROM probes WHERE set_id = ? AND kind = ?", [sid, kind])]


def insert(store: Store, row: dict[str, Any]) -> int:
    with store.write() as db:
        return int(db["probes"].insert({"created_at": now(), **row}).last_pk)


_EDITABLE = ("question", "split", "approved")


def update(store: Store, phrasing_id: int, fields: dict[str, Any]) -> None:
    """Change a phrasing's text, split or approval (the only columns an edit may touch)."""
    unknown = set(fields) - set(_EDITABLE)
    if unknown:
        raise ValueError(f"phrasings cannot be edited in {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    with store.write() as db:
        db.execute(f"UPDATE probes SET {assignments} WHERE id = ?", [*fields.values(), phrasing_id])


def delete(store: Store, phrasing_id: int) -> None:
    with store.write() as db:
        db.execute("DELETE FROM probes WHERE id = ?", [phrasing_id])


def split_counts(store: Store, sid: int) -> list[tuple[str, str, int]]:
    """(split, kind, count) of the set's approved phrasings."""
    return store.db.execute(
        "SELECT split, kind, count(*) FROM probes WHERE set_id = ? AND approved = 1 "
        "GROUP BY split, kind", [sid]).fetchall()


def with_facts(store: Store, sid: int) -> list[dict[str, Any]]:
    """Approved phrasings with their fact's answer, aliases and system prompt."""
    return store.db.execute_returning_dicts(
        "SELECT p.id, p.fact_id, p.kind, p.split, p.question, p.answer AS p_answer, "
        "f.answer, f.aliases, f.system FROM probes p LEFT JOIN facts f ON f.id = p.fact_id "
        "WHERE p.set_id = ? AND p.approved = 1 ORDER BY p.id", [sid])


def approved_of_kinds(store: Store, sid: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
    return store.db.execute_returning_dicts(
        f"SELECT id, kind, question, answer, aliases FROM probes WHERE set_id = ? AND "
        f"approved = 1 AND kind IN ({_marks(kinds)}) ORDER BY id", [sid, *kinds])


# --- locality probes and the base model's answers --------------------------------------------
def with_base_answers(store: Store, sid: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """Approved probes of `kinds` with the base model's answer to each (`reference`)."""
    return store.db.execute_returning_dicts(
        f"SELECT p.id, p.question, p.answer, p.aliases, r.answer AS reference FROM probes p "
        f"JOIN probe_results r ON r.probe_id = p.id AND r.run_id IS NULL "
        f"WHERE p.set_id = ? AND p.approved = 1 AND p.kind IN ({_marks(kinds)}) ORDER BY p.id",
        [sid, *kinds])


def delete_kinds(store: Store, sid: int, kinds: Sequence[str]) -> None:
    with store.write() as db:
        db.execute(f"DELETE FROM probes WHERE set_id = ? AND kind IN ({_marks(kinds)})",
                   [sid, *kinds])


def add_with_base_answer(store: Store, row: dict[str, Any], reference: str, exact: bool) -> int:
    """A probe without a fact (locality) and the base model's answer to it, which a tuned
    answer is "unchanged" from."""
    with store.write() as db:
        pid = int(db["probes"].insert({"fact_id": None, "split": "probe", "approved": 1,
                                       "created_at": now(), **row}).last_pk)
        db["probe_results"].insert({"run_id": None, "probe_id": pid, "step": None,
                                    "answer": reference, "correct": 1, "exact": int(exact),
                                    "created_at": now()})
    return pid


def base_answers(store: Store, model: str, questions: Sequence[str]) -> dict[str, str]:
    """question → the model's stored greedy answer, for those asked before."""
    found: dict[str, str] = {}
    for start in range(0, len(questions), _MAX_PARAMS):
        chunk = list(questions[start:start + _MAX_PARAMS])
        found.update(store.db.execute(
            f"SELECT question, answer FROM base_answers WHERE model = ? AND question IN "
            f"({_marks(chunk)})", [model, *chunk]).fetchall())
    return found


def remember_base_answers(store: Store, model: str, answers: dict[str, str]) -> None:
    with store.write() as db:
        db.conn.executemany(
            "INSERT OR REPLACE INTO base_answers (model, question, answer, created_at) "
            "VALUES (?, ?, ?, ?)", [(model, q, a, now()) for q, a in answers.items()])


# --- scorecard answers -----------------------------------------------------------------------
def scorecard_answers(store: Store, sid: int, subject: str, fingerprint: str) -> dict[int, str]:
    """probe id → stored answer of `subject`, asked as `fingerprint` says."""
    return dict(store.db.execute(
        "SELECT probe_id, answer FROM scorecard_answers WHERE set_id = ? AND subject = ? "
        "AND fingerprint = ?", [sid, subject, fingerprint]).fetchall())


def save_scorecard_answers(store: Store, sid: int, subject: str, fingerprint: str,
                           answers: Iterable[tuple[int, str]]) -> None:
    """Replace the subject's stored answers with these (probe id, answer) pairs."""
    with store.write() as db:
        db.execute("DELETE FROM scorecard_answers WHERE set_id = ? AND subject = ?",
                   [sid, subject])
        db["scorecard_answers"].insert_all(
            {"set_id": sid, "subject": subject, "fingerprint": fingerprint, "probe_id": pid,
             "answer": a, "created_at": now()} for pid, a in answers)
