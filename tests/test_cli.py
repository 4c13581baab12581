"""The CLI as a user runs it: a subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, run_cli
from workbench.core.config import RunConfig


def assert_clean_error(result, *fragments: str) -> None:
    """One line on stderr starting with 'error:', a non-zero exit code and no traceback."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def test_config_prints_the_default_run_yaml() -> None:
    result = run_cli("config")
    assert result.returncode == 0, result.stderr
    assert RunConfig.from_dict(yaml.safe_load(result.stdout)) == RunConfig()


def test_config_flags_are_generated_from_the_dataclasses(tmp_path) -> None:
    out = tmp_path / "run.yaml"
    result = run_cli("config", "--method.lora_r", "4", "--set", "training.epochs=3",
                     "--method.target_modules", "q_proj,v_proj", "-o", str(out), "-q")
    assert result.returncode == 0, result.stderr
    cfg = RunConfig.load(out)
    assert (cfg.method.lora_r, cfg.training.epochs) == (4, 3)
    assert cfg.method.target_modules == ["q_proj", "v_proj"]
    assert "LoRA rank" in run_cli("config", "--help").stdout


def test_malformed_yaml(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  lora_r: [8,\n")
    assert_clean_error(run_cli("config", str(bad)), "malformed YAML at line")


def test_invalid_field_value(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  lora_r: 0\n")
    assert_clean_error(run_cli("config", str(bad)), "method.lora_r must be a positive integer, got 0")
    assert_clean_error(run_cli("config", "--set", "training.learning_rate=fast"),
                       "training.learning_rate must be a positive number")


def test_unknown_model_id_while_offline(tmp_path) -> None:
    result = run_cli("models", "check", "nobody/no-such-model-xyz",
                     env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert_clean_error(result, "not in the local Hugging Face cache", "offline")


def test_folder_with_no_config_json(tmp_path) -> None:
    (tmp_path / "model").mkdir()
    assert_clean_error(run_cli("models", "check", str(tmp_path / "model")), "has no config.json")


def test_models_check_loads_4bit_on_cpu_and_reports(tiny_llama) -> None:
    result = run_cli("models", "check", str(tiny_llama), "--load-in-4bit")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for label in ("parameters", "dtype", "device", "weights in memory", "memory used by load"):
        assert label in out
    assert "4bit" in out and "cpu" in out
    report = json.loads(run_cli("models", "check", str(tiny_llama), "--load-in-4bit",
                                "--json").stdout)
    assert report["parameters"] > 100_000 and report["weight_bytes"] > 0


@pytest.mark.parametrize("args, fragment", [
    (["--host", "0.0.0.0"], "needs a password"),
    (["--share"], "share link needs a password"),
])
def test_serve_refuses_to_expose_the_app_without_a_password(args, fragment, tmp_path) -> None:
    result = subprocess.run([sys.executable, "launch.py", *args, "--workspace", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert_clean_error(result, fragment)


def test_unexpected_errors_are_one_line_without_debug(monkeypatch, capsys) -> None:
    from workbench import cli
    from workbench.cli import config

    def broken(_args):
        raise KeyError("bug")

    monkeypatch.setattr(config, "cmd_config", broken)  # the parser binds it when built
    assert cli.main(["config"]) == 1
    err = capsys.readouterr().err
    assert "unexpected KeyError" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(KeyError):
        cli.main(["--debug", "config"])
