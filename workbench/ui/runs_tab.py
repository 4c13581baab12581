"""The Runs tab: every run with its status, method, model, knowledge set, duration and last
scores. Selecting one shows its charts, message and config; from there it can be followed in
the Train tab or its config loaded back into the Method tab."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from workbench.core import charts
from workbench.core.config import RunConfig
from workbench.core.data import runs
from workbench.core.scoring import percent
from workbench.core.train import history, jobs
from workbench.ui import export_actions, run_view
from workbench.ui.context import AppContext
from workbench.ui.errors import shows_errors

COLUMNS = ["id", "name", "status", "verdict", "method", "model", "knowledge set", "steps",
           "duration", "efficacy", "held-out", "locality"]
# Column shares summing to 100%, so the table fits its frame with headers on one line.
WIDTHS = ["4%", "15%", "8%", "8%", "6%", "13%", "12%", "6%", "7%", "7%", "7%", "7%"]


@dataclass
class RunsView:
    selected: Any  # gr.State: the selected run id
    follow_btn: Any
    load_btn: Any


def runs_table(ctx: AppContext) -> pd.DataFrame:
    rows = []
    for r in history.list_runs(ctx.store):
        steps = f"{r.step}/{r.total_steps}" if r.total_steps else str(r.step)
        rows.append([r.id, r.name, r.status, r.verdict, r.method, r.model, r.knowledge_set, steps,
                     "" if r.seconds is None else charts.format_duration(r.seconds),
                     *(percent(r.scores[m]) if m in r.scores else "" for m in history.SCORE_METRICS)])
    return pd.DataFrame(rows, columns=COLUMNS)


def run_details(ctx: AppContext, run_id: int | None) -> list[Any]:
    """[message, config YAML, *figures] for one run."""
    if run_id is None:
        return ["Select a run in the table.", "", *[None] * len(run_view.FIGURES)]
    feed, _ = run_view.poll(ctx.store, None, run_id)
    return [run_view.message_markdown(feed), feed.run["config_yaml"], *run_view.figures(feed)]


def build(ctx: AppContext) -> RunsView:
    refresh_btn = gr.Button("Refresh", size="sm")
    table = gr.Dataframe(value=runs_table(ctx), headers=COLUMNS, interactive=False, wrap=True,
                         column_widths=WIDTHS, elem_classes=["wb-table"],
                         label="Runs (click a row)", elem_id="runs-table")
    selected = gr.State(None)
    message = gr.Markdown(elem_id="runs-message")
    with gr.Row():
        follow_btn = gr.Button("Show in the Train tab", elem_id="runs-follow")
        load_btn = gr.Button("Load its config into the Method tab", elem_id="runs-load")
    with gr.Row():
        loss = gr.Plot(label="Loss", show_label=False)
        recall = gr.Plot(label="Recall", show_label=False)
    with gr.Row():
        memory = gr.Plot(label="Memory", show_label=False)
        throughput = gr.Plot(label="Throughput", show_label=False)
    with gr.Row():
        lr = gr.Plot(label="Learning rate", show_label=False)
        config = gr.Code(language="yaml", label="Config", elem_id="runs-config")

    @shows_errors
    def pick(frame: pd.DataFrame, evt: gr.SelectData) -> list[Any]:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        run_id = int(frame.iloc[row]["id"])
        jobs.get_run(ctx.store, run_id)  # a run deleted meanwhile: a clear message
        return [run_id, *run_details(ctx, run_id)]

    export_actions.build_panel(ctx, selected)

    details = [message, config, loss, lr, memory, throughput, recall]
    table.select(pick, [table], [selected, *details])
    refresh_btn.click(lambda: runs_table(ctx), None, [table])
    ctx.on_load.append((lambda: runs_table(ctx), [table]))
    return RunsView(selected, follow_btn, load_btn)


def config_of(ctx: AppContext, run_id: int) -> RunConfig:
    return RunConfig.from_run(runs.get(ctx.store, run_id))
