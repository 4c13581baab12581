"""The list of runs with what a user compares them by: status, method, model, knowledge set,
how long they took, how far they got and their last recall scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.core.store import Store, now
from workbench.core.train import jobs

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
    scores: dict[str, float]  # the last probed step's share correct per metric
    created_at: float


def last_scores(store: Store, run_id: int) -> dict[str, float]:
    """Share correct per metric at the run's last probed step (the final scoring when the run
    finished; the latest live probe while it trains)."""
    rows = store.db.execute(
        "SELECT metric, avg(correct) FROM probe_results WHERE run_id = ? AND step = "
        "(SELECT max(step) FROM probe_results WHERE run_id = ?) GROUP BY metric",
        [run_id, run_id]).fetchall()
    return {metric: float(score) for metric, score in rows if metric}


def duration(run: dict[str, Any]) -> float | None:
    """Seconds from start to end (or to now while active)."""
    if not run.get("started_at"):
        return None
    end = run.get("ended_at") or (now() if run.get("status") in jobs.ACTIVE else
                                  run.get("heartbeat_at"))
    return max(0.0, float(end) - float(run["started_at"])) if end else None


def list_runs(store: Store, limit: int = 200) -> list[RunListing]:
    """Newest first."""
    jobs.reap(store)
    rows = store.db.execute_returning_dicts(
        "SELECT r.*, k.name AS set_name, (SELECT max(step) FROM metrics m WHERE m.run_id = r.id) "
        "AS step FROM runs r LEFT JOIN knowledge_sets k ON k.id = r.set_id "
        "ORDER BY r.id DESC LIMIT ?", [limit])
    return [RunListing(id=r["id"], name=r["name"], status=r["status"], method=r["method"],
                       model=r["model"], knowledge_set=r["set_name"] or "",
                       step=r["step"] or 0, total_steps=r["total_steps"], seconds=duration(r),
                       scores=last_scores(store, r["id"]), created_at=r["created_at"])
            for r in rows]
