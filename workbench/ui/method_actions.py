"""What the Method tab's controls do, as plain functions of the app context and the form's
values: build and check the run config, show it as YAML and a command line, estimate its
memory, save and load it, and start it."""

from __future__ import annotations

import html
import shlex
from typing import TYPE_CHECKING, Any

from workbench.core import presets
from workbench.core.config import METHODS, RunConfig, changed_settings
from workbench.core.data.knowledge import set_updated_at
from workbench.core.errors import WorkbenchError
from workbench.core.knowledge import sets
from workbench.core.methods.registry import REGISTRY
from workbench.core.models import resolve_source
from workbench.core.paths import DEMO_MODEL
from workbench.ui import compare_actions
from workbench.ui.context import AppContext

if TYPE_CHECKING:
    from workbench.core.device import DeviceInfo
    from workbench.core.estimate import MemoryEstimate, SetTokens
    from workbench.core.time_estimate import TimeEstimate

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
    return [(name.replace("_", " "), name) for name in METHODS]


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
             ("activations", max(0, est.activations - est.overlap)), ("runtime", est.runtime)]
    rest = est.total - sum(size for _, size in parts)
    if rest > 0:
        parts.insert(4, ("loading the checkpoint", rest))
    return [(label, size) for label, size in parts if size > 0]


def device_for(ctx: AppContext, cfg: RunConfig) -> DeviceInfo:
    from workbench.core.device import describe_device, pick_device

    kind = pick_device(cfg.model.device)
    return ctx.device if ctx.device.kind == kind else describe_device(kind)


def run_estimate(ctx: AppContext, cfg: RunConfig) -> MemoryEstimate:
    """The pre-flight estimate of `cfg` on the device it would run on."""
    from workbench.core.estimate import estimate_memory

    tokens = set_tokens_for(ctx, cfg)
    return estimate_memory(cfg, device=device_for(ctx, cfg),
                           seq_len=tokens.longest if tokens else None)


def run_time(ctx: AppContext, cfg: RunConfig, memory: MemoryEstimate) -> TimeEstimate | None:
    """How long `cfg` would train, or None before its set can be rendered."""
    from workbench.core.time_estimate import time_for_run

    tokens = set_tokens_for(ctx, cfg)
    if tokens is None:
        return None
    return time_for_run(ctx.store, cfg, tokens, device=device_for(ctx, cfg), memory=memory)


_set_tokens: dict[tuple[Any, ...], SetTokens] = {}


def set_tokens_for(ctx: AppContext, cfg: RunConfig) -> SetTokens | None:
    """The knowledge set rendered with the model's tokenizer: its longest example (so
    activations are estimated for the real batches rather than data.max_seq_len, often 10x
    longer) and its tokens per epoch (for the time estimate). Cached until the set, the model
    or the data settings change (a form change re-estimates)."""
    from workbench.core.estimate import set_tokens
    from workbench.core.models import load_tokenizer

    if not cfg.data.knowledge_set:
        return None
    try:
        sid = sets.set_id(ctx.store, cfg.data.knowledge_set)
    except WorkbenchError:
        return None
    stamp = set_updated_at(ctx.store, sid)
    key = (cfg.model.name_or_path, cfg.model.revision, sid, stamp, cfg.data.mode,
           cfg.data.include_statements, cfg.data.max_seq_len, cfg.data.replay_ratio)
    if key not in _set_tokens:
        loaded = ctx.models.current
        same = loaded is not None and loaded.source == resolve_source(cfg.model.name_or_path,
                                                                      cfg.model.revision)
        try:
            tokens = set_tokens(ctx.store, cfg,
                                loaded.tokenizer if same else load_tokenizer(cfg.model))
        except WorkbenchError:
            return None  # not cached: the tokenizer may be reachable next time
        if len(_set_tokens) > 64:  # every set edit makes a new key: forget the old ones
            _set_tokens.clear()
        _set_tokens[key] = tokens
    return _set_tokens[key]


def estimate_html(ctx: AppContext, cfg: RunConfig) -> str:
    """The estimate as a stacked bar against the device's capacity, the breakdown in words,
    a warning with a suggestion when it will not fit, and how long it would train."""
    from workbench.core.models import format_bytes

    est = run_estimate(ctx, cfg)
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
    timing = run_time(ctx, cfg, est)
    time_html = "" if timing is None else status_html(
        f"Time: {timing.line()}", "warning" if timing.too_long else "ok")
    return (f'<div class="wb-mem" id="wb-mem-estimate"><div class="wb-mem-bar">{bar}{cap}</div>'
            f'<div class="wb-mem-legend">{legend}</div>{status_html(verdict, level)}{time_html}'
            f'<div class="wb-mem-detail" style="font-size:0.85rem;opacity:0.8">{detail}</div></div>')
