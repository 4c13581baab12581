"""SQL lives in the data layer only: `core/store.py` (schema, migrations, transactions) and
`core/data/` (typed reads and writes). A query written anywhere else is a second place to
change when a table changes, and the UI must not know the tables at all."""

from __future__ import annotations

import re
from pathlib import Path

from workbench.core.data.records import ACTIVE, RESUMABLE, SCORE_METRICS, Run, RunStatus
from workbench.core.store import Store

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"
# store.py (transactions), data/migrations.py (the schema), data/runs.py, data/knowledge.py,
# data/phrasings.py
MAX_SQL_MODULES = 5
# A call that runs SQL, or a statement keyword as it is written in a query string.
SQL_CALL = re.compile(r"\.execute\(|executemany\(|executescript\(|execute_returning_dicts\(")
SQL_TEXT = re.compile(r"\b(SELECT\b.*\bFROM|INSERT (OR [A-Z]+ )?INTO|UPDATE \w+ SET|DELETE FROM|"
                      r"CREATE (UNIQUE )?(TABLE|INDEX)|ALTER TABLE)\b")


def _modules_with(pattern: re.Pattern[str]) -> set[str]:
    return {path.relative_to(PACKAGE.parent).as_posix() for path in PACKAGE.rglob("*.py")
            if pattern.search(path.read_text(encoding="utf-8"))}


def test_sql_lives_in_at_most_five_modules_none_in_the_ui() -> None:
    found = _modules_with(SQL_CALL) | _modules_with(SQL_TEXT)
    assert len(found) <= MAX_SQL_MODULES, sorted(found)
    assert not [m for m in found if m.startswith("workbench/ui/")], sorted(found)
    assert "workbench/core/store.py" in found  # the pattern still finds what it looks for


def test_run_status_keeps_the_stored_strings() -> None:
    """Rows written before the enum existed read back, and the enum compares with text."""
    assert [s.value for s in RunStatus] == ["queued", "starting", "running", "stopping",
                                            "stopped", "completed", "interrupted", "failed",
                                            "diverged"]
    assert RunStatus.RUNNING == "running" and f"{RunStatus.FAILED}" == "failed"
    assert set(ACTIVE) | set(RESUMABLE) < set(RunStatus)
    assert SCORE_METRICS == ("efficacy", "generalization", "locality")


def test_a_run_row_gives_back_its_config(tmp_path: Path) -> None:
    from workbench.core.config import RunConfig
    from workbench.core.data import runs

    store = Store(tmp_path / "w.db")
    cfg = RunConfig()
    run_id = runs.create(store, {"name": "r", "status": "queued", "method": cfg.method.name,
                                 "model": cfg.model.name_or_path, "config_yaml": cfg.to_yaml(),
                                 "created_at": 0.0}, lambda rid: f"runs/{rid}")
    run = runs.get(store, run_id)
    assert isinstance(run, Run) and run.status is RunStatus.QUEUED
    assert run.run_dir == f"runs/{run_id}" and run.stop_requested is False
    assert RunConfig.from_run(run).to_yaml() == cfg.to_yaml()
