"""The pre-flight check of a run config: will it fit, and how long will it train, before a
single weight is loaded. The Method tab shows it on every form change and `workbench config
--memory` prints it, both through `preflight`.

Rendering the knowledge set with the model's tokenizer (for its real sequence lengths and
tokens per epoch) is the one slow part: loading a tokenizer and rendering a real set takes
about a second, too long to repeat on every keystroke in the form. Its result is cached here
until the set, the model or a data setting that changes rendering changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.core.errors import WorkbenchError
from workbench.core.estimate.fit import estimate_memory
from workbench.core.estimate.result import MemoryEstimate
from workbench.core.estimate.tokens import SetTokens, set_tokens
from workbench.core.model_shape import model_shape

if TYPE_CHECKING:
    from workbench.core.config import RunConfig
    from workbench.core.device import DeviceInfo
    from workbench.core.store import Store
    from workbench.core.time_estimate import TimeEstimate

_CACHE_SIZE = 64  # every edit of a set makes a new key: past this, the old ones are forgotten


@dataclass(frozen=True)
class Estimate:
    """What a run will need: memory against the device, and (once its set renders) time."""

    memory: MemoryEstimate
    time: TimeEstimate | None  # None before the run's set can be rendered
    tokens: SetTokens | None


def preflight(cfg: RunConfig, store: Store | None = None, *, device: DeviceInfo | None = None,
              tokenizer: Any = None) -> Estimate:
    """The estimate of `cfg` on `device` (default: the device it would run on). With a
    `store`, the run's knowledge set is rendered for its real lengths (cached; `tokenizer`,
    when given, is used on a cache miss instead of loading the model's own); without one, or
    when the set cannot be rendered, memory is estimated at data.max_seq_len, an upper bound,
    and there is no time estimate."""
    from workbench.core.time_estimate import time_for_run

    if device is None:
        from workbench.core.device import describe_device, pick_device

        device = describe_device(pick_device(cfg.model.device))
    tokens = cached_set_tokens(store, cfg, tokenizer) if store is not None else None
    memory = estimate_memory(cfg, device=device, seq_len=tokens.longest if tokens else None,
                             shape=model_shape(cfg.model))
    timing = None
    if tokens is not None and store is not None:
        timing = time_for_run(store, cfg, tokens, device=device, memory=memory)
    return Estimate(memory, timing, tokens)


_set_tokens: dict[tuple[Any, ...], SetTokens] = {}


def cached_set_tokens(store: Store, cfg: RunConfig, tokenizer: Any = None) -> SetTokens | None:
    """`set_tokens` of the run's set, or None when it has none or it cannot be rendered (not
    cached: the tokenizer may be reachable next time)."""
    from workbench.core.knowledge import sets
    from workbench.core.models import load_tokenizer

    if not cfg.data.knowledge_set:
        return None
    try:
        sid = sets.set_id(store, cfg.data.knowledge_set)
    except WorkbenchError:
        return None
    key = (str(store.path), cfg.model.name_or_path, cfg.model.revision, sid,
           _set_stamp(store, sid), cfg.data.mode, cfg.data.include_statements,
           cfg.data.answer_style, cfg.data.max_seq_len, cfg.data.replay_ratio)
    if key not in _set_tokens:
        try:
            tokens = set_tokens(store, cfg, tokenizer or load_tokenizer(cfg.model))
        except WorkbenchError:
            return None
        if len(_set_tokens) > _CACHE_SIZE:
            _set_tokens.clear()
        _set_tokens[key] = tokens
    return _set_tokens[key]


def _set_stamp(store: Store, sid: int) -> Any:
    """When the set last changed: any edit of its facts or phrasings moves it."""
    from workbench.core.data.knowledge import set_updated_at

    return set_updated_at(store, sid)
