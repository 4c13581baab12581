"""What the Compare tab does, as plain functions of the app context (no widgets here).

The tab's panes are subjects (`base`, `run:<id>`, `in_context`, `retrieval`). One
`ComparePool` per app holds them, built on the app's model cache so the Compare models are
the one model in memory; it is re-prepared before every question (cheap when nothing
changed), because another tab may have taken the adapters off the cached base meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from workbench.core.compare.baselines import Baselines
from workbench.core.compare.pool import (ComparePool, RunOutput, Subject, run_folder,
                                         run_knowledge_set, run_output)
from workbench.core.compare.report import write_report
from workbench.core.compare.scorecard import Scorecard, build_scorecard
from workbench.core.compare.session import ChatSession, has_run, subjects_of
from workbench.core.config import ModelConfig
from workbench.core.errors import WorkbenchError
from workbench.core.knowledge import probes, sets
from workbench.core.progress import Progress, no_progress
from workbench.core.train import history
from workbench.core.train.jobs import get_run
from workbench.ui.context import AppContext

BASELINE_LABELS = {"in_context": "In context (facts in the prompt)",
                   "retrieval": "Retrieval (top 3 facts in the prompt)"}
_LOCK = threading.Lock()  # one Compare generation at a time: they share the loaded model


def comparable_runs(ctx: AppContext) -> list[RunOutput]:
    """What runs left to compare (finished, or stopped after saving), newest first."""
    out = []
    for r in history.list_runs(ctx.store):
        try:
            out.append(run_output(ctx.store, ctx.workspace, r.id))
        except WorkbenchError:
            continue
    return out


def pane_choices(ctx: AppContext) -> list[tuple[str, str]]:
    runs = [(o.label, f"run:{o.run_id}") for o in comparable_runs(ctx)]
    return [("Base model", "base"), *runs, *((v, k) for k, v in BASELINE_LABELS.items())]


def pane_labels(ctx: AppContext, keys: Sequence[str]) -> list[str]:
    """Labels of the chosen panes only (asked on every question: no listing of all runs)."""
    labels = []
    for key in keys:
        s = Subject.parse(key)
        if s.kind == "run" and s.run_id is not None:
            try:
                labels.append(run_output(ctx.store, ctx.workspace, s.run_id).label)
            except WorkbenchError:
                labels.append(f"Run {s.run_id}")
        else:
            labels.append("Base model" if s.kind == "base" else BASELINE_LABELS[s.kind])
    return labels


def default_panes(ctx: AppContext) -> list[str]:
    runs = comparable_runs(ctx)
    return ["base", f"run:{runs[0].run_id}"] if runs else ["base"]


def set_of_run(ctx: AppContext, run_id: int) -> str:
    return run_knowledge_set(ctx.store, run_id)[1]


def set_choices(ctx: AppContext) -> list[str]:
    return [s.name for s in sets.list_sets(ctx.store)]


def default_set(ctx: AppContext, keys: Sequence[str]) -> str | None:
    """The first chosen run's set, else the first set."""
    for key in keys or []:
        s = Subject.parse(key)
        if s.kind == "run" and s.run_id is not None:
            return set_of_run(ctx, s.run_id)
    names = set_choices(ctx)
    return names[0] if names else None


def set_for_panes(ctx: AppContext, keys: Sequence[str], current: str | None) -> str | None:
    """After the panes change: a chosen run's own set (its scorecard asks it), else the set
    already chosen."""
    return default_set(ctx, keys) if has_run(keys) else current


def chat_session(ctx: AppContext) -> ChatSession:
    """A page's chat, generating on the app's one Compare pool."""
    return ChatSession(ctx.store, functools.partial(prepared, ctx))


@contextlib.contextmanager
def prepared(ctx: AppContext, subjects: Sequence[Subject], set_name: str | None,
             ) -> Iterator[tuple[ComparePool, Baselines | None, int | None]]:
    """The pool with `subjects` loaded, the baselines' context and the set id, for one
    generation at a time. Afterwards the pool lets go of the base: the model cache keeps it,
    and when another tab swaps the cached model the old one can really be freed."""
    with _LOCK:
        if ctx.compare is None:
            ctx.compare = ComparePool(ctx.store, ctx.workspace, get_base=ctx.models.get)
        pool: ComparePool = ctx.compare
        has_run = any(s.kind == "run" for s in subjects)
        try:
            pool.prepare(subjects, None if has_run else ModelConfig(name_or_path=ctx.default_model))
            sid = sets.set_id(ctx.store, set_name) if set_name else None
            baselines = None
            if any(s.kind in BASELINE_LABELS for s in subjects):
                if sid is None:
                    raise WorkbenchError("choose a knowledge set for the baseline panes")
                assert pool.base is not None
                baselines = Baselines.build(sets.list_facts(ctx.store, sid), pool.base.model,
                                            pool.base.tokenizer)
            yield pool, baselines, sid
        finally:
            pool.base = None


def release(ctx: AppContext) -> None:
    """Before a training run: the Compare models go (full runs' own copies included)."""
    with _LOCK:
        if ctx.compare is not None:
            ctx.compare.release()


def scorecard(ctx: AppContext, keys: Sequence[str], set_name: str | None, *,
              fresh: bool = False, progress: Progress = no_progress,
              ) -> tuple[Scorecard, dict[str, str]]:
    if not set_name:
        raise WorkbenchError("choose a knowledge set to score")
    subjects = subjects_of(keys)

    with prepared(ctx, subjects, set_name) as (pool, baselines, sid):
        assert sid is not None
        card = build_scorecard(ctx.store, pool, sid, subjects, set_name=set_name,
                               baselines=baselines, reuse=not fresh, progress=progress)
        return card, dict(pool.unavailable)


def add_abstention(ctx: AppContext, set_name: str, text: str) -> int:
    return probes.add_abstention_probes(ctx.store, sets.set_id(ctx.store, set_name),
                                        (text or "").splitlines())


def write_run_report(ctx: AppContext, run_id: int, card: Scorecard | None) -> Path:
    """The run's HTML report (kept in the run's folder; returns a copy to download), with the
    scorecard on screen when it covers the run, else base vs the run (stored answers are
    reused, so this is quick after scoring)."""
    key = f"run:{run_id}"
    if card is None or key not in card.labels:
        card, _ = scorecard(ctx, ["base", key], set_of_run(ctx, run_id))
    folder = run_folder(get_run(ctx.store, run_id), ctx.workspace)
    kept = write_report(ctx.store, ctx.workspace, run_id, card, folder / "report.html")
    # The workspace is never served as files: the download is a copy in a temp folder.
    download = Path(tempfile.mkdtemp(prefix="workbench-report-")) / f"run-{run_id}-report.html"
    shutil.copyfile(kept, download)
    return download


def first_run(subjects: Sequence[Subject]) -> int | None:
    return next((s.run_id for s in subjects if s.kind == "run"), None)
