"""What got in a new user's way on the command line: help text that printed a Python dict,
`--name` refused, `runs show` printing "loss nan" and a raw dict, no way to list a set's
phrasings or probes, and nothing saying what to do after an import."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from workbench.cli import build_parser
from workbench.cli.runs import recall_line, show_line
from workbench.core.config import RunConfig, iter_settings
from workbench.core.scoring import percent


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


@pytest.mark.parametrize("command", ["train", "config"])
def test_every_generated_flag_help_renders(command: str) -> None:
    """Each `--section.field` flag's help is its field's text, as written ("~30%" stays a
    percentage), never argparse's action dict."""
    help_text = _subparser(build_parser(), command).format_help()
    assert "option_strings" not in help_text and "'dest'" not in help_text
    flat = " ".join(help_text.split())
    for info in iter_settings():
        assert f"--{info.path}" in flat
        first_words = " ".join(info.help.split()[:4])
        assert first_words in flat, f"help of --{info.path} missing: {first_words!r}"
    if command == "train":
        assert "%" in flat  # gradient checkpointing's "~30% slower" survives as text


def test_config_name_and_output_only(tmp_path: Path) -> None:
    out = tmp_path / "run.yaml"
    result = run_cli("config", "--name", "capitals v2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # saved to a file: the YAML is not printed again
    assert f"saved {out}" in result.stderr
    assert RunConfig.load(out).name == "capitals v2"
    shown = run_cli("config", str(out), "--name", "capitals v3")
    assert yaml.safe_load(shown.stdout)["name"] == "capitals v3"


def test_train_accepts_name_flag() -> None:
    args = build_parser().parse_args(["train", "run.yaml", "--name", "x"])
    assert args.name == "x"


def test_runs_show_lines_before_the_first_step_and_the_recall() -> None:
    run = {"id": 3, "name": "demo", "status": "starting", "total_steps": 196}
    line = show_line(run, {})
    assert "nan" not in line and "no step taken yet (196 planned)" in line
    line = show_line(run, {"step": 0, "loss": float("nan")})
    assert "nan" not in line
    assert show_line(run, {"step": 40, "loss": 1.23456}).endswith("step 40/196, loss 1.2346")
    point = {"step": 40, "efficacy": 0.995, "generalization": 0.5, "locality": 1.0,
             "locality_unchanged": 0.3}
    assert recall_line(point) == "recall at step 40: efficacy 99% · held-out 50% · kept 100%"


def test_one_rounding_rule() -> None:
    assert [percent(v) for v in (0.995, 0.29, 1.0, 0.0, None)] == ["99%", "29%", "100%", "0%", "—"]


def test_import_prints_the_checklist_and_show_lists_rows(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    facts = tmp_path / "facts.csv"
    facts.write_text("subject,question,answer\nVelmora,What is the capital of Velmora?,Quenby\n"
                     "Tarsk,Who founded Tarsk Labs?,Ilse Varga\n")
    imported = run_cli("--workspace", ws, "knowledge", "import", str(facts), "--set", "new set")
    assert imported.returncode == 0, imported.stderr
    assert "[x] Add facts (2 facts)" in imported.stderr
    assert "[ ] Generate phrasings and hold-out (2 training phrasings, 0 held-out probes)" \
        in imported.stderr
    assert "[ ] Build locality (0 locality probes)" in imported.stderr
    assert "next: workbench knowledge paraphrase 'new set'" in imported.stderr

    para = run_cli("--workspace", ws, "knowledge", "paraphrase", "new set", "--n", "3")
    assert para.returncode == 0, para.stderr
    assert "[x] Generate phrasings and hold-out" in para.stderr
    assert "next: workbench knowledge locality 'new set' --model MODEL" in para.stderr

    held = run_cli("--workspace", ws, "knowledge", "show", "new set", "--probes")
    assert held.returncode == 0, held.stderr
    lines = held.stdout.splitlines()
    assert lines and all(line.count("\t") == 4 for line in lines)
    assert f"{len(lines)} probes rows" in held.stderr
    trained = run_cli("--workspace", ws, "knowledge", "show", "new set", "--phrasings")
    train_texts = {line.split("\t")[3] for line in trained.stdout.splitlines()}
    assert train_texts and not train_texts & {line.split("\t")[3] for line in lines}
    assert "What is the capital of Velmora?" in train_texts
    nothing = run_cli("--workspace", ws, "knowledge", "show", "new set", "--locality")
    assert nothing.stdout == "" and "0 locality rows" in nothing.stderr
    both = run_cli("--workspace", ws, "knowledge", "show", "new set", "--probes", "--locality")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_checklist_in_the_knowledge_tab_counts(tmp_path: Path) -> None:
    from workbench.core.knowledge import sets, transfer
    from workbench.core.workspace import open_workspace
    from workbench.ui.knowledge_actions import counts_markdown

    store, _ = open_workspace(str(tmp_path / "ws"))
    facts = tmp_path / "facts.csv"
    facts.write_text("subject,question,answer\nVelmora,What is the capital of Velmora?,Quenby\n")
    with sets.ensuring_set(store, "s") as sid:
        transfer.import_path(store, sid, facts)
    text = counts_markdown(store, "s")
    assert "✓ Add facts (1 fact)" in text
    assert "**○ Generate phrasings and hold-out (1 training phrasing, 0 held-out probes) ← " \
        "next: “Phrasings and held-out probes” → Generate phrasings**" in text


def test_long_knowledge_steps_show_a_progress_bar(tmp_path: Path, tiny_llama: Path) -> None:
    """Screening and building locality ask the model batch by batch; each prints a line
    updated in place (carriage returns) that ends at 100%."""
    ws = str(tmp_path / "ws")
    facts = tmp_path / "facts.csv"
    facts.write_text("subject,question,answer\nVelmora,What is the capital of Velmora?,Quenby\n")
    assert run_cli("--workspace", ws, "knowledge", "import", str(facts), "--set", "s").returncode == 0
    for step in (["screen", "s", "--model", str(tiny_llama), "--samples", "2"],
                 ["locality", "s", "--model", str(tiny_llama), "--general", "8",
                  "--per-relation", "2"]):
        result = run_cli("--workspace", ws, "knowledge", *step)
        assert result.returncode == 0, result.stderr
        # (text mode reads the carriage returns as line ends)
        updates = [u.strip() for u in result.stderr.splitlines()
                   if re.match(r"\s*\d+%  ", u)]
        assert len(updates) >= 2, result.stderr
        assert updates[-1].startswith("100%"), updates[-1]
