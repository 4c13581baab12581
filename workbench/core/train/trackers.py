"""Experiment trackers (`training.report_to`) through accelerate's own integration: the run's
Accelerator is created with `log_with`, its settings go in as hyper-parameters, and every
metrics row the Train tab charts is sent with `Accelerator.log` at its step, recall rounds
included. accelerate sends from the main process only. Nothing here knows a tracker's API.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.core.errors import ConfigError

# tracker name → (module that must import, what to pip install)
PACKAGES: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "trackio": ("trackio", "trackio"),
}
PROJECT = "knowledge-workbench"
TRACKER_DIR = "trackers"  # under the run's folder: TensorBoard's event files, MLflow's runs


def check_installed(names: Sequence[str]) -> None:
    """One line naming the `pip install` for each chosen tracker whose package is missing,
    before any model is loaded."""
    missing = [PACKAGES[n][1] for n in names if importlib.util.find_spec(PACKAGES[n][0]) is None]
    if missing:
        raise ConfigError(f"training.report_to needs {', '.join(missing)}, which "
                          f"{'is' if len(missing) == 1 else 'are'} not installed: "
                          f"pip install {' '.join(missing)}")


def accelerator_options(names: Sequence[str], out: Path) -> dict[str, Any]:
    """The Accelerator's tracker arguments for a run writing into `out`."""
    if not names:
        return {}
    return {"log_with": list(names), "project_dir": str(out / TRACKER_DIR)}


def hyperparameters(config: Mapping[str, Any]) -> dict[str, Any]:
    """The run's YAML as flat "section/field" values of the types every tracker accepts
    (lists become text: TensorBoard's hparams take scalars only)."""
    flat: dict[str, Any] = {}
    for section, fields in config.items():
        if not isinstance(fields, Mapping):
            flat[section] = fields if isinstance(fields, (int, float, str, bool)) else str(fields)
            continue
        for name, value in fields.items():
            ok = isinstance(value, (int, float, str, bool))
            flat[f"{section}/{name}"] = value if ok else ("" if value is None else str(value))
    return flat


def start(accelerator: Any, run_name: str, config: Mapping[str, Any]) -> None:
    accelerator.init_trackers(PROJECT, config=hyperparameters(config),
                              init_kwargs={"wandb": {"name": run_name},
                                           "trackio": {"name": run_name}})


def numbers(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric entries of a metrics row or a recall round, named as the charts name them;
    None and NaN left out (a step without a reading)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def send(accelerator: Any, values: Mapping[str, Any], step: int, prefix: str = "") -> None:
    row = numbers(values, prefix)
    if row and accelerator.trackers:
        accelerator.log(row, step=step)


def finish(accelerator: Any) -> None:
    if accelerator.trackers:
        accelerator.end_training()
