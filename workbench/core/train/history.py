"""The list of runs with what a user compares them by: status, method, model, knowledge set,
how long they took, how far they got and their last recall scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.core.data import runs
# SCORE_METRICS is re-exported: the Runs tab takes its score columns from here.
from workbench.core.data.names import SCORE_METRICS, RunStatus
# Re-exported: what a list of runs shows is read here; verdict.py reads them from the data
# layer directly, so that it and this module do not import each other.
from workbench.core.data.runs import last_probed_step, last_scores
from workbench.core.store import Store, now
from workbench.core.train import jobs
from workbench.core.train.verdict import verdict

__all__ = ["SCORE_METRICS", "RunListing", "duration", "last_probed_step", "last_scores",
           "list_runs", "measured_tokens_per_s"]


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
    verdict: str = ""  # a finished run's verdict flag: good | check | broke the model


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
    rows = runs.listing(store, limit)
    scores = last_scores(store)

    def flag(run: dict[str, Any]) -> str:
        """The verdict's level depends on the scores alone, already read for every run."""
        found = verdict(scores.get(run["id"], {})) if run["status"] == RunStatus.COMPLETED else None
        return found.flag if found else ""

    return [RunListing(id=r["id"], name=r["name"], status=r["status"], method=r["method"],
                       model=r["model"], knowledge_set=r["set_name"] or "",
                       step=r["step"] or 0, total_steps=r["total_steps"], seconds=duration(r),
                       scores=scores.get(r["id"], {}), created_at=r["created_at"],
                       verdict=flag(r))
            for r in rows]


def measured_tokens_per_s(store: Store, *, model: str, method: str, device: str) -> float | None:
    """The median tokens/s of the latest three runs of this model, method and device (their
    steps after the first five, which include warm-up), or None when none ran here: the time
    estimate's best source."""
    values = sorted(runs.tokens_per_s(store, model=model, method=method, device=device))
    return values[len(values) // 2] if values else None
