"""The list of runs with what a user compares them by: status, method, model, knowledge set,
how long they took, how far they got and their last recall scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.core.store import Store, now
from workbench.core.train import jobs
from workbench.core.train.probing import UNCHANGED

SCORE_METRICS = ("efficacy", "generalization", "locality")


@dataclass(frozen=True)
class RunListing:
    id: int
    name: str
    status: str
    method: str
    model: str
    knowledge_set: str
    step: int
    total_steps: int | None
    seconds: float | None
    scores: dict[str, float]  # the last probed step's share correct per metric (+ unchanged)
    created_at: float


def last_scores(store: Store) -> dict[int, dict[str, float]]:
    """Per run, the share correct per metric at its last probed step (the final scoring when
    the run finished; the latest live probe while it trains), plus `locality_unchanged` where
    locality was asked. One query for every run, so a list of runs costs the same however
    many it shows."""
    rows = store.db.execute(
        "SELECT p.run_id, p.metric, avg(p.correct), avg(p.unchanged) FROM probe_results p JOIN "
        "(SELECT run_id, max(step) AS step FROM probe_results WHERE run_id IS NOT NULL "
        "GROUP BY run_id) last ON last.run_id = p.run_id AND last.step = p.step "
        "GROUP BY p.run_id, p.metric").fetchall()
    scores: dict[int, dict[str, float]] = {}
    for run_id, metric, score, unchanged in rows:
        if metric:
            scores.setdefault(run_id, {})[metric] = float(score)
        if unchanged is not None:  # avg() skips the NULLs of other metrics
            scores.setdefault(run_id, {})[UNCHANGED] = float(unchanged)
    return scores


def duration(run: dict[str, Any]) -> float | None:
    """Seconds from start to end (or to now while active)."""
    if not run.get("started_at"):
        return None
    end = run.get("ended_at") or (now() if run.get("status") in jobs.ACTIVE else
                                  run.get("heartbeat_at"))
    return max(0.0, float(end) - float(run["started_at"])) if end else None


def list_runs(store: Store, limit: int | None = 200) -> list[RunListing]:
    """Newest first; every run when `limit` is None."""
    jobs.reap(store)
    rows = store.db.execute_returning_dicts(
        "SELECT r.*, k.name AS set_name, (SELECT max(step) FROM metrics m WHERE m.run_id = r.id) "
        "AS step FROM runs r LEFT JOIN knowledge_sets k ON k.id = r.set_id "
        "ORDER BY r.id DESC LIMIT ?", [-1 if limit is None else limit])  # -1: no limit
    scores = last_scores(store)
    return [RunListing(id=r["id"], name=r["name"], status=r["status"], method=r["method"],
                       model=r["model"], knowledge_set=r["set_name"] or "",
                       step=r["step"] or 0, total_steps=r["total_steps"], seconds=duration(r),
                       scores=scores.get(r["id"], {}), created_at=r["created_at"])
            for r in rows]
