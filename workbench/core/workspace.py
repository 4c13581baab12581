"""Where the workspace lives: the SQLite store, run folders and logs.

Resolution order: an explicit path (the `--workspace` flag), then `$WORKBENCH_HOME`, then
`~/knowledge-workbench` (visible, so users find their runs and adapters).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.core.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.core.store import Store

ENV_VAR = "WORKBENCH_HOME"
DEFAULT_DIRNAME = "knowledge-workbench"
DB_FILENAME = "workbench.db"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / DB_FILENAME

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def configs_dir(self) -> Path:
        """Run configs saved by name from the Method tab (plain YAML, usable with the CLI)."""
        return self.root / "configs"

    def run_dir(self, run_id: int) -> Path:
        return self.runs_dir / str(run_id)


def resolve_workspace(path: str | os.PathLike[str] | None = None) -> Workspace:
    """Pick the workspace folder and create it (with `runs/`) if needed."""
    if path is not None and str(path).strip():
        raw = str(path)
    elif os.environ.get(ENV_VAR, "").strip():
        raw = os.environ[ENV_VAR]
    else:
        raw = str(Path.home() / DEFAULT_DIRNAME)
    root = Path(raw).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise WorkbenchError(
            f"workspace {root} exists but is a file, not a folder",
            hint=f"pass --workspace with a folder path or set ${ENV_VAR}",
        )
    try:
        (root / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WorkbenchError(
            f"cannot create workspace folder {root}: {err.strerror or err}",
            hint=f"pass --workspace with a writable folder or set ${ENV_VAR}",
        ) from err
    return Workspace(root)


def open_workspace(path: str | os.PathLike[str] | None = None) -> tuple[Store, Workspace]:
    """The workspace (as `resolve_workspace` picks it) and its store: what every CLI command
    starts from."""
    from workbench.core.store import Store  # store imports nothing from here; lazy anyway

    workspace = resolve_workspace(path)
    return Store(workspace.db_path), workspace
