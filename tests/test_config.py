from __future__ import annotations

import math

import pytest
import yaml

from workbench.core.config import (
    METHODS,
    MethodConfig,
    RunConfig,
    TrainingConfig,
    iter_settings,
    setting_label,
    parse_setting_text,
)
from workbench.core.errors import ConfigError


def test_default_config_is_valid_and_round_trips_through_yaml() -> None:
    cfg = RunConfig()
    again = RunConfig.from_yaml(cfg.to_yaml())
    assert again == cfg


def test_non_default_values_survive_save_and_load(tmp_path) -> None:
    cfg = RunConfig(
        name="capitals-lora",
        method=MethodConfig(name="dora", lora_r=4, target_modules=["q_proj", "v_proj"],
                            located_layers=[3]),
        training=TrainingConfig(learning_rate=1e-4, epochs=3, lr_scheduler="linear"),
    ).with_values({"model.revision": "abc123", "data.replay_ratio": 0.25})
    path = cfg.save(tmp_path / "runs" / "run.yaml")
    loaded = RunConfig.load(path)
    assert loaded == cfg
    assert loaded.model.revision == "abc123"
    assert loaded.method.target_modules == ["q_proj", "v_proj"]


def test_a_run_saved_with_the_retired_phrasing_settings_still_loads() -> None:
    """Runs stored before `data.paraphrases_per_fact` / `data.holdout_per_fact` left the run
    config (no run ever read them) load without them; set as an override they are refused
    with where the choice lives now."""
    saved = RunConfig().to_dict()
    saved["data"].update(paraphrases_per_fact=5, holdout_per_fact=2)
    assert RunConfig.from_yaml(yaml.safe_dump(saved), source="run 3") == RunConfig()
    assert not {"data.paraphrases_per_fact", "data.holdout_per_fact"} & {
        info.path for info in iter_settings()}
    with pytest.raises(ConfigError, match="no longer a run setting.*Paraphrase and Split"):
        RunConfig().with_values({"data.holdout_per_fact": 3})


def test_every_setting_has_help_text_and_a_default() -> None:
    infos = list(iter_settings())
    assert len(infos) > 25
    for info in infos:
        assert len(info.help) > 10, info.path
        default = getattr(getattr(RunConfig(), info.section), info.name)
        assert default == info.default


def test_every_setting_has_a_human_label() -> None:
    """Labels written for people, not field names in words ("Lora r", "Lr scheduler")."""
    labels = {info.path: setting_label(info.path) for info in iter_settings()}
    for path, label in labels.items():
        info = next(i for i in iter_settings() if i.path == path)
        assert info.label, f"{path} has no label"
        assert label == info.label and label[0].isupper()
    assert len(set(labels.values())) == len(labels)  # no two widgets read the same
    assert labels["method.lora_r"] == "LoRA rank"
    assert labels["training.lr_scheduler"] == "Learning-rate schedule"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"method.lora_r": 0}, "method.lora_r must be a positive integer, got 0"),
        ({"method.lora_r": 2.5}, "method.lora_r must be a positive integer, got 2.5"),
        ({"method.lora_r": True}, "method.lora_r must be a positive integer, got True"),
        ({"training.learning_rate": -1}, "training.learning_rate must be a positive number"),
        ({"training.learning_rate": math.nan}, "training.learning_rate must be a positive number"),
        ({"training.warmup_ratio": 1.0}, "training.warmup_ratio must be a number from 0 up to"),
        ({"method.name": "magic"}, "method.name must be one of lora, qlora"),
        ({"training.max_steps": -2}, "training.max_steps must be a non-negative integer"),
        ({"model.trust_remote_code": "yes"}, "model.trust_remote_code must be true or false"),
        ({"method.target_modules": "q_proj"}, "method.target_modules must be a list of str"),
        ({"method.target_modules": []}, "method.target_modules must be a non-empty list"),
        ({"model.name_or_path": "  "}, "model.name_or_path must be a hub id or a folder path"),
    ],
)
def test_invalid_values_are_rejected_with_a_message_naming_the_field(values, message) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig().with_values(values)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_methods_that_cannot_train_a_quantized_base_are_refused() -> None:
    with pytest.raises(ConfigError, match="method full updates the base weights"):
        RunConfig().with_values({"method.name": "full", "model.quantization": "4bit"})
    with pytest.raises(ConfigError, match="qlora trains on a 4-bit base"):
        RunConfig().with_values({"method.name": "qlora", "model.quantization": "8bit"})
    assert RunConfig().with_values({"method.name": "qlora"}).effective_quantization == "4bit"
    assert set(METHODS) >= {"lora", "qlora", "dora", "rslora", "full", "located"}


def test_malformed_yaml_reports_the_line() -> None:
    with pytest.raises(ConfigError, match=r"run.yaml: malformed YAML at line 3"):
        RunConfig.from_yaml("method:\n  lora_r: [1,\n", source="run.yaml")


@pytest.mark.parametrize(
    "text, message",
    [
        ("methd:\n  lora_r: 8\n", "unknown key 'methd' in top level (did you mean 'method'?)"),
        ("method:\n  lora_rank: 8\n", "unknown key 'lora_rank' in section 'method' (did you mean"),
        ("- 1\n- 2\n", "expected a mapping of sections, got a list"),
        ("method: 3\n", "section 'method' must be a mapping, got a number"),
        ("training:\n  epochs: '3'\n", "training.epochs must be a positive integer, got '3'"),
    ],
)
def test_structurally_wrong_yaml_is_explained(text, message) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml(text, source="x.yaml")
    assert message in str(info.value)


def test_empty_yaml_means_defaults() -> None:
    assert RunConfig.from_yaml("") == RunConfig()


def test_missing_and_non_text_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        RunConfig.load(tmp_path / "nope.yaml")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        RunConfig.load(binary)


def test_command_line_text_is_parsed_to_the_field_type() -> None:
    infos = {i.path: i for i in iter_settings()}
    assert parse_setting_text(infos["method.lora_r"], "8") == 8
    assert parse_setting_text(infos["training.learning_rate"], "3e-4") == pytest.approx(3e-4)
    assert parse_setting_text(infos["model.trust_remote_code"], "yes") is True
    assert parse_setting_text(infos["model.revision"], "none") is None
    assert parse_setting_text(infos["method.target_modules"], "q_proj, v_proj") == ["q_proj", "v_proj"]
    assert parse_setting_text(infos["method.located_layers"], "[2,5]") == [2, 5]
    # A wrong type is passed through, so validation can name the field and the value.
    assert parse_setting_text(infos["method.lora_r"], "many") == "many"


def test_replay_matched_in_distribution_needs_an_adapter() -> None:
    from workbench.core.errors import ConfigError

    ok = RunConfig().with_values({"data.replay_ratio": 0.5, "data.replay_match": "distribution"})
    assert ok.data.replay_match == "distribution"
    with pytest.raises(ConfigError, match="replay_match distribution"):
        ok.with_values({"method.name": "located"})
    # Without replay the setting has nothing to act on.
    assert RunConfig().with_values({"method.name": "full",
                                    "data.replay_match": "distribution"}).method.name == "full"
