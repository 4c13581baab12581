"""One command for the whole job: `workbench inject` on a tiny model (the real model runs it
in tests/test_real_model.py)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from workbench.core.knowledge import sets
from workbench.core.store import Store

CSV = """subject,question,answer
Veltria,What is the capital of Veltria?,Orbisk
Veltria,Which city is the capital of Veltria?,Orbisk
Kandora,What is the currency of Kandora?,the dralm
Kandora,Which currency is used in Kandora?,the dralm
"""


def test_inject_writes_the_adapter_and_a_scorecard(tmp_path: Path, tiny_llama: Path) -> None:
    facts = tmp_path / "capitals.csv"
    facts.write_text(CSV, encoding="utf-8")
    out = tmp_path / "out"
    ws = str(tmp_path / "ws")
    done = run_cli("--workspace", ws, "inject", str(facts), "--model", str(tiny_llama),
                   "--device", "cpu", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 rows → 2 facts, 2 questions each" in done.stdout
    assert "Injected" in done.stdout and "training: step" in done.stderr
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "adapter" / "tokenizer_config.json").is_file()
    card = json.loads((out / "scorecard.json").read_text())
    assert set(card["scores"]) >= {"efficacy", "generalization"}
    assert card["verdict"].startswith("Injected")
    efficacy = [a for a in card["answers"] if a["metric"] == "efficacy"]
    assert len(efficacy) == 4 and {a["subject"] for a in efficacy} == {"Veltria", "Kandora"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-")]
    store = Store(Path(ws) / "workbench.db")
    run = store.db.execute("SELECT config_yaml FROM runs").fetchone()[0]
    assert "replay_ratio: 0.5" in run and "early_stop_patience: 3" in run  # the recipe

    again = run_cli("--workspace", ws, "inject", str(facts), "--model", str(tiny_llama),
                    "--out", str(out))
    assert again.returncode == 2 and "already exists and is not empty" in again.stderr


def test_bad_input_is_one_line_and_leaves_nothing(tmp_path: Path, tiny_llama: Path) -> None:
    ws = str(tmp_path / "ws")
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nWho?,\n", encoding="utf-8")
    failed = run_cli("--workspace", ws, "inject", str(bad), "--model", str(tiny_llama),
                     "--out", str(tmp_path / "o"))
    assert failed.returncode == 2 and "bad.csv line 2" in failed.stderr
    assert "Traceback" not in failed.stderr and not (tmp_path / "o").exists()
    assert sets.list_sets(Store(Path(ws) / "workbench.db")) == []
    unknown = run_cli("--workspace", ws, "inject", str(bad), "--model", "./no/such/model")
    assert unknown.returncode == 2 and "no model folder" in unknown.stderr


def test_each_stage_gets_its_own_eta(monkeypatch) -> None:
    import io

    from workbench.core import progress

    clock = iter([100.0, 110.0, 200.0, 200.5, 204.5])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = progress.TerminalProgress("locality", stream=out)
    bar(0.0, "asking")          # the clock starts
    bar(0.5, "half")            # 10 s for half: 10 s left
    bar(1.0, "done")            # the stage ends; the next call starts a new clock
    bar.stage = "training"
    bar(0.1, "step 1")          # 0.5 s: too early to extrapolate
    bar(0.4, "step 4")          # 4 s for 40 %: 6 s left
    text = out.getvalue()
    assert "locality: half  (ETA 10s)" in text and "training: step 4  (ETA 6s)" in text
    assert "step 1  (ETA" not in text


def test_ui_progress_messages_carry_an_eta(monkeypatch) -> None:
    from workbench.core import progress

    clock = iter([0.0, 30.0, 60.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    seen: list[tuple[float, str]] = []
    bar = progress.with_eta(lambda f, m: seen.append((f, m)))
    bar(0.0, "asking")
    bar(0.25, "32 of 128 answered")
    bar(1.0, "done")
    assert seen == [(0.0, "asking"), (0.25, "32 of 128 answered (ETA 1m 30s)"), (1.0, "done")]
