"""Refusing before a long wait when the disk cannot take what is about to be written (a
model download, an export bundle, an injection's outputs): one check and one message, so
the user learns it up front, not from a half-written folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from workbench.core.errors import WorkbenchError
from workbench.core.units import format_bytes

# Left free besides what is written: metadata, tokenizer files, temporary copies and what the
# file system rounds up.
SPARE = 256 * 2**20


def nearest_folder(path: Path) -> Path:
    """`path`, or the nearest folder above it that exists (a cache not created yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def require_free(path: Path, needed: int, what: str, *, hint: str,
                 error: type[WorkbenchError] = WorkbenchError) -> int:
    """The free bytes where `path` is (or would be), refusing with `error` when `needed` bytes
    of `what` and SPARE would not fit."""
    folder = nearest_folder(path)
    free = shutil.disk_usage(folder).free
    if free < needed + SPARE:
        raise error(f"not enough disk for {what}: it needs about {format_bytes(needed)} and "
                    f"{folder} has {format_bytes(free)} free", hint=hint)
    return free
