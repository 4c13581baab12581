"""A run on screen: progress bar, status message, charts and log tail, shared by the Train tab
(live) and the Runs tab (a past run).

`RunFeed` is what one browser tab remembers about the run it shows: which run, the last step
it has drawn and the rows so far. Each poll reads only the rows after that step
(`control.run_status(after_step=…)`), so a long run costs the same per poll at step 10 as at
step 10 000, and a reload simply starts a new feed from step 0.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from workbench.core import charts
from workbench.core.store import Store
from workbench.core.train import control, jobs
from workbench.core.train.explain import explain_run

FIGURES = ("loss", "lr", "memory", "throughput", "recall")


@dataclass
class RunFeed:
    run_id: int | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    recall: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    verdict: Any = None  # a finished run's Verdict

    @property
    def last_step(self) -> int:
        return self.metrics[-1]["step"] if self.metrics else 0

    @property
    def active(self) -> bool:
        return self.run.get("status") in jobs.ACTIVE


def poll(store: Store, feed: RunFeed | None, run_id: int | None) -> tuple[RunFeed, bool]:
    """The feed for `run_id` brought up to date, and whether anything changed since `feed`."""
    if run_id is None:
        return RunFeed(), feed is not None and feed.run_id is not None
    if feed is None or feed.run_id != run_id:
        feed = RunFeed(run_id)
    status = control.run_status(store, run_id, after_step=feed.last_step)
    if feed.run and status["run"]["resumes"] != feed.run["resumes"]:
        # A resume retrains the steps after its checkpoint and rewrote their rows: redraw.
        feed = RunFeed(run_id)
        status = control.run_status(store, run_id)
    new = status["metrics"]
    changed = bool(new) or status["run"] != feed.run or status["recall"] != feed.recall \
        or status["log"] != feed.log
    feed.metrics = feed.metrics + new
    feed.run, feed.recall, feed.log = status["run"], status["recall"], status["log"]
    feed.verdict = status["verdict"]
    return feed, changed


def figures(feed: RunFeed) -> list[Any]:
    processes, sharded = feed.run.get("processes"), bool(feed.run.get("sharded"))
    return [charts.loss_figure(feed.metrics), charts.lr_figure(feed.metrics),
            charts.memory_figure(feed.metrics, processes=processes, sharded=sharded),
            charts.throughput_figure(feed.metrics, processes=processes),
            charts.recall_figure(feed.recall)]


def message_markdown(feed: RunFeed) -> str:
    if feed.run_id is None:
        return "No run yet: set one up in the **Method** tab and press **Start training**."
    return explain_run(feed.run, feed.last_step or None, feed.verdict).markdown()


def progress_html(feed: RunFeed) -> str:
    if feed.run_id is None:
        return ""
    return charts.progress_html(charts.progress(feed.run, feed.metrics))


def headline(feed: RunFeed) -> str:
    """One line over the charts: which run this is."""
    run = feed.run
    if not run:
        return ""
    return html.escape(f"Run {run['id']} · {run['name']} · {run['method']} on {run['model']}")
