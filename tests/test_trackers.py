"""training.report_to: the run's metrics and settings go to experiment trackers through
accelerate. TensorBoard end to end: event files written, every charted scalar readable."""

from __future__ import annotations

import importlib.util

import pytest

from workbench.core.errors import ConfigError
from workbench.core.train import jobs, run as run_module, trackers


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list(folder.rglob("events.out.tfevents.*"))
    assert files, f"no event files under {folder}"
    found: dict[str, list[tuple[int, float]]] = {}
    for f in files:
        acc = EventAccumulator(str(f))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return found


def test_tensorboard_gets_every_chart_series_and_the_settings(bench) -> None:
    ws, store, config = bench
    cfg = config(**{"training.epochs": 2, "training.report_to": ["tensorboard"],
                    "training.probe_every": 2})
    run_id = run_module.create_run(store, ws, cfg)
    summary = run_module.execute_run(store, ws, run_id)
    assert summary.status == "completed"
    found = _scalars(ws.run_dir(run_id) / trackers.TRACKER_DIR)
    steps = summary.steps
    for series in ("loss", "lr", "grad_norm", "tokens_per_s", "mem_allocated"):
        assert [s for s, _ in found[series]] == list(range(1, steps + 1)), series
    stored = [r["loss"] for r in store.db.query(
        "SELECT loss FROM metrics WHERE run_id = ? ORDER BY step", [run_id])]
    assert [v for _, v in found["loss"]] == pytest.approx(stored, rel=1e-5)
    assert {s for s, _ in found["recall/efficacy"]} >= {2, 4}
    assert "final/efficacy" in found and "final/generalization" in found
    # The settings are there as hyper-parameters (TensorBoard's hparams plugin data).
    hparams = list((ws.run_dir(run_id) / trackers.TRACKER_DIR).rglob("events.out.tfevents.*"))
    assert any(b"training/learning_rate" in f.read_bytes() for f in hparams)


def test_a_failed_run_still_closes_its_trackers(bench, monkeypatch) -> None:
    """A run that fails after its trackers started ends them (a wandb or mlflow run is not
    left open as if still training), and the run says it failed."""
    ws, store, config = bench
    closed: list[object] = []
    monkeypatch.setattr(trackers, "finish", lambda accelerator: closed.append(accelerator))

    def broken(*args, **kwargs):
        raise RuntimeError("disk went away while saving")

    monkeypatch.setattr(run_module, "save_outputs", broken)
    run_id = run_module.create_run(store, ws, config(**{"training.max_steps": 2,
                                                        "training.report_to": ["tensorboard"]}))
    with pytest.raises(RuntimeError, match="disk went away"):  # a bug-like error propagates
        run_module.execute_run(store, ws, run_id)
    assert jobs.get_run(store, run_id)["status"] == "failed"
    assert len(closed) == 1


def test_a_missing_tracker_package_is_one_line_naming_the_install(bench, monkeypatch) -> None:
    ws, store, config = bench
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("wandb", "mlflow") else real(name, *a))
    with pytest.raises(ConfigError) as err:
        trackers.check_installed(["tensorboard", "wandb", "mlflow"])
    assert str(err.value) == ("training.report_to needs wandb, mlflow, which are not "
                              "installed: pip install wandb mlflow")
    run_id = run_module.create_run(store, ws, config(**{"training.report_to": ["wandb"]}))
    with pytest.raises(ConfigError):
        run_module.execute_run(store, ws, run_id)
    run = jobs.get_run(store, run_id)
    assert run["status"] == "failed" and "pip install wandb" in run["error"]


def test_hyperparameters_are_flat_scalars() -> None:
    flat = trackers.hyperparameters({"name": "x", "method": {"target_modules": ["q", "v"],
                                                             "lora_r": 8},
                                     "model": {"revision": None}})
    assert flat == {"name": "x", "method/target_modules": "['q', 'v']", "method/lora_r": 8,
                    "model/revision": ""}
    assert trackers.numbers({"step": 3, "loss": 1.5, "mfu": None, "lr": float("nan"),
                             "ok": True}) == {"loss": 1.5}
