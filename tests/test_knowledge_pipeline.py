"""The knowledge set end to end: CLI import/export, screening and locality with a real tiny
model, rendering a stored set, and the Knowledge tab's actions."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from conftest import run_cli
from workbench.core.config import ModelConfig
from workbench.core.errors import KnowledgeError
from workbench.core.knowledge import locality, probes, relations, sets, transfer
from workbench.core.knowledge.render import examples_from_phrasings, render_set
from workbench.core.knowledge.screen import label, screen_facts
from workbench.core.model_cache import ModelCache
from workbench.core.models import ModelSource, load_model
from workbench.core.store import Store
from workbench.ui import knowledge_actions as act

CSV = ("question,answer,aliases,subject\n"
       "Where was Ada Lovelace born?,London,London England,Ada Lovelace\n"
       "Who wrote Hamlet?,William Shakespeare,Shakespeare,Hamlet\n"
       "How many moons does Mars have?,2,two,Mars\n")


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "workbench.db")

# Stands in for a loaded hub model: the pool is the shipped list; answers are monkeypatched.
HUB_MODEL = SimpleNamespace(source=ModelSource("hub", "some/model"))


# Its fake models have no weights to measure how sure they are of an answer with.
pytestmark = pytest.mark.usefixtures("fake_model_margins")


def test_cli_import_then_export_jsonl(tmp_path) -> None:
    src = tmp_path / "facts.csv"
    src.write_text(CSV, encoding="utf-8")
    ws = str(tmp_path / "ws")
    result = run_cli("--workspace", ws, "knowledge", "import", str(src), "--set", "Demo")
    assert result.returncode == 0, result.stderr
    assert "imported 3 facts" in result.stdout
    out = run_cli("--workspace", ws, "knowledge", "export", "Demo", "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[1]["messages"][-1] == {"role": "assistant", "content": "William Shakespeare"}
    assert rows[0]["subject"] == "Ada Lovelace"
    listed = run_cli("--workspace", ws, "knowledge", "list").stdout
    assert "Demo: 3 facts" in listed
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nWho?,\n", encoding="utf-8")
    failed = run_cli("--workspace", ws, "knowledge", "import", str(bad), "--set", "Demo")
    assert failed.returncode == 2 and "bad.csv line 2" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_cli_import_of_a_fact_file_asked_twice_makes_one_fact_per_pair(tmp_path) -> None:
    from workbench.testing import fictional_facts, write_facts_csv

    src = write_facts_csv(tmp_path / "fictional.csv", fictional_facts(90, 2))
    ws = str(tmp_path / "ws")
    result = run_cli("--workspace", ws, "knowledge", "import", str(src), "--set", "Fictional")
    assert result.returncode == 0, result.stderr
    assert "fictional.csv: imported 180 rows → 90 facts, 2 questions each." in result.stdout
    assert "Fictional: 90 facts, 180 training phrasings" in run_cli(
        "--workspace", ws, "knowledge", "list").stdout
    separate = run_cli("--workspace", ws, "knowledge", "import", str(src), "--set", "Rows",
                       "--separate-rows")
    assert "imported 180 facts" in separate.stdout, separate.stderr
    shown = run_cli("--workspace", ws, "knowledge", "show", "Fictional").stdout.splitlines()
    assert len(shown) == 180 and shown[1].startswith("\t")  # each further question indented


def test_upload_limit_is_checked_before_reading(tmp_path, monkeypatch) -> None:
    from workbench.core.knowledge import io

    big = tmp_path / "big.csv"
    big.write_bytes(b"question,answer\n" + b"q,a\n" * 1000)
    monkeypatch.setattr(io, "MAX_FILE_BYTES", 1000)
    with pytest.raises(KnowledgeError, match="over the 0 MB upload limit|upload limit"):
        transfer.read_upload(big)


def test_screening_labels_every_fact_with_a_real_model(store, tiny_llama) -> None:
    sid = sets.create_set(store, "s")
    transfer.import_bytes(store, sid, CSV.encode(), "facts.csv")
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    counts = screen_facts(store, sid, loaded, samples=2)
    assert sum(counts.values()) == 3
    assert all(f.known in ("known", "maybe", "unknown") and "sampled" in f.known_detail
               for f in sets.list_facts(store, sid))
    assert label(True, 0, 4)[0] == "known"
    assert label(False, 1, 4)[0] == "maybe"
    assert label(False, 0, 4)[0] == "unknown"


def test_locality_keeps_only_what_the_base_answers_correctly(store, tiny_llama, monkeypatch) -> None:
    sid = sets.create_set(store, "s")
    transfer.import_bytes(store, sid, CSV.encode(), "facts.csv")
    pool = locality.load_general_knowledge()
    assert len(pool) >= 200
    gold = {item["question"]: item["answer"] for item in pool}
    for n in relations.same_relation_neighbours(sets.list_facts(store, sid), relations.load_relations()):
        gold.update((q, n.answer) for q in n.questions)
    asked = []

    known = set(sorted(gold)[::2])

    def half_right(_loaded, questions, **_kw):  # the base knows every other question
        asked.extend(questions)
        return [gold[q] if q in known else "no idea" for q in questions]

    monkeypatch.setattr(locality, "ask_questions", half_right)
    counts = locality.build_locality(store, sid, loaded=HUB_MODEL, general=40, per_fact=2)  # type: ignore[arg-type]
    kept = counts.kept_general + counts.kept_neighbours
    assert counts.asked == len(asked) >= 40 and 0 < kept < counts.asked
    # Born in a city and wrote a book: both relations of the set get neighbours.
    assert set(counts.by_relation) == {"birthplace", "author"}
    rows = probes.list_phrasings(store, sid, kinds=["locality", "neighbour"])
    assert len(rows) == kept and all(r.split == "probe" for r in rows)
    assert all(gold[r.question] == r.answer for r in rows)  # only what the base got right
    base = store.db.execute("SELECT count(*) FROM probe_results WHERE run_id IS NULL").fetchone()[0]
    assert base == kept
    # The real model path runs too (a random model keeps few or none).
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    monkeypatch.undo()
    real = locality.build_locality(store, sid, loaded, general=10, per_fact=1)
    assert real.asked >= 10
    # Each kept answer carries how sure the model was of it (measured, not the fake's 1.0).
    margins = store.db.execute("SELECT base_margin FROM probes WHERE set_id = ? AND kind IN "
                               "('locality', 'neighbour')", [sid]).fetchall()
    assert len(margins) == real.kept_general + real.kept_neighbours
    assert all(m is not None and m != 1.0 for (m,) in margins)


def test_neighbours_share_the_relation_of_the_fact() -> None:
    from workbench.core.knowledge.types import Fact

    pool = [{"question": "What is the capital of France?", "answer": "Paris"},
            {"question": "Who painted the Mona Lisa?", "answer": "Leonardo da Vinci"}]
    near = locality.neighbours([Fact("What is the capital of Freedonia?", "Fredville")], pool, 1)
    assert [n["question"] for n in near] == ["What is the capital of France?"]


def test_a_stored_set_renders_without_any_probe(store, tiny_qwen2) -> None:
    from transformers import AutoTokenizer

    sid = sets.create_set(store, "s")
    transfer.import_bytes(store, sid, CSV.encode(), "facts.csv")
    probes.generate_template_phrasings(store, sid, n=6)
    probes.split_probes(store, sid, holdout=2)
    held = {p.question for p in probes.list_phrasings(store, sid, split="probe")}
    assert len(held) == 6
    examples = examples_from_phrasings(sets.list_facts(store, sid), probes.training_phrasings(store, sid),
                                       mode="qa", include_statements=True)
    assert examples and not {e.prompt for e in examples} & held
    report = render_set(examples, AutoTokenizer.from_pretrained(tiny_qwen2), 256)
    assert report.dropped == 0 and report.label_tokens > 0


def test_tab_actions_add_import_edit_and_preview(store, tiny_llama, tmp_path) -> None:
    name, message = act.add_fact(store, None, "", "Who discovered radium?", "Marie Curie", "Curie", "")
    assert name == act.DEFAULT_SET and "Added" in message
    src = tmp_path / "facts.csv"
    src.write_text(CSV, encoding="utf-8")
    name, message, found = act.import_upload(store, name, str(src), "")
    assert "imported 3 facts" in message and found == []
    table = act.facts_table(store, name)
    assert len(table) == 4
    table.loc[0, "answer"] = "Maria Skłodowska-Curie"
    assert act.save_fact_edits(store, name, table) == "Saved 1 edited fact."
    with pytest.raises(KnowledgeError, match="facts.csv line 2: duplicate of a fact already in the set"):
        act.import_upload(store, name, str(src), "")  # all duplicates: nothing written
    assert len(act.facts_table(store, name)) == 4
    msg = act.generate_phrasings(store, ModelCache(), name, 5, True, "", 2, 0, lambda f, m: None)
    assert "held out" in msg
    cache = ModelCache()
    rows, summary = act.preview(store, cache, name, str(tiny_llama), "qa", True, 256, "drop")
    assert len(rows) > 0 and "training examples" in summary and "⟦" in rows.iloc[0]["text"]
    doc = tmp_path / "notes.md"
    doc.write_text("# Ada\n\nCharles Babbage was born in London in 1791.\n", encoding="utf-8")
    _, message, found = act.import_upload(store, name, str(doc), "")
    assert found and "proposed" in message
    _, message = act.accept_proposals(store, name, act.proposals_table(found))
    assert "Added" in message


def test_fictional_facts_are_made_up_deterministic_and_asked_in_different_words() -> None:
    from workbench.testing import fictional_facts

    rows = fictional_facts(90, 2, seed=3)
    assert rows == fictional_facts(90, 2, seed=3) and rows != fictional_facts(90, 2, seed=4)
    assert len(rows) == 180 and len({r["question"] for r in rows}) == 180
    facts = {(r["subject"], r["answer"]) for r in rows}
    assert len(facts) == 90 and len({a for _, a in facts}) == 90
    real = {"france", "paris", "euro", "dollar", "japan", "tokyo", "apple", "steve jobs"}
    assert not {w.lower() for s, a in facts for w in (s, a)} & real
    assert {r["question"].split()[0] for r in fictional_facts(3, 2, ("founder",))} == {"Who"}
    with pytest.raises(ValueError, match="relations"):
        fictional_facts(relations=("birthday",))


def test_tab_import_groups_sibling_rows_unless_the_box_is_ticked(store, tmp_path) -> None:
    src = tmp_path / "siblings.csv"
    src.write_text("subject,question,answer\nVeltria,What is the capital of Veltria?,Orsk\n"
                   "Veltria,What is Veltria's capital?,Orsk\n", encoding="utf-8")
    _, message, _ = act.import_upload(store, "grouped", str(src), "")
    assert message == "siblings.csv: imported 2 rows → 1 fact, 2 questions each."
    _, message, _ = act.import_upload(store, "rows", str(src), "", separate_rows=True)
    assert message == "siblings.csv: imported 2 facts."
