"""A method is one module: a toy method declared in this file alone shows up in the CLI flags,
the run YAML, the Method tab's choices and the memory estimate; the config's method names are
the registry's; and the methods sit below config.py and the training loop in the imports."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from import_graph import imports
from workbench.core.config import METHODS, MethodConfig, ModelConfig, RunConfig, iter_settings
from workbench.core.device import DeviceInfo
from workbench.core.errors import ConfigError
from workbench.core.methods.base import MemoryTerms, Method, MethodSettings, RunView
from workbench.core.methods.registry import REGISTRY, register, unregister
from workbench.core.settings import setting

GiB = 2**30
CPU = DeviceInfo("cpu", "test CPU", 64 * GiB, cpu_cores=2)


# --- the toy method: everything a method declares, in one place ---------------------------------
@dataclass
class ToySettings(MethodSettings):
    toy_share: float = setting(0.5, "Toy: the share of the weights it trains.", above=0,
                               maximum=1)

    def validate(self, run: RunView) -> None:
        if run.model.quantization != "none":
            raise ConfigError("method toy trains the base weights: set model.quantization to none")


def toy_apply(model: Any, settings: ToySettings) -> Any:
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def toy_memory(shape: Any, settings: ToySettings, *, dtype_bytes: int,
               compute_bytes: int) -> MemoryTerms:
    return MemoryTerms(trained_params=int(shape.total_params * settings.toy_share),
                       param_bytes=dtype_bytes, adds_weights=False)


TOY = Method("toy", ToySettings, toy_apply, toy_memory, adapter=False,
             advice="A toy: trains a share of the weights.")


@pytest.fixture
def toy() -> Iterator[Method]:
    register(TOY)
    try:
        yield TOY
    finally:
        unregister(TOY.name)


def _toy_run(**values: Any) -> RunConfig:
    return RunConfig().with_values({"method.name": "toy", **values})


# --- where it shows up ------------------------------------------------------------------------
def test_a_toy_method_gets_cli_flags(toy: Method) -> None:
    from workbench.cli.settings import add_setting_flags, setting_values

    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    args = parser.parse_args(["--method.name", "toy", "--method.toy_share", "0.25"])
    cfg = RunConfig().with_values(setting_values(args))
    assert isinstance(cfg.method.settings, ToySettings)
    assert cfg.method.settings.toy_share == 0.25 == cfg.method.toy_share
    with pytest.raises(SystemExit):  # argparse refuses a name that is not registered
        parser.parse_args(["--method.name", "toy2"])


def test_a_toy_method_round_trips_through_yaml(toy: Method) -> None:
    cfg = _toy_run(**{"method.toy_share": 0.25, "method.lora_r": 4})
    text = cfg.to_yaml()
    assert "name: toy" in text and "toy_share: 0.25" in text and "lora_r: 4" in text
    assert RunConfig.from_yaml(text) == cfg
    assert "method.toy_share" in {info.path for info in iter_settings()}
    assert "toy_share" in {f.name for f in dataclasses.fields(MethodConfig)}
    with pytest.raises(ConfigError, match="method.toy_share"):
        _toy_run(**{"method.toy_share": 2})
    with pytest.raises(ConfigError, match="method toy trains the base weights"):
        _toy_run(**{"model.quantization": "4bit"})  # its own rule, checked by RunConfig


def test_a_toy_method_is_a_choice_in_the_method_tab(toy: Method) -> None:
    from workbench.ui import method_actions, settings_form

    assert ("toy", "toy") in method_actions.method_choices()
    assert "A toy" in method_actions.method_advice("toy")
    # its setting shows only while it is chosen
    assert settings_form.method_specific()["method.toy_share"] == {"toy"}


def test_a_toy_method_has_its_memory_terms_in_the_estimate(toy: Method) -> None:
    from workbench.core.estimate import estimate_memory, model_shape

    shape = model_shape(ModelConfig())  # the embedded demo model, offline
    half = estimate_memory(_toy_run(), device=CPU, seq_len=32, shape=shape)
    quarter = estimate_memory(_toy_run(**{"method.toy_share": 0.25}), device=CPU, seq_len=32,
                              shape=shape)
    assert half.method == "toy"
    assert half.trainable_params == int(shape.total_params * 0.5)
    assert half.trainable == half.trainable_params * 4  # float32 gradients, no adapter weights
    assert half.optimizer == 2 * half.trainable  # two AdamW moments per trained weight
    assert quarter.trainable_params == int(shape.total_params * 0.25)


def test_an_unregistered_method_is_gone_everywhere() -> None:
    register(TOY)
    unregister(TOY.name)
    assert "toy" not in {name for _, name in _method_choices()}
    assert "method.toy_share" not in {info.path for info in iter_settings()}
    with pytest.raises(ConfigError, match="method.name must be one of"):
        _toy_run()


# --- one list of names ----------------------------------------------------------------------
def test_the_config_method_names_are_the_registry_names() -> None:
    (name_info,) = [info for info in iter_settings() if info.path == "method.name"]
    assert name_info.choices == tuple(REGISTRY) == METHODS
    assert all(method.name == name for name, method in REGISTRY.items())
    for name in REGISTRY:
        assert MethodConfig(name=name).settings.__class__ is REGISTRY[name].settings


# --- import direction -------------------------------------------------------------------------
def test_methods_never_reach_config_or_the_training_loop() -> None:
    """config.py builds its method section from the registry, and the loop is handed a
    method's loss: an import back from any method module would make a circle."""
    graph = imports(Path(__file__).resolve().parents[1])
    for start in (m for m in graph if m.startswith("workbench.core.methods")):
        seen, todo = set(), [start]
        while todo:
            for dep in graph[todo.pop()] - seen:
                seen.add(dep)
                todo.append(dep)
        assert "workbench.core.config" not in seen, start
        assert "workbench.core.train.loop" not in seen, start


def _method_choices() -> list[tuple[str, str]]:
    from workbench.ui import method_actions

    return method_actions.method_choices()
