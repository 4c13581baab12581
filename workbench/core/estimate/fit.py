"""The memory estimate of a run, and when it does not fit, the first change that makes it fit:
the same training in less memory first, then a lighter method (each method says which is
lighter than itself), then shorter examples."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from workbench.core.errors import ConfigError
from workbench.core.estimate.result import MemoryEstimate
from workbench.core.estimate.terms import breakdown
from workbench.core.methods.base import Change
from workbench.core.methods.registry import get_method
from workbench.core.model_shape import ModelShape, model_shape
from workbench.core.models import format_bytes

if TYPE_CHECKING:
    from workbench.core.config import RunConfig
    from workbench.core.device import DeviceInfo


def estimate_memory(cfg: RunConfig, *, device: DeviceInfo | None = None,
                    seq_len: int | None = None, shape: ModelShape | None = None) -> MemoryEstimate:
    """The peak memory of training `cfg` on `device` (default: the device the run would use)
    with batches `seq_len` tokens long (default data.max_seq_len, an upper bound; pass
    `batch_seq_len(...)` for the knowledge set's real length)."""
    if device is None:
        from workbench.core.device import describe_device, pick_device

        device = describe_device(pick_device(cfg.model.device))
    shape = shape or model_shape(cfg.model)
    seq_len = min(seq_len or cfg.data.max_seq_len, cfg.data.max_seq_len)
    estimate = breakdown(cfg, device, seq_len, shape)
    if not estimate.fits:
        label, values, fitted = _suggest(cfg, device, seq_len, shape)
        text = f"{label}: {format_bytes(fitted.total)}" if fitted else label
        estimate = dataclasses.replace(estimate, suggestion=text,
                                       suggested_values=tuple(values.items()))
    return estimate


def _suggest(cfg: RunConfig, device: DeviceInfo, seq_len: int,
             shape: ModelShape) -> tuple[str, dict[str, Any], MemoryEstimate | None]:
    """(what to change, the settings, the estimate after it) for the first change that makes
    the run fit, least disruptive first: the same training in less memory (a smaller micro
    batch, then recomputed activations), then a lighter method, then shorter examples. When
    no single change is enough, the others accumulate in that order, each time with the
    largest micro batch that then fits; when nothing does, a smaller model."""
    batches, others = _batch_changes(cfg), _other_changes(cfg, seq_len)
    for label, values in batches + others:
        fitted = _try(cfg, values, device, seq_len, shape)
        if fitted is not None:
            return label, values, fitted
    labels: dict[str, str] = {}  # first setting → label: a later method or length replaces
    settings: dict[str, Any] = {}
    for label, values in others:
        labels[next(iter(values))] = label
        settings.update(values)
        for batch_label, batch_values in [("", {}), *batches]:
            fitted = _try(cfg, {**settings, **batch_values}, device, seq_len, shape)
            if fitted is not None:
                text = " and ".join(filter(None, [batch_label, *labels.values()]))
                return text, {**settings, **batch_values}, fitted
    return "a smaller model", {}, None


def _batch_changes(cfg: RunConfig) -> list[Change]:
    """Smaller micro batches, largest first, each a divisor of the current one so that more
    accumulation keeps the effective batch exactly: the same training, slower."""
    t, out = cfg.training, []
    for micro in range(t.micro_batch_size - 1, 0, -1):
        if t.micro_batch_size % micro:
            continue
        accum = t.gradient_accumulation_steps * t.micro_batch_size // micro
        out.append((f"micro batch {micro} with accumulation {accum} (same effective batch)",
                    {"training.micro_batch_size": micro,
                     "training.gradient_accumulation_steps": accum}))
    return out


def _other_changes(cfg: RunConfig, seq_len: int) -> list[Change]:
    out: list[Change] = []
    if not cfg.training.gradient_checkpointing:
        out.append(("gradient checkpointing", {"training.gradient_checkpointing": True}))
    out.extend(get_method(cfg.method.name).lighter(cfg))  # a lighter method, or base
    for shorter in (seq_len // 2, seq_len // 4):  # cuts (drops) the longer examples
        if shorter >= 16:
            out.append((f"max_seq_len {shorter}", {"data.max_seq_len": shorter}))
    return out


def _try(cfg: RunConfig, values: dict[str, Any], device: DeviceInfo, seq_len: int,
         shape: ModelShape) -> MemoryEstimate | None:
    try:
        changed = cfg.with_values(values)
    except ConfigError:
        return None
    estimate = breakdown(changed, device, min(seq_len, changed.data.max_seq_len), shape)
    return estimate if estimate.fits else None
