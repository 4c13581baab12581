"""The Runs tab's Export panel: the bundle of the selected run (core.export.bundle), its
folder, the command of each runtime and the re-score table, a file that lost facts in red."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from workbench.core.compare.pool import run_folder
from workbench.core.errors import WorkbenchError
from workbench.core.export.bundle import Bundle, export_bundle
from workbench.core.export.rescore import LABELS, METRICS
from workbench.core.progress import with_eta
from workbench.core.train import jobs
from workbench.ui.context import AppContext

DELTA_COLUMNS = ["file", *(LABELS[m] for m in METRICS), "lost", "gained", "what changed"]
DELTA_WIDTHS = ["18%", "11%", "11%", "11%", "7%", "7%", "35%"]  # sums to 100%: fits the frame


def free_folder(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`… the first that does not exist: an export never
    overwrites an earlier one."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def delta_table(bundle: Bundle) -> pd.DataFrame:
    rows = [[("⚠ " if r.flagged else "") + r.artifact,
             *(r.cell(m) if m in r.scores else "" for m in METRICS), len(r.lost), len(r.gained),
             "; ".join(f"{c.question} → {c.after[:50]}" for c in r.lost[:3])]
            for r in bundle.rescored]
    return pd.DataFrame(rows, columns=DELTA_COLUMNS)


def summary(bundle: Bundle) -> str:
    lines = [f"**Exported to** `{bundle.folder}`: {', '.join(bundle.files)}."]
    if bundle.gguf_error:
        lines.append(f"<span class='export-flag'>No GGUF: {bundle.gguf_error}</span>")
    for r in bundle.flagged:
        lines.append(f"<span class='export-flag'>{r.artifact} lost more than 2 points: "
                     f"{r.line()}</span>")
    if bundle.rescored and not bundle.flagged:
        lines.append("Every exported file scores within 2 points of the run.")
    lines.append("**Use it** (from that folder; also in its README.md):\n\n"
                 + "\n".join(f"- {line}" for line in bundle.commands))
    return "\n\n".join(lines)


def export_run(ctx: AppContext, run_id: int | None, kinds: list[str], modelfile: bool,
               progress: Any) -> tuple[str, pd.DataFrame]:
    if run_id is None:
        raise WorkbenchError("select a finished run in the table first")
    if not kinds:
        raise WorkbenchError("choose at least one GGUF type (f16 or q8_0)")
    out = free_folder(run_folder(jobs.get_run(ctx.store, run_id), ctx.workspace) / "export")
    bundle = export_bundle(ctx.store, ctx.workspace, run_id, out, gguf=kinds,
                           modelfile=modelfile,
                           progress=with_eta(lambda f, message: progress(f, desc=message)))
    return summary(bundle), delta_table(bundle)


def build_panel(ctx: AppContext, selected: Any) -> None:
    """The panel under the run's details; `selected` is the Runs tab's selected-run state."""
    from workbench.ui.errors import shows_errors

    with gr.Accordion("Export: GGUF, Ollama, vLLM, merged, each scored again", open=False,
                      elem_id="runs-export"):
        with gr.Row():
            kinds = gr.CheckboxGroup(["f16", "q8_0"], value=["q8_0"], label="GGUF types",
                                     elem_id="runs-export-types")
            modelfile = gr.Checkbox(value=True, label="Ollama Modelfile")
            button = gr.Button("Export", variant="primary", elem_id="runs-export-btn")
        result = gr.Markdown(elem_id="runs-export-msg")
        deltas = gr.Dataframe(headers=DELTA_COLUMNS, interactive=False, wrap=True,
                              column_widths=DELTA_WIDTHS, elem_classes=["wb-table"],
                              label="Scored again after export (against the run)",
                              elem_id="runs-export-deltas")

    @shows_errors
    def run(run_id: int | None, chosen: list[str], with_modelfile: bool,
            progress: gr.Progress = gr.Progress()) -> tuple[str, pd.DataFrame]:
        return export_run(ctx, run_id, chosen, with_modelfile, progress)

    button.click(run, [selected, kinds, modelfile], [result, deltas], api_name="export_run",
                 show_progress_on=[result, deltas])
