"""What the Method tab remembers between sessions: recent model choices (in the store) and
run configs saved by name (YAML files in the workspace's `configs/`, so the CLI can train
them as they are: `workbench train configs/NAME.yaml`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from workbench.core.config import RunConfig
from workbench.core.data import runs
from workbench.core.errors import ConfigError
from workbench.core.store import Store
from workbench.core.workspace import Workspace

RECENT_MODELS_KEY = "recent_models"
RECENT_LIMIT = 8
_NAME = re.compile(r"^[\w][\w .-]{0,63}$")


def recent_models(store: Store) -> list[str]:
    text = runs.pref(store, RECENT_MODELS_KEY)
    try:
        value = json.loads(text) if text is not None else []
    except json.JSONDecodeError:
        return []  # a damaged preference is forgotten, never an error
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def remember_model(store: Store, name: str) -> list[str]:
    """Put `name` first in the recent list (most recent first, no repeats)."""
    name = name.strip()
    if not name:
        return recent_models(store)
    with store.write():  # read and write under one lock: two tabs cannot drop each other's
        models = [name] + [m for m in recent_models(store) if m != name]
        runs.set_pref(store, RECENT_MODELS_KEY, json.dumps(models[:RECENT_LIMIT]))
    return models[:RECENT_LIMIT]


def config_path(workspace: Workspace, name: str) -> Path:
    """The file of a saved config; names are plain words so they can never leave `configs/`."""
    clean = " ".join(name.split())
    if not _NAME.match(clean) or ".." in clean:
        raise ConfigError(f"config name {name!r} is not usable",
                          hint="use letters, digits, spaces, '.', '-' or '_' (up to 64)")
    return workspace.configs_dir / f"{clean}.yaml"


def save_config(workspace: Workspace, name: str, cfg: RunConfig) -> Path:
    return cfg.save(config_path(workspace, name))


def load_config(workspace: Workspace, name: str) -> RunConfig:
    return RunConfig.load(config_path(workspace, name))


def saved_configs(workspace: Workspace) -> list[str]:
    folder = workspace.configs_dir
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
