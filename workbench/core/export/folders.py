"""Take a finished run's model out of the workspace, for use without the workbench.

- **adapter**: the run's peft adapter folder as it is (adapter_config.json,
  adapter_model.safetensors, the tokenizer), to load onto the same base with
  `PeftModel.from_pretrained`. Only adapter methods have one.
- **merged**: a plain transformers model folder (safetensors). For adapter runs the adapter is
  merged into the base loaded at full precision, also for QLoRA runs: merging into 4-bit
  weights would round the update away. Runs that changed the weights copy their saved model.

Neither overwrites anything: the target folder must not exist or be empty.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from workbench.core.compare.pool import RunOutput, run_output
from workbench.core.config import RunConfig
from workbench.core.data import runs
from workbench.core.errors import WorkbenchError
from workbench.core.models import load_model, safe_adapter_dir
from workbench.core.progress import Progress, no_progress
from workbench.core.store import Store
from workbench.core.workspace import Workspace


def finished_output(store: Store, workspace: Workspace, run_id: int) -> RunOutput:
    """The run's outputs, or an error that says why there are none to export."""
    run = runs.get(store, run_id)  # an unknown run fails here, with its own message
    try:
        return run_output(store, workspace, run_id)
    except WorkbenchError:
        raise WorkbenchError(f"run {run_id} ({run.status}) has no trained model to export",
                             hint="only runs that finished or were stopped after saving have "
                                  "one; resume it to let it finish") from None


def empty_target(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WorkbenchError(f"{out} already exists and is not empty",
                             hint="choose another --out folder or remove that one first")
    return out


def export_adapter(store: Store, workspace: Workspace, run_id: int, out: Path) -> Path:
    """Copy the run's peft adapter folder to `out`."""
    output = finished_output(store, workspace, run_id)
    if output.kind != "adapter":
        raise WorkbenchError(f"run {run_id} ({output.method}) changed the model's own weights, "
                             "so it has no adapter to export",
                             hint="export the whole model with --merged")
    shutil.copytree(output.folder, empty_target(out), dirs_exist_ok=True)
    return out


def export_merged(store: Store, workspace: Workspace, run_id: int, out: Path, *,
                  progress: Progress = no_progress) -> Path:
    """Write the run's trained model to `out` as one standalone transformers model."""
    output = finished_output(store, workspace, run_id)
    empty_target(out)
    if output.kind == "weights":
        shutil.copytree(output.folder, out, dirs_exist_ok=True)
        return out
    from peft import PeftModel

    cfg = RunConfig.from_run(runs.get(store, run_id))
    progress(0.0, f"loading {cfg.model.name_or_path} at full precision")
    loaded = load_model(dataclasses.replace(cfg.model, quantization="none"))
    progress(0.5, "merging the adapter and saving")
    merged = PeftModel.from_pretrained(loaded.model, safe_adapter_dir(output.folder)).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    progress(1.0, "merged")
    return out
