"""The Knowledge tab's Inject button: `workbench inject` for a set already in the workspace
(prepare what it lacks, then the recommended run), started in the background worker like the
Method tab's Start, so the Train tab follows it live. No gradio here; `app` wires it."""

from __future__ import annotations

from typing import Any

from workbench.core.config import ModelConfig
from workbench.core.errors import KnowledgeError
from workbench.core.progress import Progress, with_eta
from workbench.ui.context import AppContext
from workbench.ui.knowledge_actions import resolve_set


def inject(ctx: AppContext, name: str | None, model: str, progress: Progress) -> tuple[int, str]:
    """The set prepared as far as it still needs (phrasings, held-out split, locality probes)
    and the run the recipe recommends for it and `model`, started in the background worker as
    the Method tab's Start does: `workbench inject` without the file import. (run id, message)"""
    from workbench.core.inject import prepared_config
    from workbench.ui import method_actions

    resolve_set(ctx.store, name)  # no set chosen: one line, before anything runs
    model = (model or "").strip()
    if not model:
        raise KnowledgeError("enter the model to inject into in the model field")

    def stage(step: str) -> Progress:  # each stage its own ETA: the fraction restarts
        return with_eta(lambda f, m: progress(f, f"{step}: {m}"))

    def load() -> Any:
        progress(0.0, f"loading {model} to find what it already knows")
        return ctx.models.get(ModelConfig(name_or_path=model), progress=stage("model"))

    cfg = prepared_config(ctx.store, str(name), model, load=load, stage=stage)
    progress(1.0, "starting the run")
    run_id, note = method_actions.start(ctx, cfg)
    return run_id, (f"Run {run_id} started with the recommended recipe ({cfg.method.name}, "
                    f"learning rate {cfg.training.learning_rate:g}, up to "
                    f"{cfg.training.epochs} epochs): it trains live in the Train tab and ends "
                    f"with its verdict there." + (f" {note}" if note else ""))
