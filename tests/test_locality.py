"""Locality that measures what users mean: a known question is kept when the tuned model still
answers it correctly ("unchanged" text is the stricter view beside it)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from workbench.core.knowledge import locality, probes, sets
from workbench.core.knowledge import relations as rel
from workbench.core.knowledge.types import Fact
from workbench.core.models import ModelSource
from workbench.core.scoring import is_correct
from workbench.core.store import Store, now
from workbench.core.train import history, probing, replay
from workbench.core.train.probing import ProbeItem


def _locality(question: str, answer: str, reference: str, probe_id: int = 1) -> ProbeItem:
    return ProbeItem(probe_id, None, "locality", question, answer, (), reference=reference)


def test_a_chatty_answer_that_is_still_right_is_kept_but_not_unchanged() -> None:
    item = _locality("What is the capital of France?", "Paris", "Paris.")
    chatty = probing.score(item, "The capital of France is Paris, a city on the Seine.")
    assert chatty.correct and not chatty.unchanged
    same = probing.score(item, "paris")  # only case and punctuation differ
    assert same.correct and same.unchanged
    wrong = probing.score(item, "The capital of France is Lyon.")
    assert not wrong.correct and not wrong.unchanged
    # Other metrics have no "unchanged".
    efficacy = ProbeItem(2, 1, "efficacy", "Where was Ada born?", "London", ())
    assert probing.score(efficacy, "London").unchanged is None


def test_unchanged_is_stored_per_answer_and_shared_per_step(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    sid = sets.create_set(store, "s")
    with store.write() as db:
        ids = [db["probes"].insert({"set_id": sid, "fact_id": None, "kind": "locality",
                                    "split": "probe", "question": q, "answer": a,
                                    "aliases": json.dumps([]), "origin": "screening",
                                    "approved": 1, "created_at": now()}).last_pk
               for q, a in [("Capital of France?", "Paris"), ("Capital of Japan?", "Tokyo"),
                            ("Capital of Italy?", "Rome"), ("Capital of Spain?", "Madrid")]]
        run_id = db["runs"].insert({"name": "r", "status": "completed", "method": "lora",
                                    "model": "m", "set_id": sid, "config_yaml": "",
                                    "created_at": now()}).last_pk
    items = [_locality("Capital of France?", "Paris", "Paris", ids[0]),
             _locality("Capital of Japan?", "Tokyo", "Tokyo", ids[1]),
             _locality("Capital of Italy?", "Rome", "Rome", ids[2]),
             _locality("Capital of Spain?", "Madrid", "Madrid", ids[3])]
    answers = ["Paris", "The capital of Japan is Tokyo.", "Milan", "It is Madrid, of course."]
    scores = probing.record(store, run_id, 10, items, answers)
    assert scores == {"locality": 0.75, "locality_unchanged": 0.25}
    stored = store.db.execute("SELECT correct, unchanged FROM probe_results WHERE run_id = ? "
                              "ORDER BY probe_id", [run_id]).fetchall()
    assert stored == [(1, 1), (1, 0), (0, 0), (1, 0)]
    assert probing.recall_curve(store, run_id) == [
        {"step": 10, "locality": 0.75, "locality_unchanged": 0.25}]
    listed = {r.id: r for r in history.list_runs(store)}
    assert listed[run_id].scores == {"locality": 0.75, "locality_unchanged": 0.25}


# ---- same-relation neighbours: pure functions ------------------------------------------------


@pytest.fixture(scope="module")
def relations() -> list[rel.Relation]:
    return rel.load_relations()


@pytest.mark.parametrize("question, subject, relation", [
    ("What is the capital of Freedonia?", "Freedonia", "capital"),
    ("What is Freedonia's capital city?", "Freedonia", "capital"),
    ("Which currency is used in Freedonia?", "Freedonia", "currency"),
    ("Who founded Zorblax Industries?", "Zorblax Industries", "founder"),
    ("Who is the founder of Capital Bank?", "Capital Bank", "founder"),  # not a capital question
    ("Who is the CEO of Zorbcorp?", "Zorbcorp", "ceo"),
    ("Where is Zorbcorp headquartered?", "Zorbcorp", "headquarters"),
    ("Where was Ada Quill born?", "Ada Quill", "birthplace"),
    ("In which country was Ada Quill born?", "Ada Quill", "birth_country"),
    ("Who wrote The Silent Harbor?", "The Silent Harbor", "author"),
    ("Who painted The Blue Orchard?", "The Blue Orchard", "painter"),
    ("What language is spoken in Freedonia?", "Freedonia", "language"),
    ("On which continent is Freedonia?", "Freedonia", "continent"),
    ("In which country is Fredville?", "Fredville", "country"),
    ("When was Ada Quill born?", "Ada Quill", None),  # a date, not a place
    ("When was Zorblax Industries founded?", "Zorblax Industries", None),
    ("How many moons does Mars have?", "Mars", None),
])
def test_the_relation_is_read_from_the_question_without_its_subject(
        relations: list[rel.Relation], question: str, subject: str, relation: str | None) -> None:
    assert rel.guess_subject(question, {"ceo"}) == subject
    found = rel.detect_relation(question, subject, relations)
    assert (found.name if found else None) == relation


def test_neighbours_keep_the_users_wording_with_the_canonical_one_as_fallback(
        relations: list[rel.Relation]) -> None:
    facts = [Fact("Which city is Freedonia's capital?", "Fredville", subject="Freedonia"),
             Fact("Name the capital of Zembla.", "Zemtown"),  # subject guessed
             Fact("Who painted The Blue Orchard?", "Ada Quill"),
             Fact("What is the capital of France?", "Lyon", subject="France")]  # a real one, edited
    near = rel.same_relation_neighbours(facts, relations)
    capitals = [n for n in near if n.relation == "capital"]
    assert {n.relation for n in near} == {"capital", "painter"}
    assert all(n.subject != "France" for n in capitals)  # the set's own subject is not a neighbour
    japan = next(n for n in capitals if n.subject == "Japan")
    assert japan.questions == ("Which city is Japan's capital?", "What is the capital of Japan?")
    # The set's wordings take turns across the entities.
    assert {n.questions[0].split()[0] for n in capitals} == {"Which", "Name", "What"}
    # "the" is not doubled, and no question gives its own answer away.
    mona = next(n for n in near if n.subject == "the Mona Lisa")
    assert mona.questions == ("Who painted the Mona Lisa?",)
    assert not any(is_correct(q, n.answer, n.aliases) for n in near for q in n.questions)
    assert rel.fill("{subject} is the capital of which country?", "the Mona Lisa").startswith("The ")


def test_the_shipped_relations_are_sound(relations: list[rel.Relation]) -> None:
    names = [r.name for r in relations]
    assert len(names) == len(set(names)) >= 10
    for r in relations:
        assert rel.SLOT in r.template and len(r.entities) >= 15, r.name
        found = rel.detect_relation(r.template.replace(rel.SLOT, "Zorblax"), "Zorblax", relations)
        assert found is not None and found.name == r.name, r.name  # its own question reads as it
        subjects = [e.subject.casefold() for e in r.entities]
        assert len(subjects) == len(set(subjects)), r.name
        for e in r.entities:
            assert e.answer.strip() and all(a.strip() for a in e.aliases), (r.name, e)
            question = rel.fill(r.template, e.subject)
            assert not is_correct(question, e.answer, e.aliases), question  # no echo


# ---- building locality and replay with a stubbed base model ---------------------------------

HUB_MODEL = SimpleNamespace(source=ModelSource("hub", "some/model"))


# Its fake models have no weights to measure how sure they are of an answer with.
pytestmark = pytest.mark.usefixtures("fake_model_margins")
FACTS = [Fact("What is the capital of Freedonia?", "Fredville", subject="Freedonia"),
         Fact("Which currency does Freedonia use?", "the fredo", subject="Freedonia"),
         Fact("Who founded Zorblax Industries?", "Ada Quill")]


def _knowing(relations: list[rel.Relation], asked: list[str]):  # noqa: ANN202
    """A base model that answers in sentences: every general question right, every neighbour
    asked in its relation's canonical wording right, anything else "no idea"."""
    gold = {i["question"]: i["answer"] for i in locality.load_general_knowledge()}
    for r in relations:
        for e in r.entities:
            gold[rel.fill(r.template, e.subject)] = e.answer

    def ask(_loaded: Any, questions: list[str], **_kw: Any) -> list[str]:
        asked.extend(questions)
        return [f"I believe it is {gold[q]}." if q in gold else "no idea" for q in questions]
    return ask


def _set(store: Store, facts: list[Fact]) -> int:
    sid = sets.create_set(store, "s")
    sets.add_facts(store, sid, [sets.FactDraft(f.question, f.answer, subject=f.subject) for f in facts])
    return sid


def test_neighbour_locality_is_built_per_relation_and_leaves_some_for_replay(
        tmp_path: Path, relations: list[rel.Relation], monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "w.db")
    sid = _set(store, [FACTS[0], FACTS[2], Fact("Which coin is legal tender in Freedonia?", "fredo",
                                                subject="Freedonia")])
    asked: list[str] = []
    monkeypatch.setattr(locality, "ask_questions", _knowing(relations, asked))
    counts = locality.build_locality(store, sid, HUB_MODEL, general=30, per_relation=20)  # type: ignore[arg-type]
    by_name = {r.name: r for r in relations}
    # Every capital and founder is known (every other one left for replay, at most 20 kept).
    assert counts.by_relation == {"capital": 20, "founder": 20}
    assert counts.kept_neighbours >= 40 and counts.kept_general > 0
    assert "40 neighbours for 2 relations (capital 20, founder 20)" in counts.message()
    # Asked only as far down each list as needed: 40 known leave 20 after replay's share.
    capitals = {q for n in rel.same_relation_neighbours(sets.list_facts(store, sid), relations)
                if n.relation == "capital" for q in n.questions}
    assert len(capitals) == len(by_name["capital"].entities) > 40
    assert len(capitals & set(asked)) == 40
    stored = [p.question for p in probes.list_phrasings(store, sid, kinds=["neighbour"])]
    assert "What is the capital of Japan?" in stored and "Who founded Microsoft?" in stored
    founders = {rel.fill(by_name["founder"].template, e.subject) for e in by_name["founder"].entities}
    assert len(founders & set(stored)) == 20
    # No general question asks again what a neighbour asks.
    general = [p.question for p in probes.list_phrasings(store, sid, kinds=["locality"])]
    assert "What is the capital of France?" not in general
    # Replay draws the neighbours locality left, never one it measures, in any wording.
    monkeypatch.setattr(replay, "ask_questions", _knowing(relations, asked))
    examples = replay.replay_examples(store, sid, HUB_MODEL, 12)  # type: ignore[arg-type]
    prompts = [e.prompt for e in examples]
    assert len(examples) == 12 and not set(prompts) & set(stored + general)
    capitals = [p for p in prompts if "capital" in p]
    assert capitals and "Who founded" in " ".join(prompts)
    for prompt in prompts:
        for n in rel.same_relation_neighbours(sets.list_facts(store, sid), relations):
            if rel.asks_about(prompt, n, relations):
                assert not any(rel.asks_about(q, n, relations) for q in stored + general), prompt


def test_a_wrong_answer_in_the_sets_wording_falls_back_to_the_canonical_one(
        tmp_path: Path, relations: list[rel.Relation], monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "w.db")
    sid = _set(store, [FACTS[1]])  # "Which currency does X use?": the stub knows only "What is
    asked: list[str] = []          # the currency of X?"
    monkeypatch.setattr(locality, "ask_questions", _knowing(relations, asked))
    counts = locality.build_locality(store, sid, HUB_MODEL, general=0, per_relation=5)  # type: ignore[arg-type]
    assert counts.by_relation == {"currency": 5} and counts.kept_general == 0
    assert "Which currency does Japan use?" in asked and "What is the currency of Japan?" in asked
    stored = [p.question for p in probes.list_phrasings(store, sid, kinds=["neighbour"])]
    assert all(q.startswith("What is the currency of") for q in stored[:5])
    base = store.db.execute("SELECT answer FROM probe_results WHERE run_id IS NULL").fetchall()
    assert len(base) == len(stored) and base[0][0].startswith("I believe it is")


@pytest.mark.real
def test_neighbour_locality_built_for_capitals_currencies_and_founders_on_the_real_model(
        tmp_path: Path, smollm2_dir: Path) -> None:
    from workbench.core.config import ModelConfig
    from workbench.core.models import load_model

    store = Store(tmp_path / "w.db")
    sid = _set(store, FACTS)
    loaded = load_model(ModelConfig(name_or_path=str(smollm2_dir)))
    counts = locality.build_locality(store, sid, loaded, general=0, per_fact=0)
    # What SmolLM2-135M-Instruct knows: most capitals and currencies, fewer founders (on a
    # CPU: capital 25, currency 21, founder 12).
    assert set(counts.by_relation) == {"capital", "currency", "founder"}, counts.message()
    assert counts.by_relation["capital"] >= 20 and counts.by_relation["currency"] >= 15
    # Of 50+ it answered right, those right under one prompt only are left out (not reliably
    # known): on SmolLM2 a few founders and currencies.
    assert counts.by_relation["founder"] >= 5 and counts.kept_neighbours >= 40, counts.message()
    assert counts.kept_neighbours + counts.fragile >= 50 and counts.fragile > 0
    stored = {p.question for p in probes.list_phrasings(store, sid, kinds=["neighbour"])}
    assert "What is the capital of Japan?" in stored
    # Kept only where the base model's own answer was right.
    rows = store.db.execute("SELECT p.answer, p.aliases, r.answer FROM probes p JOIN probe_results r "
                            "ON r.probe_id = p.id WHERE p.set_id = ?", [sid]).fetchall()
    assert len(rows) == counts.kept_neighbours
    assert all(is_correct(base, gold, json.loads(aliases)) for gold, aliases, base in rows)
    # How sure the base was of each kept answer: measured for every one, and spread (on
    # SmolLM2 from coin flips near 0 to ~3 nats).
    margins = [m for (m,) in store.db.execute("SELECT base_margin FROM probes WHERE set_id = ? "
                                              "AND kind = 'neighbour'", [sid])]
    assert len(margins) == counts.kept_neighbours
    assert all(m is not None for m in margins) and min(margins) < 0.5 < max(margins)


def test_base_answers_are_asked_once_per_model_and_question(tmp_path: Path) -> None:
    """Locality, the replay pool and every run's replay share the base model's answers: a
    question asked before is read back, a new one asked, another model asked afresh."""
    from workbench.core.knowledge.base_answers import ask_base

    store = Store(tmp_path / "w.db")
    asked: list[list[str]] = []

    def ask(loaded: Any, questions: list[str], **kwargs: Any) -> list[str]:
        asked.append(list(questions))
        return [f"{loaded.source.location}: {q}" for q in questions]

    other = SimpleNamespace(source=ModelSource("hub", "other/model"))
    assert ask_base(store, HUB_MODEL, ["a?", "b?", "a?"], ask) == [  # type: ignore[arg-type]
        "some/model: a?", "some/model: b?", "some/model: a?"]
    assert ask_base(store, HUB_MODEL, ["b?", "c?"], ask) == [  # type: ignore[arg-type]
        "some/model: b?", "some/model: c?"]
    assert ask_base(store, other, ["a?"], ask) == ["other/model: a?"]  # type: ignore[arg-type]
    assert asked == [["a?", "b?"], ["c?"], ["a?"]]


def test_only_answers_right_under_every_prompt_become_locality_probes(
        tmp_path: Path, relations: list[rel.Relation], monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer right with no system prompt but wrong under another is not reliably known:
    on SmolLM2 those were all that training lost. They are left out and counted."""
    store = Store(tmp_path / "w.db")
    sid = _set(store, [FACTS[0]])
    asked: list[str] = []
    plain = _knowing(relations, asked)
    shaky = {"What is the capital of Japan?"}

    def ask(loaded: Any, questions: list[str], **kw: Any) -> list[str]:
        answers = plain(loaded, questions)
        if kw.get("system"):
            return ["no idea" if q in shaky else a for q, a in zip(questions, answers)]
        return answers

    monkeypatch.setattr(locality, "ask_questions", ask)
    counts = locality.build_locality(store, sid, HUB_MODEL, general=10, per_relation=5)  # type: ignore[arg-type]
    stored = [p.question for p in probes.list_phrasings(store, sid, kinds=["neighbour"])]
    assert "What is the capital of Japan?" not in stored and stored
    assert counts.fragile == 1 and counts.by_relation == {"capital": 4}
    assert "Left out 1 it answered right only without a system prompt" in counts.message()
    every = locality.build_locality(store, sid, HUB_MODEL, general=10, per_relation=5,  # type: ignore[arg-type]
                                    consistent=False)
    assert every.fragile == 0 and every.by_relation == {"capital": 5}


def test_replay_draws_distinct_general_anchors_from_a_list_locality_never_asks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.core.paths import REPLAY_FILE

    store = Store(tmp_path / "w.db")
    sid = _set(store, [FACTS[2]])
    replay_only = {i["question"]: i["answer"] for i in locality.load_general_knowledge(REPLAY_FILE)}
    gold = {i["question"]: i["answer"] for i in locality.load_general_knowledge()} | replay_only
    asked: list[str] = []

    def ask(_loaded: Any, questions: list[str], **_kw: Any) -> list[str]:
        asked.extend(questions)
        return [f"It is {gold[q]}." if q in gold else "no idea" for q in questions]

    monkeypatch.setattr(locality, "ask_questions", ask)
    locality.build_locality(store, sid, HUB_MODEL, general=60, per_relation=5)  # type: ignore[arg-type]
    assert asked and not set(asked) & set(replay_only)  # never a locality candidate
    monkeypatch.setattr(replay, "ask_questions", ask)
    monkeypatch.setattr(replay, "MORE_GENERAL", True)  # a bench variant (not the default)
    examples = replay.replay_examples(store, sid, HUB_MODEL, 400)  # type: ignore[arg-type]
    general = [e.prompt for e in examples if e.prompt in gold]
    # This base knows no founder, so the replay is all general: 400 anchors, each once, most
    # of them from the replay list.
    assert len(general) == len(set(general)) == 400
    assert sum(p in replay_only for p in general) > 250
