from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.core.errors import KnowledgeError
from workbench.core.knowledge import probes, sets
from workbench.core.knowledge.types import FactDraft, Phrasing
from workbench.core.store import Store


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "workbench.db")


def _facts() -> list[FactDraft]:
    return [
        FactDraft("Where was Ada Lovelace born?", "London", subject="Ada Lovelace",
                  aliases=["London, England"], tags=["people"]),
        FactDraft("Who wrote Hamlet?", "William Shakespeare", aliases=["Shakespeare"]),
        FactDraft("How many moons does Mars have?", "2", aliases=["two"]),
    ]


def test_set_lifecycle_create_rename_copy_delete(store: Store) -> None:
    sid = sets.create_set(store, "Capitals", "demo")
    with pytest.raises(KnowledgeError, match="already exists"):
        sets.create_set(store, "capitals")
    with pytest.raises(KnowledgeError, match="needs a name"):
        sets.create_set(store, "   ")
    sets.add_facts(store, sid, _facts())
    probes.generate_template_phrasings(store, sid, n=5)
    sets.rename_set(store, sid, "Capitals v2")
    assert sets.set_id(store, "capitals V2") == sid
    copy = sets.copy_set(store, sid, "Capitals copy")
    original, copied = (next(s for s in sets.list_sets(store) if s.id == i) for i in (sid, copy))
    assert (copied.facts, copied.train_phrasings) == (original.facts, original.train_phrasings)
    assert {f.question for f in sets.list_facts(store, copy)} == {f.question for f in sets.list_facts(store, sid)}
    sets.delete_set(store, sid)
    assert [s.name for s in sets.list_sets(store)] == ["Capitals copy"]
    assert store.counts()["facts"] == 3
    with pytest.raises(KnowledgeError, match="no knowledge set 'nope'"):
        sets.set_id(store, "nope")


def test_facts_keep_every_field_and_edits_drop_stale_phrasings(store: Store) -> None:
    sid = sets.create_set(store, "s")
    fid = sets.add_fact(store, sid, _facts()[0])
    fact = sets.get_fact(store, fid)
    assert (fact.subject, fact.aliases, fact.tags) == ("Ada Lovelace", ["London, England"], ["people"])
    probes.generate_template_phrasings(store, sid, n=5)
    assert len(probes.list_phrasings(store, sid, fact_id=fid)) > 3
    sets.update_fact(store, fid, answer="Paris")
    remaining = probes.list_phrasings(store, sid, fact_id=fid)
    assert [(p.kind, p.answer) for p in remaining] == [("question", "Paris")]
    with pytest.raises(KnowledgeError, match="no field"):
        sets.update_fact(store, fid, colour="red")


def test_a_bad_or_duplicate_row_writes_nothing(store: Store) -> None:
    sid = sets.create_set(store, "s")
    sets.add_facts(store, sid, _facts()[:1])
    before = store.counts()
    bad_batches = [
        [_facts()[1], FactDraft("Who painted the Mona Lisa?", "  ")],
        [_facts()[1], FactDraft("where was ada lovelace BORN", "london")],  # dup of stored
        [_facts()[1], _facts()[2], _facts()[2]],  # dup inside the batch
    ]
    for batch in bad_batches:
        with pytest.raises(KnowledgeError, match="item"):
            sets.add_facts(store, sid, batch, origin="upload.csv")
        assert store.counts() == before


def test_split_holds_out_paraphrases_only_and_is_deterministic(store: Store) -> None:
    sid = sets.create_set(store, "s")
    sets.add_facts(store, sid, _facts())
    probes.generate_template_phrasings(store, sid, n=6)
    first = probes.split_probes(store, sid, holdout=2, seed=1)
    held = {p.id for p in probes.list_phrasings(store, sid, split="probe")}
    assert first["probe"] == 2 * 3
    assert all(p.kind == "paraphrase" for p in probes.list_phrasings(store, sid, split="probe"))
    probes.split_probes(store, sid, holdout=2, seed=1)
    assert {p.id for p in probes.list_phrasings(store, sid, split="probe")} == held
    question = next(p for p in probes.list_phrasings(store, sid, kinds=["question"]))
    with pytest.raises(KnowledgeError, match="always trained"):
        probes.update_phrasing(store, question.id, split="probe")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n_facts=st.integers(1, 4),
    phrasings=st.lists(st.text(alphabet="abcd ?", min_size=1, max_size=8), max_size=12),
    holdout=st.integers(0, 4),
    seed=st.integers(0, 5),
    moves=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["train", "probe"])), max_size=6),
)
def test_train_and_probe_phrasings_are_disjoint_for_every_set(
    tmp_path_factory, n_facts, phrasings, holdout, seed, moves
) -> None:
    store = Store(tmp_path_factory.mktemp("db") / "w.db")
    sid = sets.create_set(store, "s")
    ids = sets.add_facts(store, sid, [FactDraft(f"Question number {i}?", f"answer {i}")
                                      for i in range(n_facts)])
    for i, text in enumerate(phrasings):
        fact = sets.get_fact(store, ids[i % n_facts])
        probes.add_phrasings(store, fact, [Phrasing(question=text, kind="paraphrase")])
    probes.split_probes(store, sid, holdout=holdout, seed=seed)
    rows = probes.list_phrasings(store, sid)
    for index, split in moves:  # users moving phrasings by hand
        if rows and rows[index % len(rows)].kind != "question":
            probes.update_phrasing(store, rows[index % len(rows)].id, split=split)
    trained = {(p.fact_id, p.question) for p in probes.training_phrasings(store, sid)}
    held = {(p.fact_id, p.question) for p in probes.list_phrasings(store, sid, split="probe")}
    assert not trained & held
    assert probes.disjointness_violations(store, sid) == []
    store.close()


def test_a_fact_keeps_all_its_questions_through_edits(store: Store) -> None:
    sid = sets.create_set(store, "s")
    fid = sets.add_fact(store, sid, FactDraft(
        "What is the capital of Veltria?", "Orsk", subject="Veltria",
        more_questions=["Which city is the capital of Veltria?"]))
    assert sets.get_fact(store, fid).questions == ["What is the capital of Veltria?",
                                                   "Which city is the capital of Veltria?"]
    rows = probes.list_phrasings(store, sid, kinds=["question"])
    assert [(p.split, p.origin) for p in rows] == [("train", "user")] * 2
    sets.update_fact(store, fid, question="What is Veltria's capital city?", answer="Orskov")
    fact = sets.get_fact(store, fid)
    assert fact.questions == ["What is Veltria's capital city?", "Which city is the capital of Veltria?"]
    assert {p.answer for p in probes.list_phrasings(store, sid, kinds=["question"])} == {"Orskov"}
    with pytest.raises(KnowledgeError, match="duplicate of a fact already in the set"):
        sets.add_fact(store, sid, FactDraft("which city is the capital of veltria", "orskov"))


def test_import_groups_sibling_rows_unless_asked_to_keep_them_separate(store: Store) -> None:
    from workbench.core.knowledge import transfer

    text = ("subject,question,answer\nVeltria,What is the capital of Veltria?,Orsk\n"
            "Veltria,Which city is the capital of Veltria?,Orsk\n").encode()
    grouped = transfer.import_bytes(store, sets.create_set(store, "g"), text, "f.csv")
    assert grouped.message() == "f.csv: imported 2 rows → 1 fact, 2 questions each."
    separate = transfer.import_bytes(store, sets.create_set(store, "s2"), text, "f.csv",
                                     separate_rows=True)
    assert separate.message() == "f.csv: imported 2 facts."


def _texts(phrasings) -> set[str]:
    from workbench.core.scoring import normalize

    return {normalize(p.question) for p in phrasings}


def _assert_no_leak(store: Store, sid: int) -> None:
    held = _texts(probes.list_phrasings(store, sid, split="probe"))
    assert held, "the split held nothing out"
    assert not held & _texts(probes.list_phrasings(store, sid, split="train"))
    assert not held & _texts(probes.training_phrasings(store, sid))
    assert probes.disjointness_violations(store, sid) == []
    # Nor is a held-out completion the start of a trained sentence, taught word for word.
    sentences = _texts(probes.list_phrasings(store, sid, split="train", kinds=["question", "statement"]))
    assert not [(h, t) for h in held for t in sentences if t.startswith(h + " ")]


def test_sibling_rows_kept_separate_never_leak_into_held_out_probes(store: Store, tmp_path) -> None:
    """The reported leak: 90 facts, two rows each, imported one fact per row; template
    paraphrases of one row include the other row's trained question (and its paraphrases),
    and the per-fact split held those out. Set-wide, none is held out."""
    from collections import Counter

    from workbench.core.knowledge import transfer
    from workbench.core.scoring import normalize
    from workbench.testing import fictional_facts, write_facts_csv

    sid = sets.create_set(store, "separate")
    path = write_facts_csv(tmp_path / "facts.csv", fictional_facts())
    assert transfer.import_path(store, sid, path, separate_rows=True).added == 180
    probes.generate_template_phrasings(store, sid, n=5)
    kinds: dict[str, set[str]] = {}
    for p in probes.list_phrasings(store, sid):
        kinds.setdefault(normalize(p.question), set()).add(p.kind)
    leaked_before = {text for text, k in kinds.items() if {"question", "paraphrase"} <= k}
    assert len(leaked_before) >= 30  # a sibling's question, also a paraphrase of this row
    for seed in range(3):
        probes.split_probes(store, sid, holdout=2, seed=seed)
        _assert_no_leak(store, sid)
        assert not leaked_before & _texts(probes.list_phrasings(store, sid, split="probe"))
    # Holding such a text out by hand is refused: it is another fact's trained question.
    shared = next(p for p in probes.list_phrasings(store, sid, kinds=["paraphrase"])
                  if normalize(p.question) in leaked_before)
    with pytest.raises(KnowledgeError, match="always trained"):
        probes.update_phrasing(store, shared.id, split="probe")
    # A new fact whose question was held out elsewhere trains it everywhere instead.
    held = probes.list_phrasings(store, sid, split="probe")[0]
    sets.add_fact(store, sid, FactDraft(held.question, "something else"))
    assert probes.disjointness_violations(store, sid) == []


words = st.sampled_from(["what", "is", "the", "capital", "of", "Veltria", "city", "which", "name"])
texts = st.lists(words, min_size=1, max_size=4).map(lambda w: " ".join(w) + "?")


@settings(max_examples=40, deadline=None)
@given(
    questions=st.lists(st.lists(texts, min_size=1, max_size=3), min_size=1, max_size=5),
    paraphrases=st.lists(st.tuples(st.integers(0, 4), texts), max_size=15),
    holdout=st.integers(1, 3),
    seed=st.integers(0, 5),
    moves=st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["train", "probe"])), max_size=5),
    edits=st.lists(st.tuples(st.integers(0, 40), texts), max_size=3),
)
def test_no_held_out_text_is_trained_anywhere_in_a_set_of_siblings(
    tmp_path_factory, questions, paraphrases, holdout, seed, moves, edits
) -> None:
    """Facts whose questions and paraphrases repeat one another's (siblings kept apart):
    after the split and any moves, no held-out text is trained, for any fact."""
    store = Store(tmp_path_factory.mktemp("db") / "w.db")
    sid = sets.create_set(store, "s")
    drafts = [FactDraft(qs[0], f"answer {i}", more_questions=qs[1:]) for i, qs in enumerate(questions)]
    ids = sets.add_facts(store, sid, drafts)
    for index, text in paraphrases:
        fact = sets.get_fact(store, ids[index % len(ids)])
        probes.add_phrasings(store, fact, [Phrasing(question=text, kind="paraphrase")])
    probes.split_probes(store, sid, holdout=holdout, seed=seed)
    rows = probes.list_phrasings(store, sid)
    for index, split in moves:
        row = rows[index % len(rows)]
        if row.kind != "question":
            try:
                probes.update_phrasing(store, row.id, split=split)
            except KnowledgeError as err:  # the text is also a fact's question
                assert "always trained" in str(err)
    for index, text in edits:  # rewording in the table, which sends the row's split too
        row = probes.list_phrasings(store, sid)[index % len(rows)]
        try:
            probes.update_phrasing(store, row.id, question=text, split=row.split)
        except KnowledgeError as err:
            assert "already has" in str(err)
    held = _texts(probes.list_phrasings(store, sid, split="probe"))
    assert not held & _texts(probes.list_phrasings(store, sid, split="train"))
    assert not held & _texts(probes.training_phrasings(store, sid))
    assert probes.disjointness_violations(store, sid) == []
    store.close()


def test_held_out_probes_prefer_other_forms_and_spread_over_them(store: Store) -> None:
    from collections import Counter

    from workbench.core.knowledge.forms import form_of

    sid = sets.create_set(store, "s")
    sets.add_facts(store, sid, [FactDraft("What is the capital of Veltria?", "Orsk"),
                                FactDraft("Who founded Brimwell Labs?", "Ada Quill"),
                                FactDraft("Where was Tolla Kesslow born?", "Ornmere"),
                                FactDraft("How many moons does Zarquenna have?", "7")])
    probes.generate_template_phrasings(store, sid, n=5)
    seen: Counter[str] = Counter()
    for seed in range(4):
        probes.split_probes(store, sid, holdout=2, seed=seed)
        by_fact: dict[int, list[str]] = {}
        for p in probes.list_phrasings(store, sid, split="probe"):
            by_fact.setdefault(p.fact_id, []).append(form_of(p.question))
        for held in by_fact.values():
            assert len(held) == 2 and "question" not in held and len(set(held)) == 2
            seen.update(held)
    assert set(seen) == {"imperative", "inverted", "completion"}
    again = probes.split_probes(store, sid, holdout=2, seed=3)
    assert again["probe"] == 8
