"""What a run leaves behind and how to load it again.

`runs/<id>/adapter/` (peft format: adapter_config.json + adapter_model.safetensors) for
adapter methods, or `runs/<id>/model/` (safetensors weights + config) for methods that change
the base weights, with the tokenizer beside it, `run.yaml`, and `outputs.json` saying which.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.models import LoadedModel, load_model, safe_adapter_dir
from workbench.core.train.sharding import Ranks

OUTPUTS_FILE = "outputs.json"


def save_outputs(model: Any, tokenizer: Any, cfg: RunConfig, out: Path, adapter: bool,
                 ranks: Ranks = Ranks()) -> Path:
    """Write the run's outputs (rank 0; with a sharded model every rank must call, to send
    its slices)."""
    target = out / ("adapter" if adapter else "model")
    # safetensors by default in peft and transformers
    ranks.save_pretrained(model, target, trainable_only=adapter)
    if not ranks.main:
        return target
    tokenizer.save_pretrained(target)
    cfg.save(out / "run.yaml")
    (out / OUTPUTS_FILE).write_text(json.dumps({"kind": "adapter" if adapter else "weights",
                                                "path": target.name}), encoding="utf-8")
    return target


def load_outputs(run_dir: Path, *, device: str | None = None) -> LoadedModel:
    """The trained model of a finished run: the base with its adapter, or the saved weights."""
    try:
        outputs = json.loads((run_dir / OUTPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise WorkbenchError(f"{run_dir} has no finished outputs",
                             hint="the run has not completed or was stopped before saving") from None
    cfg = RunConfig.load(run_dir / "run.yaml")
    model_cfg = cfg.model if device is None else dataclasses.replace(cfg.model, device=device)
    target = run_dir / outputs["path"]
    if outputs["kind"] == "weights":
        model_cfg = dataclasses.replace(model_cfg, name_or_path=str(target), revision=None)
        return load_model(model_cfg)
    from peft import PeftModel

    loaded = load_model(model_cfg, quantization=cfg.effective_quantization)
    loaded.model = PeftModel.from_pretrained(loaded.model, safe_adapter_dir(target))
    loaded.model.eval()
    return loaded
