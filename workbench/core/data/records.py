"""`Run`, one `runs` row typed; and, re-exported from `names`, the run statuses and metric
names. The row keeps its config as the stored YAML: `RunConfig.from_run(run)` parses it, since
the config module sits above the data layer (it knows the methods).

Kept apart from the SQL modules so that charts and the UI can use them without importing
any database code.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from workbench.core.data.names import (ACTIVE, RESUMABLE, SCORE_METRICS, STEP_METRICS,
                                       UNCHANGED, RunStatus, ScoreMetric, StepMetric)

__all__ = ["ACTIVE", "RESUMABLE", "SCORE_METRICS", "STEP_METRICS", "UNCHANGED", "Run",
           "RunStatus", "ScoreMetric", "StepMetric"]


@dataclass(frozen=True)
class Run:
    """One `runs` row, typed."""

    id: int
    name: str
    status: RunStatus
    method: str
    model: str
    set_id: int | None
    config_yaml: str
    run_dir: str
    pid: int | None
    device: str
    stop_requested: bool
    error: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    heartbeat_at: float | None
    log_tail: str = ""
    best_step: int | None = None
    resumes: int = 0
    total_steps: int | None = None
    stop_reason: str = ""
    processes: int = 1  # accelerate launch's processes
    sharded: bool = False  # FSDP: each process held a share of the model

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Run:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in row.items() if k in known}
        values["status"] = RunStatus(values["status"])
        values["stop_requested"] = bool(values["stop_requested"])
        return cls(**values)
