"""What every tab shares: the workspace, its store, the device, and the one loaded model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.core.config import DEFAULT_MODEL
from workbench.core.device import DeviceInfo, describe_device
from workbench.core.model_cache import ModelCache
from workbench.core.store import Store
from workbench.core.workspace import Workspace


@dataclass
class AppContext:
    workspace: Workspace
    store: Store
    device: DeviceInfo
    models: ModelCache = field(default_factory=ModelCache)
    compare: Any = None  # the Compare tab's ComparePool, made on first use
    default_model: str = DEFAULT_MODEL
    # (function, outputs) pairs the app runs on every page load, so a reload shows the
    # store's current state.
    on_load: list[tuple[Callable[[], Any], list[Any]]] = field(default_factory=list)


def make_context(workspace: Workspace, default_model: str = DEFAULT_MODEL) -> AppContext:
    return AppContext(workspace=workspace, store=Store(workspace.db_path),
                      device=describe_device(), default_model=default_model)
