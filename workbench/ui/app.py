"""Assemble the Gradio app: header, then the Knowledge, Method, Train and Compare tabs.

The app holds no state of its own beyond the `AppContext` (workspace + store); every callback
calls a core function, so the same behaviour is reachable from the CLI and from tests.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from workbench.ui import knowledge_tab
from workbench.ui.context import AppContext
from workbench.ui.status import header_html, read_status

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CSS_PATH = ASSETS / "style.css"
HEADER_REFRESH_S = 5.0

# Tabs whose features are not built yet say so plainly (and what they will do) instead of
# showing controls that do nothing.
PENDING_TABS: tuple[tuple[str, str], ...] = (
    ("Method", "Pick a model (hub id, local folder or the embedded demo model) and an "
     "injection method, set hyper-parameters, see a memory estimate against your GPU, and "
     "export the run as YAML or a CLI command."),
    ("Train", "Run training in a background process with live charts of loss, learning rate, "
     "gradient norm, memory, tokens/s, MFU and per-fact recall; stop, resume and re-attach."),
    ("Compare", "Chat with the base and tuned models side by side and score every fact: "
     "efficacy, paraphrase generalization, locality and abstention."),
)


def build_app(ctx: AppContext) -> gr.Blocks:
    def refresh_header() -> str:
        return header_html(read_status(ctx.workspace, ctx.store, ctx.device))

    def status_json() -> dict:
        return read_status(ctx.workspace, ctx.store, ctx.device).as_dict()

    with gr.Blocks(title="Knowledge Workbench") as app:
        header = gr.HTML(refresh_header(), elem_id="wb-header")
        with gr.Tabs(elem_id="wb-tabs"):
            with gr.Tab("Knowledge", id="knowledge"):
                knowledge_tab.build(ctx)
            for label, purpose in PENDING_TABS:
                with gr.Tab(label, id=label.lower()):
                    gr.Markdown(
                        f"**Not built yet.** This tab will: {purpose}",
                        elem_classes=["wb-pending"],
                    )
        # Fresh counts on every page load and every few seconds (the CLI or a training run
        # may change the store); also the app's machine-readable health endpoint.
        app.load(refresh_header, outputs=header, api_name="header", show_progress="hidden")
        gr.Timer(HEADER_REFRESH_S).tick(refresh_header, outputs=header, show_progress="hidden",
                                         api_visibility="private")
        status_out = gr.JSON(visible=False)
        app.load(status_json, outputs=status_out, api_name="status", show_progress="hidden")
        for fn, outputs in ctx.on_load:
            app.load(fn, outputs=outputs, show_progress="hidden", api_visibility="private")
    return app
