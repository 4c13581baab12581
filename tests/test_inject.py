"""One command for the whole job: `workbench inject` on a tiny model (the real model runs it
in tests/test_real_model.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from workbench.core.errors import ModelLoadError, WorkbenchError
from workbench.core.inject import prepare_if_needed, prepared_config
from workbench.core.knowledge import locality, probes, sets
from workbench.core.knowledge.types import FactDraft
from workbench.core.store import Store
from workbench.core.train import replay

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
    # Under the headline, what the verdict found and what to try, printed and in the card.
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert said["verdict_details"] == card["verdict_details"]
    assert "— good" in card["verdict"] or card["verdict_details"]
    for line in card["verdict_details"]:
        assert f"  {line}" in done.stdout
    efficacy = [a for a in card["answers"] if a["metric"] == "efficacy"]
    assert len(efficacy) == 4 and {a["subject"] for a in efficacy} == {"Veltria", "Kandora"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-")]
    store = Store(Path(ws) / "workbench.db")
    run = store.db.execute("SELECT config_yaml FROM runs").fetchone()[0]
    assert "replay_ratio: 0.5" in run and "early_stop_patience: 3" in run  # the recipe
    # Locality over the answers the base was sure of: those of the final round's locality
    # answers whose probe's screened margin is at least SURE.
    sure = [a for a in card["answers"] if a["metric"] == "locality" and a["question"] in {
        q for q, m in store.db.execute("SELECT question, base_margin FROM probes").fetchall()
        if m is not None and m >= card["locality_sure"]["margin_at_least"]}]
    assert card["locality_sure"]["asked"] == len(sure)
    assert card["locality_sure"]["kept"] == sum(a["correct"] for a in sure)

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


def test_a_full_disk_is_refused_before_the_set_is_made(tmp_path: Path, tiny_llama: Path,
                                                       monkeypatch) -> None:
    from workbench.core import disk
    from workbench.core.inject import inject
    from workbench.core.workspace import resolve_workspace

    ws = resolve_workspace(tmp_path / "ws")
    store = Store(ws.db_path)
    facts = tmp_path / "facts.csv"
    facts.write_text("question,answer\nWho wrote Zed?,Ann Lee\n", encoding="utf-8")
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: type("U", (), {"free": 2**20})())
    with pytest.raises(WorkbenchError, match="not enough disk for the injected weights: it needs"):
        inject(store, ws, facts, str(tiny_llama), out=tmp_path / "o", device="cpu")
    assert sets.list_sets(store) == [] and not (tmp_path / "o").exists()


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


def test_stages_share_one_bar() -> None:
    from workbench.core import progress

    seen: list[tuple[float, str]] = []
    stage = progress.stages(lambda f, m: seen.append((round(f, 3), m)), [0.5, 0.0, 0.5])
    stage(0)(0.5, "merging")
    stage(0)(1.0, "merged")
    stage(1)(0.5, "silent: a stage of weight 0")
    stage(2)(0.5, "scoring")
    stage(2)(1.0, "scored")
    assert seen == [(0.25, "merging"), (0.5, "merged"), (0.75, "scoring"), (1.0, "scored")]


def _fake_locality(calls: list[int]):
    """build_locality without asking a model: one general question kept."""
    def build(store, sid, loaded, **kwargs):
        calls.append(sid)
        with store.write() as db:
            db["probes"].insert({"set_id": sid, "fact_id": None, "kind": "locality",
                                 "split": "probe", "question": "What is 2 + 2?", "answer": "4",
                                 "aliases": "[]", "origin": "screening", "approved": 1,
                                 "created_at": 0.0})
        return locality.LocalityCounts(asked=1, kept_general=1, kept_neighbours=0)
    return build


def test_preparing_skips_the_steps_a_set_already_has(bench, monkeypatch) -> None:
    ws, store, config = bench  # "demo": phrasings split by hand (1 held out per fact)
    calls: list[int] = []
    monkeypatch.setattr(locality, "build_locality", _fake_locality(calls))
    monkeypatch.setattr(replay, "replay_examples", lambda *args, **kwargs: [])
    sid = sets.set_id(store, "demo")
    split = probes.split_counts(store, sid)
    done = prepare_if_needed(store, sid, lambda: "the model", stage=lambda name: lambda f, m: None)
    assert probes.split_counts(store, sid) == {**split, "locality": 1}  # the split is kept
    assert done == {"asked_for_locality": 1, "kept_general": 1, "kept_neighbours": 0,
                    "left_out_inconsistent": 0}
    assert calls == [sid]

    def no_model():
        raise AssertionError("the model was loaded with nothing left to prepare")

    assert prepare_if_needed(store, sid, no_model, stage=lambda name: lambda f, m: None) == {}


def test_a_fresh_set_is_prepared_and_gets_the_recommended_run(bench, monkeypatch,
                                                              tiny_llama: Path) -> None:
    ws, store, config = bench
    monkeypatch.setattr(locality, "build_locality", _fake_locality([]))
    warmed: list[int] = []
    monkeypatch.setattr(replay, "replay_examples", lambda store, sid, loaded, n, **kw: warmed.append(n))
    sid = sets.create_set(store, "fresh")
    sets.add_facts(store, sid, [FactDraft("What is the capital of Veltria?", "Orbisk")])
    stages: list[str] = []

    def stage(name: str):
        stages.append(name)
        return lambda f, m: None

    cfg = prepared_config(store, "fresh", str(tiny_llama), load=lambda: None, device="cpu",
                          stage=stage)
    counts = probes.split_counts(store, sid)
    assert counts["probe"] >= 1 and counts["train"] > counts["probe"] and counts["locality"] == 1
    assert stages == ["phrasings", "locality", "replay pool"]
    # The replay pool asked ahead, one example per trained one.
    assert warmed == [len(probes.training_phrasings(store, sid))]
    assert cfg.data.knowledge_set == "fresh" and cfg.name == "inject fresh"
    assert cfg.data.replay_ratio == 0.5 and cfg.model.name_or_path == str(tiny_llama)


def test_an_empty_set_or_a_missing_model_is_refused_before_the_set_is_touched(bench) -> None:
    ws, store, config = bench
    sets.create_set(store, "empty")
    with pytest.raises(WorkbenchError, match="has no facts yet"):
        prepared_config(store, "empty", "workbench-demo", load=lambda: None)
    sid = sets.create_set(store, "one")
    sets.add_facts(store, sid, [FactDraft("Who founded Sylvania?", "Queen Ilsa")])
    before = probes.split_counts(store, sid)
    with pytest.raises(ModelLoadError, match="no model folder"):
        prepared_config(store, "one", "./no/such/model", load=lambda: None)
    assert probes.split_counts(store, sid) == before
    with pytest.raises(WorkbenchError, match="no knowledge set"):
        prepared_config(store, "nope", "workbench-demo", load=lambda: None)
