"""Assemble the Gradio app: header, then the Knowledge, Method, Train, Runs and Compare tabs.

The app holds no state of its own beyond the `AppContext` (workspace + store); every callback
calls a core function, so the same behaviour is reachable from the CLI and from tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.ui import (compare_tab, inject_actions, knowledge_tab, method_actions, method_tab,
                          runs_tab, train_tab)
from workbench.ui.context import AppContext
from workbench.ui.errors import shows_errors
from workbench.ui.status import header_html, read_status

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CSS_PATH = ASSETS / "style.css"
HEADER_REFRESH_S = 5.0



def build_app(ctx: AppContext) -> gr.Blocks:
    def refresh_header() -> str:
        return header_html(read_status(ctx.workspace, ctx.store, ctx.device))

    def status_json() -> dict:
        return read_status(ctx.workspace, ctx.store, ctx.device).as_dict()

    with gr.Blocks(title="Knowledge Workbench") as app:
        header = gr.HTML(refresh_header(), elem_id="wb-header")
        with gr.Tabs(elem_id="wb-tabs") as tabs:
            with gr.Tab("Knowledge", id="knowledge"):
                knowledge = knowledge_tab.build(ctx)
            with gr.Tab("Method", id="method"):
                method = method_tab.build(ctx)
            with gr.Tab("Train", id="train"):
                train = train_tab.build(ctx)
            with gr.Tab("Runs", id="runs"):
                runs = runs_tab.build(ctx)
            with gr.Tab("Compare", id="compare") as compare_tab_item:
                compare = compare_tab.build(ctx)
        # Runs finished since the page loaded become pane choices when the tab is opened.
        compare_tab_item.select(compare.refresh, None, compare.refreshed, show_progress="hidden")
        wire_runs(ctx, tabs, method, train, runs)
        wire_inject(ctx, tabs, knowledge, train)
        # Fresh counts on every page load and every few seconds (the CLI or a training run
        # may change the store); also the app's machine-readable health endpoint.
        app.load(refresh_header, outputs=header, api_name="header", show_progress="hidden")
        gr.Timer(HEADER_REFRESH_S).tick(refresh_header, outputs=header, show_progress="hidden",
                                         api_visibility="private")
        status_out = gr.JSON(visible=False)
        app.load(status_json, outputs=status_out, api_name="status", show_progress="hidden")
        for fn, outputs in ctx.on_load:
            app.load(fn, outputs=outputs, show_progress="hidden", api_visibility="private")

        def opening_tab() -> Any:
            """A reload while a run trains opens the Train tab on it, not the Knowledge tab."""
            return gr.Tabs(selected="train") if train_tab.training_now(ctx) else gr.skip()

        app.load(opening_tab, outputs=tabs, show_progress="hidden", api_visibility="private")
    return app


def wire_runs(ctx: AppContext, tabs: gr.Tabs, method: method_tab.MethodView,
              train: train_tab.TrainView, runs: runs_tab.RunsView) -> None:
    """Events that cross tabs: Start shows the new run in the Train tab; a past run can be
    followed there or its config loaded into the Method tab. Plus the API entry point that
    starts a run from its YAML, for scripts (`gradio_client`)."""

    @shows_errors
    def start(*values: Any) -> tuple[Any, ...]:
        run_id, note = method_actions.start(ctx, method.config(values))
        gr.Info(f"Run {run_id} started." + (f" {note}" if note else ""))
        choices = train_tab.run_choices(ctx)
        return gr.update(choices=choices, value=run_id), gr.Tabs(selected="train"), note

    @shows_errors
    def follow(run_id: int | None) -> tuple[Any, ...]:
        if run_id is None:
            raise WorkbenchError("select a run in the table first")
        return gr.update(choices=train_tab.run_choices(ctx), value=run_id), gr.Tabs(selected="train")

    @shows_errors
    def load_config(run_id: int | None) -> list[Any]:
        if run_id is None:
            raise WorkbenchError("select a run in the table first")
        cfg = runs_tab.config_of(ctx, run_id)
        return [*method.fill(ctx, cfg), f"Loaded the config of run {run_id}.",
                gr.Tabs(selected="method")]

    @shows_errors
    def start_run(config_yaml: str) -> int:
        """Start a run from its YAML (as `workbench config` prints it); returns the run id."""
        cfg = RunConfig.from_yaml(config_yaml, source="the request")
        return method_actions.start(ctx, cfg)[0]

    method.start_btn.click(start, method.inputs, [train.run_pick, tabs, method.status])
    runs.follow_btn.click(follow, [runs.selected], [train.run_pick, tabs])
    runs.load_btn.click(load_config, [runs.selected], [*method.inputs, method.status, tabs])
    gr.api(start_run, api_name="start_run")


def wire_inject(ctx: AppContext, tabs: gr.Tabs, knowledge: knowledge_tab.KnowledgeView,
                train: train_tab.TrainView) -> None:
    """The Knowledge tab's Inject: prepare the set and start the recommended run (progress on
    the Knowledge tab), then show the run in the Train tab, where it trains live."""

    @shows_errors
    def inject(name: str | None, model: str,
               progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        run_id, message = inject_actions.inject(ctx, name, model,
                                                lambda f, m: progress(f, desc=m))
        gr.Info(message)
        return (run_id, message, *knowledge.refresh(name))

    def follow(run_id: int) -> tuple[Any, ...]:
        return gr.update(choices=train_tab.run_choices(ctx), value=run_id), gr.Tabs(selected="train")

    started = gr.State(None)
    knowledge.inject_btn.click(
        inject, [knowledge.set_pick, knowledge.model], [started, knowledge.status, *knowledge.views],
        api_visibility="private").success(follow, [started], [train.run_pick, tabs],
                                          api_visibility="private")
