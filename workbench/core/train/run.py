"""One training run, start to finish, in this process: register it in the store, load the
model, apply the method, render the knowledge set, train while writing one metrics row per
step, and save the adapter (or weights) with the run YAML into the run folder.

The background worker, checkpoints, resume and fault handling build on this.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.knowledge import probes, sets
from workbench.core.knowledge.render import RenderReport, examples_from_phrasings, render_set
from workbench.core.methods import get_method
from workbench.core.models import load_model
from workbench.core.store import Store, now
from workbench.core.train.loop import planned_steps, train_loop
from workbench.core.workspace import Workspace

Progress = Callable[[dict[str, Any], int], None]  # (metrics row, planned steps)


@dataclass
class RunSummary:
    run_id: int
    status: str
    steps: int
    final_loss: float | None
    output_dir: Path
    seconds: float


def render_knowledge(store: Store, cfg: RunConfig, tokenizer: Any) -> RenderReport:
    if not cfg.data.knowledge_set:
        raise WorkbenchError("the run has no knowledge set", hint="set data.knowledge_set")
    sid = sets.set_id(store, cfg.data.knowledge_set)
    examples = examples_from_phrasings(sets.list_facts(store, sid), probes.training_phrasings(store, sid),
                                       mode=cfg.data.mode, include_statements=cfg.data.include_statements)
    report = render_set(examples, tokenizer, cfg.data.max_seq_len, overflow="drop")
    if not report.rendered:
        raise WorkbenchError(f"knowledge set {cfg.data.knowledge_set!r} gives no training examples",
                             hint="add facts, or raise data.max_seq_len if all were too long")
    return report


def create_run(store: Store, workspace: Workspace, cfg: RunConfig) -> int:
    sid = sets.set_id(store, cfg.data.knowledge_set) if cfg.data.knowledge_set else None
    with store.write() as db:
        run_id = int(db["runs"].insert({
            "name": cfg.name or f"{cfg.method.name} on {cfg.data.knowledge_set or 'no set'}",
            "status": "queued", "method": cfg.method.name, "model": cfg.model.name_or_path,
            "set_id": sid, "config_yaml": cfg.to_yaml(), "created_at": now(),
        }).last_pk)
        run_dir = workspace.run_dir(run_id)
        db.execute("UPDATE runs SET run_dir = ? WHERE id = ?", [str(run_dir), run_id])
    cfg.save(run_dir / "run.yaml")
    return run_id


def _set_status(store: Store, run_id: int, status: str, **fields: Any) -> None:
    with store.write() as db:
        db["runs"].update(run_id, {"status": status, **fields})


def _record_step(store: Store, run_id: int, row: dict[str, Any]) -> None:
    with store.write() as db:
        db["metrics"].insert({"run_id": run_id, "time": now(), **row})
        db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", [now(), run_id])


def _stop_requested(store: Store, run_id: int) -> bool:
    row = store.db.execute("SELECT stop_requested FROM runs WHERE id = ?", [run_id]).fetchone()
    return bool(row and row[0])


class Diverged(Exception):
    """The loss became NaN or infinite."""


def execute_run(store: Store, workspace: Workspace, run_id: int, *,
                progress: Progress = lambda row, total: None) -> RunSummary:
    cfg = RunConfig.from_yaml(store.db["runs"].get(run_id)["config_yaml"], source=f"run {run_id}")
    out = workspace.run_dir(run_id)
    started = time.perf_counter()
    _set_status(store, run_id, "running", started_at=now(), pid=None)
    try:
        loaded = load_model(cfg.model, quantization=cfg.effective_quantization)
        method = get_method(cfg.method.name)
        report = render_knowledge(store, cfg, loaded.tokenizer)
        model = method.apply(loaded.model, cfg.method)
        total = planned_steps(len(report.rendered), cfg.training)

        def on_step(row: dict[str, Any]) -> None:
            if not math.isfinite(row["loss"]):
                raise Diverged(f"loss became {row['loss']} at step {row['step']}")
            _record_step(store, run_id, row)
            progress(row, total)

        result = train_loop(model, report.rendered, cfg.training, pad_id=loaded.tokenizer.pad_token_id,
                            device=loaded.device, on_step=on_step,
                            should_stop=lambda: _stop_requested(store, run_id))
        _save_outputs(model, loaded.tokenizer, cfg, out, method.adapter)
    except Diverged as err:
        _set_status(store, run_id, "diverged", error=str(err), ended_at=now())
        raise WorkbenchError(f"run {run_id} diverged: {err}",
                             hint="lower training.learning_rate") from None
    except KeyboardInterrupt:
        _set_status(store, run_id, "interrupted", error="interrupted by the user", ended_at=now())
        raise
    except BaseException as err:
        _set_status(store, run_id, "failed", error=f"{type(err).__name__}: {err}"[:2000], ended_at=now())
        raise
    status = "stopped" if result.stopped else "completed"
    _set_status(store, run_id, status, ended_at=now())
    return RunSummary(run_id, status, result.steps, result.final_loss, out,
                      time.perf_counter() - started)


def _save_outputs(model: Any, tokenizer: Any, cfg: RunConfig, out: Path, adapter: bool) -> None:
    """The adapter (peft format) or the weights (safetensors), plus what reloads them."""
    target = out / ("adapter" if adapter else "model")
    model.save_pretrained(target)  # safetensors by default in peft and transformers
    tokenizer.save_pretrained(target)
    cfg.save(out / "run.yaml")
    (out / "outputs.json").write_text(json.dumps({"kind": "adapter" if adapter else "weights",
                                                  "path": target.name}), encoding="utf-8")
