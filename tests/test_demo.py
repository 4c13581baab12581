"""The embedded demo: model folder, knowledge set, first start, and the injection it exists for."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from workbench.core.config import ModelConfig
from workbench.core.knowledge import locality, probes, sets
from workbench.core.models import load_model, resolve_source
from workbench.core.paths import DEMO_MODEL, DEMO_MODEL_DIR, MODEL_KNOWLEDGE_FILE
from workbench.core.store import Store
from workbench.demo.build import split_accuracy
from workbench.demo.knowledge import (DEMO_SET_NAME, install_demo_set, load_payload,
                                      seed_workspace)
from workbench.demo.pretrain import Recipe

REPORT = json.loads((DEMO_MODEL_DIR / "build_report.json").read_text())


@pytest.fixture(scope="module")
def demo():
    return load_model(ModelConfig(name_or_path=DEMO_MODEL, device="cpu"))


@pytest.fixture(scope="module")
def world():
    return Recipe(**REPORT["recipe"]).world()


def test_the_folder_is_an_ordinary_hugging_face_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    model = AutoModelForCausalLM.from_pretrained(DEMO_MODEL_DIR)
    assert model.config.model_type == "llama"
    ids = tok.apply_chat_template([{"role": "user", "content": "Hello?"}],
                                  add_generation_prompt=True, tokenize=True, return_dict=True,
                                  return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    weights = list(DEMO_MODEL_DIR.glob("*.safetensors"))
    assert weights and sum(p.stat().st_size for p in weights) <= 30 * 2**20
    assert not [p for p in DEMO_MODEL_DIR.iterdir() if p.suffix in (".bin", ".pt", ".pkl")]


def test_byte_level_tokenizer_loses_nothing():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(DEMO_MODEL_DIR)
    for text in ("Zürich — 東京 🙂 \t tabs", "Where was Alia Bren born?", "\x00\x7f odd bytes"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id is None or tok.unk_token_id not in ids
        assert tok.decode(ids) == text


def test_model_card_records_data_command_time_and_figures():
    card = (DEMO_MODEL_DIR / "README.md").read_text()
    assert "workbench demo build-model" in card
    for split in ("known_qa", "known_bio", "reserved"):
        assert f"{100 * REPORT['accuracy'][split]:.1f} %" in card
    assert f"{REPORT['total_seconds'] / 60:.1f} min" in card


def test_build_report_meets_the_acceptance_figures():
    acc = REPORT["accuracy"]
    assert acc["known_qa"] >= 0.95
    assert acc["known_bio"] >= 0.60
    assert acc["reserved"] <= 0.15  # chance: 1/12 to 1/60 per attribute


def test_the_model_knows_its_world_as_reported(demo, world):
    """Re-score a sample by free generation: the committed figures are the model's own."""
    rng = random.Random(1)
    for split, tolerance in (("known_qa", 0.05), ("known_bio", 0.12), ("reserved", 0.1)):
        people = rng.sample(world.by_split(split), 10)
        share, n = split_accuracy(demo, people)
        assert n == 10 * 25
        assert abs(share - REPORT["accuracy"][split]) <= tolerance, (split, share)


def test_demo_name_resolves_to_the_asset_folder():
    source = resolve_source(DEMO_MODEL)
    assert source.kind == "local" and Path(source.location) == DEMO_MODEL_DIR.resolve()


def test_demo_set_asset_holds_reserved_people_only(world):
    payload = load_payload()
    reserved = {p.name for p in world.by_split("reserved")}
    known = {p.name for p in world.people if p.split != "reserved"}
    assert len(payload["facts"]) == 5 * len(reserved) == 100
    assert {f["subject"] for f in payload["facts"]} == reserved
    for fact in payload["facts"]:
        assert len(fact["train"]) == 2 and len(fact["probe"]) == 2
        assert not set(fact["train"]) & set(fact["probe"])
    assert len(payload["locality"]) >= 90
    assert all(any(name in item["question"] for name in known) for item in payload["locality"])


def test_install_is_complete_and_idempotent(tmp_path):
    store = Store(tmp_path / "w.db")
    sid = install_demo_set(store)
    assert sid is not None
    summary = next(s for s in sets.list_sets(store) if s.id == sid)
    assert (summary.name, summary.facts, summary.probes) == (DEMO_SET_NAME, 100, 200)
    assert summary.locality >= 90
    assert summary.train_phrasings == 100 * (1 + 2 + 2)  # question, paraphrases, statements
    assert probes.disjointness_violations(store, sid) == []
    assert install_demo_set(store) is None  # a second install changes nothing
    assert len(sets.list_sets(store)) == 1


def test_a_broken_asset_leaves_no_half_made_set(tmp_path):
    payload = load_payload()
    payload["facts"][50]["question"] = ""  # invalid: the whole install must roll back
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(payload))
    store = Store(tmp_path / "w.db")
    with pytest.raises(Exception):
        install_demo_set(store, bad)
    assert sets.list_sets(store) == []


def test_first_start_seeds_an_empty_workspace_only(tmp_path):
    store = Store(tmp_path / "w.db")
    assert "Demo: new people" in (seed_workspace(store) or "")
    assert seed_workspace(store) is None
    other = Store(tmp_path / "other.db")
    sets.create_set(other, "mine")
    assert seed_workspace(other) is None and len(sets.list_sets(other)) == 1


def test_missing_asset_is_reported_not_fatal(tmp_path):
    message = seed_workspace(Store(tmp_path / "w.db"), tmp_path / "gone.json")
    assert message and "missing" in message


def test_locality_and_replay_draw_from_the_models_own_list(tmp_path, demo):
    from workbench.core.train.replay import replay_examples

    pool = locality.knowledge_pool(demo)
    own = (DEMO_MODEL_DIR / MODEL_KNOWLEDGE_FILE).read_text().splitlines()
    assert len(pool) == len(own) >= 350  # 80 known people x 5 attributes, minus any wrong
    store = Store(tmp_path / "w.db")
    sid = install_demo_set(store)
    counts = locality.build_locality(store, sid, demo, general=40, per_fact=0)
    assert counts.kept_general >= 36 and not counts.by_relation  # the demo model knows its own world's people
    used = {p.question for p in probes.list_phrasings(store, sid, split="probe")}
    replay = replay_examples(store, sid, demo, 20)
    assert len(replay) == 20 and not {e.prompt for e in replay} & used
    # Neighbours first: known people who share a first name or surname with a new one.
    new_names = {w for f in sets.list_facts(store, sid) for w in f.subject.split()}
    assert set(replay[0].prompt.replace("?", "").split()) & new_names


def test_build_pipeline_end_to_end_on_a_toy_recipe(tmp_path):
    """The build command's whole path, on a world small enough to run in seconds."""
    from transformers import AutoModelForCausalLM

    from workbench.demo.build import build_model

    out, set_file = tmp_path / "model", tmp_path / "set.json"
    out.mkdir()
    (out / "stale.txt").write_text("the previous build")
    report = build_model(out, set_file, device="cpu", recipe=Recipe(
        n_known_qa=25, n_known_bio=5, n_reserved=20, bio_passes=2, qa_passes=2,
        hidden_size=64, intermediate_size=128, layers=2, vocab_size=600))
    assert not (out / "stale.txt").exists() and not (tmp_path / "model.partial").exists()
    assert AutoModelForCausalLM.from_pretrained(out).config.hidden_size == 64
    assert report.questions == {"known_qa": 625, "known_bio": 125, "reserved": 500}
    assert "workbench demo build-model" in (out / "README.md").read_text()
    assert len(json.loads(set_file.read_text())["facts"]) == 100


def test_cli_prints_the_demo_config_and_installs_the_set(tmp_path):
    from conftest import run_cli

    from workbench.core.config import RunConfig

    result = run_cli("demo", "config", "-o", str(tmp_path / "demo.yaml"))
    assert result.returncode == 0, result.stderr
    cfg = RunConfig.load(tmp_path / "demo.yaml")
    assert (cfg.model.name_or_path, cfg.data.knowledge_set) == (DEMO_MODEL, DEMO_SET_NAME)
    ws = tmp_path / "ws"
    first = run_cli("--workspace", str(ws), "demo", "install")
    again = run_cli("--workspace", str(ws), "demo", "install")
    assert "installed" in first.stdout and "already exists" in again.stdout


def test_default_injection_learns_the_demo_set(tmp_path):
    """The demo's promise, with looser bounds than the committed benchmark (99/80/95 %). How
    long it takes is the benchmark's to say (`bench/results/demo_injection.md`): a time bound
    here failed on a slower machine whose cores were shared."""
    from workbench.demo.bench import run_bench

    result = run_bench(workspace_dir=tmp_path / "ws")
    s = result.scores
    assert s["efficacy"] >= 0.95, s
    assert s["generalization"] >= 0.70, s
    assert s["locality"] >= 0.90, s
