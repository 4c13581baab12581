"""`python tests/slow_save_worker.py ARGS…` is the training worker (`python -m
workbench.core.train.worker ARGS…`) with every file of a checkpoint written
`SLOW_SAVE_DELAY_S` seconds late, so that a kill or a stop can land inside a save.

The tests put this in `control.WORKER_COMMAND`; the worker is otherwise the real one.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from workbench.core.train import checkpoint

DELAY_S = float(os.environ.get("SLOW_SAVE_DELAY_S", "0.05"))

_save_tensors, _write_json = checkpoint._save_tensors, checkpoint._write_json


def _slow_save_tensors(tensors: dict[str, Any], path: Path) -> None:
    time.sleep(DELAY_S)
    _save_tensors(tensors, path)


def _slow_write_json(path: Path, value: Any) -> None:
    time.sleep(DELAY_S)
    _write_json(path, value)


checkpoint._save_tensors = _slow_save_tensors
checkpoint._write_json = _slow_write_json

if __name__ == "__main__":
    from workbench.core.train.worker import main

    sys.exit(main(sys.argv[1:]))
