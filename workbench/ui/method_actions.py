"""What the Method tab's controls do, as plain functions of the app context and the form's
values: build and check the run config, show it as YAML and a command line, estimate its
memory, save and load it, and start it."""

from __future__ import annotations

import html
import shlex
from typing import TYPE_CHECKING, Any

from workbench.core import presets
from workbench.core.config import RunConfig, changed_settings
from workbench.core.errors import WorkbenchError
from workbench.core.knowledge import sets
from workbench.core.methods.registry import REGISTRY
from workbench.core.models import resolve_source
from workbench.core.paths import DEMO_MODEL
from workbench.ui import compare_actions
from workbench.ui.context import AppContext

if TYPE_CHECKING:
    from workbench.core.device import DeviceInfo
    from workbench.core.estimate import Estimate, MemoryEstimate

# The share of the device the UI's chat model may keep while a run starts beside it; above
# this the chat model is released first (it reloads on demand afterwards).
FIT_SHARE = 0.9


def set_names(ctx: AppContext) -> list[str]:
    return [s.name for s in sets.list_sets(ctx.store)]


def model_choices(ctx: AppContext) -> list[str]:
    """The demo model first, then the recent choices (most recent first)."""
    return list(dict.fromkeys([DEMO_MODEL, *presets.recent_models(ctx.store)]))


def default_config(ctx: AppContext) -> RunConfig:
    """What the tab shows on a first visit: the demo injection when the demo set is in the
    workspace (press Start and it works), else the defaults on the first knowledge set."""
    from workbench.demo.bench import demo_run_config
    from workbench.demo.knowledge import DEMO_SET_NAME

    names = set_names(ctx)
    if DEMO_SET_NAME in names and ctx.default_model == DEMO_MODEL:
        return demo_run_config()
    cfg = RunConfig()
    return cfg.with_values({"model.name_or_path": ctx.default_model,
                            "data.knowledge_set": names[0] if names else ""})


def method_advice(name: str) -> str:
    method = REGISTRY.get(name)
    return f"**{name}** — {method.advice}" if method else ""


def method_choices() -> list[tuple[str, str]]:
    """(label, name) of every registered method, in registry order."""
    return [(name.replace("_", " "), name) for name in REGISTRY]


def make_config(model: str, knowledge_set: str | None, method: str, values: dict[str, Any],
                name: str = "") -> RunConfig:
    """The form's values as a checked RunConfig (ConfigError names any bad field)."""
    return RunConfig().with_values({
        "name": (name or "").strip(), "model.name_or_path": (model or "").strip(),
        "data.knowledge_set": knowledge_set or "", "method.name": method, **values})


def cli_command(cfg: RunConfig) -> str:
    """A shell command that rebuilds `cfg` from the defaults and trains it."""
    flags = []
    for path, value in changed_settings(cfg).items():
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = str(value).lower()
        flags.append(f"--{path} {shlex.quote(str(value))}" if path != "name"
                     else f"--set name={shlex.quote(str(value))}")
    setup = " \\\n    ".join(["workbench config -q -o run.yaml", *flags])
    return f"{setup}\nworkbench train run.yaml"


def save(ctx: AppContext, name: str, cfg: RunConfig) -> str:
    path = presets.save_config(ctx.workspace, name, cfg)
    return f"Saved as **{path.stem}** (`configs/{path.name}` in the workspace)."


def load(ctx: AppContext, name: str | None, upload: str | None) -> RunConfig:
    """A saved config by name, or an uploaded YAML file."""
    if upload:
        return RunConfig.load(upload)
    if not name:
        raise WorkbenchError("choose a saved config or upload a run YAML file")
    return presets.load_config(ctx.workspace, name)


def status_html(message: str, level: str = "info") -> str:
    return f'<div class="wb-msg wb-msg-{level}">{html.escape(message)}</div>'


def start(ctx: AppContext, cfg: RunConfig) -> tuple[int, str]:
    """Start `cfg` in a background worker; returns (run id, a note for the user)."""
    from workbench.core.train import control

    if not cfg.data.knowledge_set:
        raise WorkbenchError("choose a knowledge set to inject",
                             hint="create one in the Knowledge tab")
    note = make_room(ctx, cfg)
    run_id = control.start_run(ctx.store, ctx.workspace, cfg)
    presets.remember_model(ctx.store, cfg.model.name_or_path)
    return run_id, note


def make_room(ctx: AppContext, cfg: RunConfig) -> str:
    """Release the UI's chat model when the run would not fit beside it (it reloads on demand
    afterwards). A run that fits anyway keeps it: reloading costs the user seconds to minutes."""
    from workbench.core.device import memory_in_use, pick_device

    loaded = ctx.models.current
    if loaded is None or loaded.device != pick_device(cfg.model.device):
        return ""
    needed = run_estimate(ctx, cfg)
    held = memory_in_use(loaded.device)
    if held + needed.total <= FIT_SHARE * needed.capacity:
        return ""
    ctx.models.release()
    compare_actions.release(ctx)
    return (f"Released the chat model ({loaded.source.describe()}) to make room for the run; it "
            f"loads again when next needed.")


_COLORS = {"weights": "#1f77b4", "trained weights + gradients": "#2ca02c",
           "optimizer state": "#9467bd", "activations": "#ff7f0e",
           "loading the checkpoint": "#bcbd22", "runtime": "#9aa5b1"}


def memory_parts(est: MemoryEstimate) -> list[tuple[str, int]]:
    """The estimate's parts as they add up to its total: activations net of what the backward
    pass frees while gradients arrive, and whatever loading adds on top (a mapped or converted
    checkpoint) as its own part."""
    parts = [("weights", est.weights), ("trained weights + gradients", est.trainable),
             ("optimizer state", est.optimizer),
             ("activations", est.net_activations), ("runtime", est.runtime)]
    rest = est.total - sum(size for _, size in parts)
    if rest > 0:
        parts.insert(4, ("loading the checkpoint", rest))
    return [(label, size) for label, size in parts if size > 0]


def device_for(ctx: AppContext, cfg: RunConfig) -> DeviceInfo:
    from workbench.core.device import describe_device, pick_device

    kind = pick_device(cfg.model.device)
    return ctx.device if ctx.device.kind == kind else describe_device(kind)


def run_preflight(ctx: AppContext, cfg: RunConfig) -> Estimate:
    """The core's pre-flight of `cfg` on the device it would run on; the chat model's
    tokenizer is lent when it is the run's model (loading another costs a second or more)."""
    from workbench.core.estimate import preflight

    loaded = ctx.models.current
    same = loaded is not None and loaded.source == resolve_source(cfg.model.name_or_path,
                                                                  cfg.model.revision)
    return preflight(cfg, ctx.store, device=device_for(ctx, cfg),
                     tokenizer=loaded.tokenizer if same and loaded else None)


def run_estimate(ctx: AppContext, cfg: RunConfig) -> MemoryEstimate:
    """The pre-flight memory estimate of `cfg` on the device it would run on."""
    return run_preflight(ctx, cfg).memory


def estimate_html(ctx: AppContext, cfg: RunConfig) -> str:
    """The estimate as a stacked bar against the device's capacity, the breakdown in words,
    a warning with a suggestion when it will not fit, and how long it would train."""
    from workbench.core.models import format_bytes

    checked = run_preflight(ctx, cfg)
    est, timing = checked.memory, checked.time
    parts = memory_parts(est)
    scale = max(est.capacity, est.total) or 1
    bar = "".join(
        f'<span style="width:{100 * size / scale:.2f}%;background:{_COLORS[label]}" '
        f'title="{html.escape(label)}: {format_bytes(size)}"></span>' for label, size in parts)
    cap = f'<div class="wb-mem-cap" style="left:{100 * est.capacity / scale:.2f}%"></div>'
    legend = "".join(f'<span><i style="background:{_COLORS[label]}"></i>{html.escape(label)} '
                     f'{format_bytes(size)}</span>' for label, size in parts)
    verdict = (f"Estimated peak {format_bytes(est.total)} of {format_bytes(est.capacity)} "
               f"on {est.device}")
    level = "ok" if est.fits else "warning"
    if not est.fits:
        verdict += " — it will probably not fit."
        if est.suggestion:
            verdict += f" Suggestion: {est.suggestion}."
    detail = html.escape("; ".join(est.lines()[1:]))  # the first line is the verdict above
    time_html = "" if timing is None else status_html(
        f"Time: {timing.line()}", "warning" if timing.too_long else "ok")
    return (f'<div class="wb-mem" id="wb-mem-estimate"><div class="wb-mem-bar">{bar}{cap}</div>'
            f'<div class="wb-mem-legend">{legend}</div>{status_html(verdict, level)}{time_html}'
            f'<div class="wb-mem-detail" style="font-size:0.85rem;opacity:0.8">{detail}</div></div>')
