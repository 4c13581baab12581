"""SQL for runs and what they produce: run rows, per-step metrics, probe answers, plus the
small tables beside them (UI preferences, chat logs).

Functions take the `Store` and return plain rows (dicts) or `Run`s. A read-then-write caller
wraps its calls in `store.write()`: the calls below join that transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from workbench.core.data.records import ACTIVE, UNCHANGED, Run
from workbench.core.errors import WorkbenchError
from workbench.core.store import Store, now


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


# --- runs ------------------------------------------------------------------------------------
def create(store: Store, fields: dict[str, Any], run_dir: Callable[[int], str]) -> int:
    """Insert a run row; its folder is named after the id it gets, so both are written in
    one transaction and no row is ever seen without its folder."""
    with store.write() as db:
        run_id = int(db["runs"].insert(fields).last_pk)
        db.execute("UPDATE runs SET run_dir = ? WHERE id = ?", [run_dir(run_id), run_id])
    return run_id


def row(store: Store, run_id: int) -> dict[str, Any]:
    """The run's row as a dict; a clear error for an unknown id."""
    rows = store.db.execute_returning_dicts("SELECT * FROM runs WHERE id = ?", [run_id])
    if not rows:
        raise WorkbenchError(f"there is no run {run_id}", hint="`workbench runs` lists the runs")
    return rows[0]


def get(store: Store, run_id: int) -> Run:
    return Run.from_row(row(store, run_id))


def update(store: Store, run_id: int, fields: dict[str, Any]) -> None:
    with store.write() as db:
        db["runs"].update(run_id, fields)


def count_resume(store: Store, run_id: int) -> None:
    with store.write() as db:
        db.execute("UPDATE runs SET resumes = resumes + 1 WHERE id = ?", [run_id])


def stop_requested(store: Store, run_id: int) -> bool:
    found = store.db.execute("SELECT stop_requested FROM runs WHERE id = ?", [run_id]).fetchone()
    return bool(found and found[0])


def active(store: Store, *, device: str | None = None) -> list[dict[str, Any]]:
    """Rows of runs in an active status (on `device` only, when given), oldest first."""
    where, args = f"status IN ({_marks(ACTIVE)})", [str(s) for s in ACTIVE]
    if device is not None:
        where, args = f"device = ? AND {where}", [device, *args]
    return store.db.execute_returning_dicts(f"SELECT * FROM runs WHERE {where} ORDER BY id", args)


def listing(store: Store, limit: int | None) -> list[dict[str, Any]]:
    """Newest first, each row with its set's name (`set_name`) and last step (`step`)."""
    return store.db.execute_returning_dicts(
        "SELECT r.*, k.name AS set_name, (SELECT max(step) FROM metrics m WHERE m.run_id = r.id) "
        "AS step FROM runs r LEFT JOIN knowledge_sets k ON k.id = r.set_id "
        "ORDER BY r.id DESC LIMIT ?", [-1 if limit is None else limit])  # -1: no limit


# --- metrics ---------------------------------------------------------------------------------
def record_step(store: Store, run_id: int, values: dict[str, Any]) -> None:
    """One step's metrics row (replacing a retried step's) and the run's heartbeat."""
    with store.write() as db:
        db["metrics"].insert({"run_id": run_id, "time": now(), **values}, replace=True)
        db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", [now(), run_id])


def metrics(store: Store, run_id: int, *, after_step: int = 0) -> list[dict[str, Any]]:
    return store.db.execute_returning_dicts(
        "SELECT * FROM metrics WHERE run_id = ? AND step > ? ORDER BY step", [run_id, after_step])


def forget_after(store: Store, run_id: int, step: int) -> None:
    """Drop the metrics and probe answers of steps after `step`."""
    with store.write() as db:
        db.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", [run_id, step])
        db.execute("DELETE FROM probe_results WHERE run_id = ? AND step > ?", [run_id, step])


def tokens_per_s(store: Store, *, model: str, method: str, device: str) -> list[float]:
    """Tokens/s of the steps after the fifth (warm-up) of the latest three runs of this model,
    method and device."""
    found = store.db.execute(
        "SELECT m.tokens_per_s FROM metrics m JOIN (SELECT id FROM runs WHERE model = ? AND "
        "method = ? AND device = ? ORDER BY id DESC LIMIT 3) r ON r.id = m.run_id "
        "WHERE m.step > 5 AND m.tokens_per_s > 0", [model, method, device]).fetchall()
    return [float(r[0]) for r in found]


# --- probe answers ---------------------------------------------------------------------------
def add_answers(store: Store, rows: Iterable[dict[str, Any]]) -> None:
    with store.write() as db:
        db["probe_results"].insert_all(rows)


def forget_answers_at(store: Store, run_id: int, step: int) -> None:
    with store.write() as db:
        db.execute("DELETE FROM probe_results WHERE run_id = ? AND step = ?", [run_id, step])


def last_probed_step(store: Store, run_id: int) -> int | None:
    found = store.db.execute("SELECT max(step) FROM probe_results WHERE run_id = ?",
                             [run_id]).fetchone()
    return found[0] if found else None


def last_round_scores(store: Store, run_id: int | None = None) -> list[tuple[Any, ...]]:
    """(run id, metric, share correct, share unchanged) at each run's last probed step (of
    `run_id` alone when given): one query for every run."""
    only = "AND run_id = ?" if run_id is not None else ""
    return store.db.execute(
        "SELECT p.run_id, p.metric, avg(p.correct), avg(p.unchanged) FROM probe_results p JOIN "
        f"(SELECT run_id, max(step) AS step FROM probe_results WHERE run_id IS NOT NULL {only} "
        "GROUP BY run_id) last ON last.run_id = p.run_id AND last.step = p.step "
        "GROUP BY p.run_id, p.metric", [run_id] if run_id is not None else []).fetchall()


def last_scores(store: Store, *, run_id: int | None = None) -> dict[int, dict[str, float]]:
    """Per run (or for `run_id` alone), the share correct per metric at its last probed step
    (the final scoring when the run finished; the latest live probe while it trains), plus
    `locality_unchanged` where locality was asked. One query for every run, so a list of runs
    costs the same however many it shows."""
    scores: dict[int, dict[str, float]] = {}
    for rid, metric, score, unchanged in last_round_scores(store, run_id):
        if metric:
            scores.setdefault(rid, {})[metric] = float(score)
        if unchanged is not None:  # avg() skips the NULLs of other metrics
            scores.setdefault(rid, {})[UNCHANGED] = float(unchanged)
    return scores


def round_scores(store: Store, run_id: int) -> list[dict[str, Any]]:
    """Per probed step and metric: share correct (`score`), share unchanged, answer count."""
    return store.db.execute_returning_dicts(
        "SELECT step, metric, avg(correct) AS score, avg(unchanged) AS unchanged, count(*) AS n "
        "FROM probe_results WHERE run_id = ? GROUP BY step, metric ORDER BY step", [run_id])


def wrong_locality(store: Store, run_id: int,
                   step: int) -> list[tuple[str, str, str, float | None]]:
    """(question, gold, answer, the base's margin on it or None) of locality probes answered
    wrongly at `step`, neighbours first."""
    found = store.db.execute(
        "SELECT p.question, p.answer, r.answer, p.base_margin FROM probe_results r JOIN probes "
        "p ON p.id = r.probe_id WHERE r.run_id = ? AND r.step = ? AND r.metric = 'locality' "
        "AND r.correct = 0 ORDER BY p.kind = 'neighbour' DESC, p.id", [run_id, step]).fetchall()
    return [(q, a, answer, margin) for q, a, answer, margin in found]


def locality_at_least(store: Store, run_id: int, step: int,
                      margin: float) -> tuple[int, int]:
    """(still correct, asked) over the locality probes at `step` whose base margin is at least
    `margin`: what the run kept of the answers the base was sure of."""
    kept, asked = store.db.execute(
        "SELECT coalesce(sum(r.correct), 0), count(*) FROM probe_results r JOIN probes p "
        "ON p.id = r.probe_id WHERE r.run_id = ? AND r.step = ? AND r.metric = 'locality' "
        "AND p.base_margin >= ?", [run_id, step, margin]).fetchone()
    return int(kept), int(asked)


def answers_by_probe(store: Store, run_id: int, step: int) -> dict[int, tuple[str, bool]]:
    """probe id → (answer, correct) of the round at `step`."""
    found = store.db.execute("SELECT probe_id, answer, correct FROM probe_results "
                             "WHERE run_id = ? AND step = ?", [run_id, step]).fetchall()
    return {pid: (answer or "", bool(correct)) for pid, answer, correct in found}


def answers_at(store: Store, run_id: int, step: int) -> list[dict[str, Any]]:
    """Every answer of the round at `step` with its fact, phrasing and gold answer."""
    return store.db.execute_returning_dicts(
        "SELECT r.metric, p.fact_id, f.subject, p.kind, p.question, "
        "coalesce(f.answer, p.answer) AS gold, r.answer, r.correct, r.exact "
        "FROM probe_results r JOIN probes p ON p.id = r.probe_id "
        "LEFT JOIN facts f ON f.id = p.fact_id WHERE r.run_id = ? AND r.step = ? "
        "ORDER BY r.metric, p.fact_id, p.id", [run_id, step])


# --- preferences and chat logs ---------------------------------------------------------------
def pref(store: Store, key: str) -> str | None:
    """A stored preference's JSON text, or None."""
    found = store.db.execute("SELECT value FROM prefs WHERE key = ?", [key]).fetchone()
    return found[0] if found else None


def set_pref(store: Store, key: str, value: str) -> None:
    with store.write() as db:
        db["prefs"].insert({"key": key, "value": value, "updated_at": now()}, pk="key",
                           replace=True)


def add_chat_rows(store: Store, rows: Iterable[dict[str, Any]]) -> None:
    with store.write() as db:
        db["chat_logs"].insert_all(rows)


def chat_rows(store: Store, session: str) -> list[dict[str, Any]]:
    return store.db.execute_returning_dicts(
        "SELECT pane, role, content, settings FROM chat_logs WHERE session = ? ORDER BY id",
        [session])
