"""The Train tab: one run, live. Stop and resume it, watch the progress bar, the status in
plain words, the charts (loss, learning rate, memory against capacity, throughput and MFU,
recall of the injected facts) and the log tail.

A `gr.Timer` polls the store once a second for rows newer than the last drawn step; the worker
never waits on the browser, so closing or reloading the page changes nothing for the run, and
a reload re-attaches to whichever run is training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.core.errors import WorkbenchError
from workbench.core.train import control, history, jobs
from workbench.ui import run_view
from workbench.ui.context import AppContext
from workbench.ui.errors import shows_errors

POLL_S = 1.0


@dataclass
class TrainView:
    run_pick: Any  # the run shown; other tabs set it to show a run here
    feed: Any
    outputs: list[Any]  # everything a refresh redraws, feed first


def run_choices(ctx: AppContext) -> list[tuple[str, int]]:
    return [(f"{r.id} · {r.name} · {r.status}", r.id) for r in history.list_runs(ctx.store)]


def training_now(ctx: AppContext) -> bool:
    return bool(control.active_runs(ctx.store))


def default_run(ctx: AppContext) -> int | None:
    """The run a fresh page shows: the one training now, else the newest."""
    active = control.active_runs(ctx.store)
    if active:
        return int(active[-1]["id"])
    runs = history.list_runs(ctx.store, limit=1)
    return runs[0].id if runs else None


def controls(ctx: AppContext, feed: run_view.RunFeed) -> list[Any]:
    """The run list (its labels carry each run's status), Stop and Resume as the shown run's
    status allows: Stop is red and pressable only while the run is active."""
    status = feed.run.get("status")
    return [gr.update(choices=run_choices(ctx)),
            gr.update(interactive=feed.active, variant="stop" if feed.active else "secondary"),
            gr.update(interactive=status in jobs.RESUMABLE)]


def render(ctx: AppContext, feed: run_view.RunFeed | None, run_id: int | None,
           force: bool = False) -> list[Any]:
    """[feed, headline, progress, message, *figures, log, run list, stop, resume]; unchanged
    parts are skipped so an idle poll sends nothing to the browser, and the run list and
    buttons are redrawn only when the run's status changes."""
    before = feed.run.get("status") if feed is not None and feed.run_id == run_id else None
    feed, changed = run_view.poll(ctx.store, feed, run_id)
    if force or feed.run.get("status") != before:
        buttons = controls(ctx, feed)
    else:
        buttons = [gr.skip()] * 3
    if not (changed or force):
        return [feed] + [gr.skip()] * (3 + len(run_view.FIGURES) + 1) + buttons
    return [feed, run_view.headline(feed), run_view.progress_html(feed),
            run_view.message_markdown(feed), *run_view.figures(feed), feed.log, *buttons]


def build(ctx: AppContext) -> TrainView:
    with gr.Row():
        run_pick = gr.Dropdown(label="Run", choices=run_choices(ctx), value=None, scale=4,
                               elem_id="train-run")
        refresh_btn = gr.Button("Refresh list", scale=1)
        stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="train-stop")
        resume_btn = gr.Button("Resume", scale=1, elem_id="train-resume")
    headline = gr.HTML(elem_id="train-headline")
    progress = gr.HTML(elem_id="train-progress")
    message = gr.Markdown(elem_id="train-message")
    with gr.Row():
        loss = gr.Plot(label="Loss", show_label=False, elem_id="train-loss")
        recall = gr.Plot(label="Recall of the injected facts", show_label=False,
                         elem_id="train-recall")
    with gr.Row():
        memory = gr.Plot(label="Memory", show_label=False, elem_id="train-memory")
        throughput = gr.Plot(label="Throughput", show_label=False, elem_id="train-throughput")
    with gr.Row():
        lr = gr.Plot(label="Learning rate", show_label=False, elem_id="train-lr")
        log = gr.Textbox(label="Log (last lines)", lines=12, max_lines=12, interactive=False,
                         elem_id="train-log")
    feed = gr.State(None)
    outputs = [feed, headline, progress, message, loss, lr, memory, throughput, recall, log,
               run_pick, stop_btn, resume_btn]

    def show(run_id: int | None, current: run_view.RunFeed | None) -> list[Any]:
        return render(ctx, current, run_id, force=True)

    def tick(run_id: int | None, current: run_view.RunFeed | None) -> list[Any]:
        return render(ctx, current, run_id)

    @shows_errors
    def stop(run_id: int | None) -> None:
        if run_id is None:
            raise WorkbenchError("no run is selected")
        control.stop_run(ctx.store, run_id)
        gr.Info(f"Run {run_id}: stopping after the current step; it saves a checkpoint first.")

    @shows_errors
    def resume(run_id: int | None) -> Any:
        if run_id is None:
            raise WorkbenchError("no run is selected")
        control.resume_run(ctx.store, ctx.workspace, run_id)
        gr.Info(f"Run {run_id} resumes from its last complete checkpoint.")
        return gr.update(choices=run_choices(ctx), value=run_id)

    def on_load() -> Any:
        return gr.update(choices=run_choices(ctx), value=default_run(ctx))

    run_pick.change(show, [run_pick, feed], outputs, show_progress="hidden")
    refresh_btn.click(lambda r: gr.update(choices=run_choices(ctx), value=r), [run_pick], [run_pick])
    stop_btn.click(stop, [run_pick], None).then(tick, [run_pick, feed], outputs,
                                                show_progress="hidden")
    resume_btn.click(resume, [run_pick], [run_pick]).then(show, [run_pick, feed], outputs,
                                                          show_progress="hidden")
    gr.Timer(POLL_S).tick(tick, [run_pick, feed], outputs, show_progress="hidden",
                          api_visibility="private", trigger_mode="always_last")
    ctx.on_load.append((on_load, [run_pick]))
    return TrainView(run_pick, feed, outputs)
