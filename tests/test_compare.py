"""Compare core: the batched N-pane generation, baselines and the fact scorecard."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from workbench.core.compare import baselines as bl
from workbench.core.compare.pool import BASE, ComparePool, Sampling, Subject
from workbench.core.compare.scorecard import Scorecard, build_scorecard
from workbench.core.config import ModelConfig
from workbench.core.errors import WorkbenchError
from workbench.core.generate import ask_questions
from workbench.core.knowledge import sets
from workbench.core.knowledge.types import Fact
from workbench.core.model_cache import ModelCache
from workbench.core.models import load_model
from workbench.core.paths import DEMO_MODEL
from workbench.core.scoring import abstains
from workbench.core.store import Store, now
from workbench.core.train.run import create_run, execute_run
from workbench.core.workspace import resolve_workspace
from workbench.demo.bench import demo_run_config

from conftest import teach_unknown_facts


@pytest.fixture(scope="module")
def taught(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The demo model taught 5 facts it did not know (LoRA, the demo recipe): ~10 s on CPU."""
    ws = resolve_workspace(tmp_path_factory.mktemp("compare") / "ws")
    store = Store(ws.db_path)
    run_id, sid = teach_unknown_facts(store, ws)
    return SimpleNamespace(ws=ws, store=store, run_id=run_id, sid=sid,
                           facts=sets.list_facts(store, sid))


def _ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def test_batched_panes_equal_separate_generations_with_the_adapter_on_and_off(taught) -> None:
    pool = ComparePool(taught.store, taught.ws)
    tuned = Subject("run", taught.run_id)
    pool.prepare([tuned])
    requests = [(s, _ask(f.question)) for f in taught.facts for s in (BASE, tuned)]
    together = pool.generate(requests, Sampling())
    apart = pool.generate(requests, Sampling(), batched=False)
    assert together == apart
    # Not trivially equal: the adapter changes the answers to the taught facts.
    assert together[0::2] != together[1::2]
    # The reference really is adapter-off / adapter-on, generated one subject at a time.
    base_alone = ask_questions(load_model(pool.base_cfg), [f.question for f in taught.facts],
                               max_new_tokens=64, first_line_only=False)
    assert together[0::2] == base_alone


def test_streaming_sees_each_panes_text_grow_to_the_final_reply(taught) -> None:
    pool = ComparePool(taught.store, taught.ws)
    tuned = Subject("run", taught.run_id)
    pool.prepare([tuned])
    seen: dict[int, list[str]] = {}
    requests = [(BASE, _ask(taught.facts[0].question)), (tuned, _ask(taught.facts[0].question))]
    replies = pool.generate(requests, Sampling(), on_text=lambda i, t: seen.setdefault(i, []).append(t))
    for i, reply in enumerate(replies):
        assert len(seen[i]) > 1 and seen[i][-1] == reply
        assert all(reply.startswith(part.strip()) for part in seen[i])


def test_the_scorecard_shows_the_taught_facts_went_in_and_nothing_else_moved(taught) -> None:
    pool = ComparePool(taught.store, taught.ws)
    tuned = Subject("run", taught.run_id)
    pool.prepare([tuned])
    card = build_scorecard(taught.store, pool, taught.sid, [tuned], set_name="five")
    assert card.counts() == {"efficacy": 5, "generalization": 10, "locality": 12, "abstention": 0}
    assert card.score(tuned.key, "efficacy") == 1.0
    assert card.score(BASE.key, "efficacy") == 0.0  # the five were chosen as unknown to it
    assert card.score(tuned.key, "generalization") >= 0.8
    assert card.score(tuned.key, "locality") >= 0.9
    assert card.score(BASE.key, "locality") >= 0.9  # it was built from what the base knows
    assert card.unchanged(BASE.key) is None  # the base is the reference of "unchanged"
    assert card.unchanged(tuned.key) is not None
    assert card.reused == []
    # The same card again comes from the store, not from the model.
    again = build_scorecard(taught.store, pool, taught.sid, [tuned], set_name="five")
    assert sorted(again.reused) == ["base", tuned.key] and again.summary() == card.summary()
    json.dumps(again.as_json())


def test_a_changed_set_is_asked_again(taught) -> None:
    pool = ComparePool(taught.store, taught.ws)
    tuned = Subject("run", taught.run_id)
    pool.prepare([tuned])
    build_scorecard(taught.store, pool, taught.sid, [tuned])
    with taught.store.write() as db:
        sets.touch(db, taught.sid)
    assert build_scorecard(taught.store, pool, taught.sid, [tuned]).reused == []


def test_baseline_panes_answer_in_the_same_batch_with_their_context(taught) -> None:
    pool = ComparePool(taught.store, taught.ws)
    pool.prepare([Subject("in_context"), Subject("retrieval")],
                 base_cfg=ModelConfig(name_or_path=DEMO_MODEL, device="cpu"))
    card = build_scorecard(taught.store, pool, taught.sid,
                           [Subject("in_context"), Subject("retrieval")])
    assert [s.key for s in card.subjects] == ["base", "in_context", "retrieval"]
    assert card.notes == {"in_context": "5 of 5 facts in the prompt",
                          "retrieval": "top 3 of 5 facts by BM25"}
    assert all(len(r.marks) == 3 for r in card.rows)


def test_a_run_without_outputs_is_said_in_its_pane_not_raised(taught) -> None:
    cfg = demo_run_config("cpu").with_values({"data.knowledge_set": "five"})
    unfinished = create_run(taught.store, taught.ws, cfg)
    pool = ComparePool(taught.store, taught.ws)
    pool.prepare([Subject("run", taught.run_id), Subject("run", unfinished)])
    assert "has no trained model to compare" in pool.unavailable[f"run:{unfinished}"]
    with pytest.raises(WorkbenchError, match="no trained model"):
        pool.generate([(Subject("run", unfinished), _ask("hi"))], Sampling())


def test_model_cache_puts_adapters_on_and_takes_them_off(taught) -> None:
    cache = ModelCache()
    pool = ComparePool(taught.store, taught.ws, get_base=cache.get)
    pool.prepare([Subject("run", taught.run_id)])
    assert hasattr(cache.current.model, "peft_config")
    first = pool.runs[taught.run_id].adapter_name
    # The run wrote new outputs (resumed and finished again): its new adapter is loaded.
    outputs = taught.ws.run_dir(taught.run_id) / "outputs.json"
    later = outputs.stat().st_mtime + 10
    os.utime(outputs, (later, later))
    pool.prepare([Subject("run", taught.run_id)])
    assert pool.runs[taught.run_id].adapter_name != first
    # Only the new adapter stays: the older one is deleted, not kept for the app's lifetime.
    assert set(cache.current.model.peft_config) == {pool.runs[taught.run_id].adapter_name}
    plain = cache.get(pool.base_cfg)
    assert not hasattr(plain.model, "peft_config")
    question = [taught.facts[0].question]
    assert ask_questions(plain, question) == ask_questions(load_model(pool.base_cfg), question)


# ---- tiny-model runs: every grouping the pool makes ------------------------------------

def test_lora_dora_and_full_runs_each_equal_their_separate_generation(bench) -> None:
    ws, store, config = bench
    runs = {}
    for method in ("lora", "dora", "full"):
        run_id = create_run(store, ws, config(**{"method.name": method, "training.epochs": 1,
                                                 "training.learning_rate": 0.05}))
        execute_run(store, ws, run_id)
        runs[method] = Subject("run", run_id)
    pool = ComparePool(store, ws)
    subjects = [BASE, *runs.values(), Subject("retrieval")]
    pool.prepare(subjects[1:])
    assert pool.unavailable == {} and runs["full"].run_id in pool.own
    requests = [(s, _ask(q)) for q in ("Who wrote Hamlet?", "Where is it?") for s in subjects]
    context = bl.Baselines.build(sets.list_facts(store, 1), pool.base.model, pool.base.tokenizer)
    requests = [(s, [{"role": "system", "content": context.system(s.kind, m[0]["content"])}, *m]
                 if s.kind == "retrieval" else m) for s, m in requests]
    assert pool.generate(requests, Sampling(max_new_tokens=12)) == \
        pool.generate(requests, Sampling(max_new_tokens=12), batched=False)


def test_a_full_run_that_does_not_fit_says_how_much_memory_it_needs(bench, monkeypatch) -> None:
    ws, store, config = bench
    run_id = create_run(store, ws, config(**{"method.name": "full", "training.epochs": 1}))
    execute_run(store, ws, run_id)
    monkeypatch.setattr("workbench.core.compare.pool.free_memory", lambda device: 1000)
    pool = ComparePool(store, ws)
    pool.prepare([Subject("run", run_id)])
    reason = pool.unavailable[f"run:{run_id}"]
    assert "has its own weights" in reason and "free on cpu" in reason


# ---- the scorecard's arithmetic on a hand-built case -----------------------------------

class ScriptedPool(ComparePool):
    """Answers from a script {(subject key, question): answer} instead of a model."""

    def __init__(self, store: Store, workspace: Any, script: dict[tuple[str, str], str]) -> None:
        super().__init__(store, workspace)
        self.script, self.base_cfg, self.asked = script, ModelConfig(name_or_path="scripted"), 0

    def generate(self, requests, sampling, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.asked += len(requests)
        return [self.script[(s.key, m[-1]["content"])] for s, m in requests]

    def label(self, subject: Subject) -> str:
        return subject.key


def _hand_built(tmp_path: Path) -> tuple[Store, Any, int]:
    ws = resolve_workspace(tmp_path / "ws")
    store = Store(ws.db_path)
    sid = sets.create_set(store, "hand")
    sets.add_facts(store, sid, [
        sets.FactDraft("Where was Ada born?", "London", aliases=["Greater London"]),
        sets.FactDraft("Who wrote Hamlet?", "William Shakespeare", aliases=["Shakespeare"]),
    ])
    facts = sets.list_facts(store, sid)
    with store.write() as db:
        def probe(kind: str, split: str, question: str, answer: str = "", fact: Fact | None = None,
                  aliases: str = "[]") -> None:
            db["probes"].insert({"set_id": sid, "fact_id": fact.id if fact else None, "kind": kind,
                                 "split": split, "question": question, "answer": answer,
                                 "aliases": aliases, "origin": "user", "approved": 1,
                                 "created_at": now()})
        # (each fact's own question is already a 'question' probe: efficacy)
        probe("paraphrase", "probe", "Ada's birthplace?", "London", facts[0], '["Greater London"]')
        probe("paraphrase", "probe", "Hamlet's author?", "William Shakespeare", facts[1],
              '["Shakespeare"]')
        probe("locality", "probe", "Capital of France?", "Paris")
        probe("locality", "probe", "Two plus two?", "four")
        probe("abstention", "probe", "Who is Zorblax?", "unknown")
    return store, ws, sid


def test_scorecard_metrics_are_exact_on_a_hand_built_case(tmp_path: Path) -> None:
    store, ws, sid = _hand_built(tmp_path)
    script = {
        # base: knows neither fact, a made-up answer to the unknown person
        ("base", "Where was Ada born?"): "Paris.",
        ("base", "Who wrote Hamlet?"): "Marlowe",
        ("base", "Ada's birthplace?"): "Rome",
        ("base", "Hamlet's author?"): "Bacon",
        ("base", "Capital of France?"): "It is Paris.",
        ("base", "Two plus two?"): "five",
        ("base", "Who is Zorblax?"): "A famous painter.",
        # tuned: normalisation (case, punctuation, articles), an alias, a miss, one locality
        # answer changed only in case/punctuation (unchanged), one changed but right (still
        # correct, not unchanged), and an abstention
        ("run:1", "Where was Ada born?"): "The answer is: LONDON!",
        ("run:1", "Who wrote Hamlet?"): "Shakespeare",
        ("run:1", "Ada's birthplace?"): "greater london",
        ("run:1", "Hamlet's author?"): "Bacon",
        ("run:1", "Capital of France?"): "it is paris",
        ("run:1", "Two plus two?"): "four",
        ("run:1", "Who is Zorblax?"): "I don't know.",
    }
    pool = ScriptedPool(store, ws, script)
    tuned = Subject("run", 1)
    card: Scorecard = build_scorecard(store, pool, sid, [tuned])
    assert card.counts() == {"efficacy": 2, "generalization": 2, "locality": 2, "abstention": 1}
    s = card.summary()
    assert s["run:1"] == {
        "efficacy": 1.0, "efficacy_exact": 0.5,  # "Shakespeare" is an exact alias; LONDON! is in a sentence
        "generalization": 0.5, "generalization_exact": 0.5,  # "greater london" exact alias
        "locality": 1.0, "locality_exact": 0.5,  # both right; "four" is exact
        "locality_unchanged": 0.5,  # France unchanged; four changed (but right)
        "abstention": 1.0, "abstention_exact": 1.0,
    }
    assert s["base"] == {
        "efficacy": 0.0, "efficacy_exact": 0.0, "generalization": 0.0, "generalization_exact": 0.0,
        "locality": 0.5, "locality_exact": 0.0, "locality_unchanged": None,
        "abstention": 0.0, "abstention_exact": 0.0,
    }
    assert pool.asked == 14  # every probe of both subjects, in one pass
    # Stored and reused: nothing is asked again.
    assert build_scorecard(store, pool, sid, [tuned]).summary() == s and pool.asked == 14
    # The CLI table and the report put "unchanged" right beside locality's headline.
    from workbench.cli.compare import scorecard_lines
    from workbench.core.compare.report import _samples, _summary

    lines = scorecard_lines(card, {})
    header = next(line for line in lines if line.startswith("subject"))
    assert header.split()[5:8] == ["locality", "(2)", "unchanged"]
    tuned_row = next(line for line in lines if line.startswith(card.labels["run:1"]))
    assert re.split(r"\s{2,}", tuned_row)[3:5] == ["100% (50%)", "50%"]
    assert "<th>unchanged</th>" in _summary(card) and ">50%</td>" in _summary(card)
    # In the sample answers, "four" is still right (✓) but no longer the base's words.
    assert _samples(card, "locality").count("(reworded)") == 1


@pytest.mark.parametrize("text, expected", [
    ("I don't know.", True), ("Unknown", True), ("I am not sure who that is", True),
    ("No information about that person.", True), ("Paris", False), ("Known for painting", False),
])
def test_abstention_is_recognised(text: str, expected: bool) -> None:
    assert abstains(text) is expected


# ---- baselines ---------------------------------------------------------------------------

def _facts(*pairs: tuple[str, str]) -> list[Fact]:
    return [Fact(question=q, answer=a, id=i) for i, (q, a) in enumerate(pairs, 1)]


def test_bm25_ranks_the_fact_sharing_rare_words_first() -> None:
    facts = _facts(("Where was Quilla Hartwell born?", "Caldera"),
                   ("Where was Ingram Voss born?", "Elsinore"),
                   ("Which university did Quilla Hartwell attend?", "Corvane Institute"))
    retriever = bl.Retriever(facts)
    assert retriever.kind == "BM25"
    assert retriever.top("Where was Ingram Voss born?", 1)[0].answer == "Elsinore"
    assert [f.id for f in retriever.top("What did Quilla Hartwell study at university?", 2)] == [3, 1]


def test_retrieval_uses_an_embedder_when_given_one() -> None:
    facts = _facts(("alpha", "one"), ("beta", "two"))
    vectors = {"alpha one": [1.0, 0.0], "beta two": [0.0, 1.0], "which is b?": [0.1, 0.9]}
    retriever = bl.Retriever(facts, lambda texts: [vectors[t] for t in texts])
    assert retriever.kind == "embedding" and retriever.top("which is b?", 1)[0].answer == "two"


def test_in_context_keeps_the_facts_that_fit_and_says_how_many(taught) -> None:
    from workbench.core.models import load_tokenizer

    tok = load_tokenizer(ModelConfig(name_or_path=DEMO_MODEL))
    many = _facts(*[(f"Where was person {i} born?", f"Town {i}") for i in range(200)])
    fit = bl.fitting_facts(many, tok, 300)
    assert 0 < len(fit) < 200
    assert len(tok(bl.context_prompt(fit))["input_ids"]) <= 300 + 5
    context = bl.Baselines(fit, len(many), bl.Retriever(many))
    assert context.describe("in_context") == f"{len(fit)} of 200 facts in the prompt"
    assert "Town 7" in context.system("retrieval", "Where was person 7 born?", "Be brief.")
    assert context.system("retrieval", "x", "Be brief.").startswith("Be brief.\n")


# ---- side-by-side chat -------------------------------------------------------------------

def test_each_pane_keeps_its_own_history_and_turns_are_saved(taught) -> None:
    from workbench.core.compare.chat import ask_panes, chat_log, clean_question, save_turn

    pool = ComparePool(taught.store, taught.ws)
    tuned = Subject("run", taught.run_id)
    subjects = [BASE, tuned, Subject("run", 999_999)]
    pool.prepare(subjects)
    history = {BASE.key: [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    calls: list[list] = []
    real = pool.generate

    def spy(requests, sampling, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append(requests)
        return real(requests, sampling, **kwargs)

    pool.generate = spy  # type: ignore[method-assign]
    question = taught.facts[0].question
    replies = ask_panes(pool, subjects, history, question, Sampling(), system="Be brief.")
    assert len(calls) == 1 and len(calls[0]) == 2  # one call; the unavailable pane is skipped
    base_messages, tuned_messages = calls[0][0][1], calls[0][1][1]
    assert [m["role"] for m in base_messages] == ["system", "user", "assistant", "user"]
    assert [m["role"] for m in tuned_messages] == ["system", "user"]
    assert replies[2] == "" and replies[1] and replies[0] != replies[1]
    save_turn(taught.store, "s1", subjects[:2], question, replies[:2], Sampling(), "Be brief.")
    log = chat_log(taught.store, "s1")
    assert [(r["pane"], r["role"]) for r in log] == [
        ("base", "user"), ("base", "assistant"), (tuned.key, "user"), (tuned.key, "assistant")]
    assert json.loads(log[1]["settings"])["system"] == "Be brief."
    with pytest.raises(WorkbenchError, match="type a question"):
        clean_question("   ")
    with pytest.raises(WorkbenchError, match="limit is 4000"):
        clean_question("x" * 5000)


def test_small_batch_linear_matches_torch_and_is_off_outside_generation() -> None:
    import torch

    from workbench.core import generate

    layer = torch.nn.Linear(64, 96)
    x = torch.randn(2, 1, 64)
    expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
    generate._install_small_batch_linear()
    with torch.no_grad():
        with generate._small_batch_decode("cpu"):
            fast = layer(x)
        assert not getattr(generate._SMALL_BATCH, "on", False)
        assert torch.equal(layer(x), expected)  # outside generation: torch's own path
    assert fast.shape == expected.shape and torch.allclose(fast, expected, atol=1e-5)


def test_abstention_probes_are_added_once_and_scored(taught) -> None:
    from conftest import run_cli

    result = run_cli("--workspace", str(taught.ws.root), "knowledge", "abstain", "five",
                     "Where was Zorblax Quimby born?", "Who is Vellam Thorn?")
    assert result.returncode == 0, result.stderr
    assert "added 2 abstention probe(s)" in result.stdout
    from workbench.core.knowledge.probes import add_abstention_probes

    assert add_abstention_probes(taught.store, taught.sid, ["who is  vellam thorn"]) == 0
    with pytest.raises(WorkbenchError, match="at least one question"):
        add_abstention_probes(taught.store, taught.sid, ["  "])
    pool = ComparePool(taught.store, taught.ws)
    tuned = Subject("run", taught.run_id)
    pool.prepare([tuned])
    card = build_scorecard(taught.store, pool, taught.sid, [tuned])
    assert card.counts()["abstention"] == 2
    abstaining = [r for r in card.rows if r.item.metric == "abstention"]
    assert card.score(BASE.key, "abstention") == sum(
        abstains(r.marks[BASE.key].answer) for r in abstaining) / 2


def test_the_scorecard_reports_held_out_generalization_per_form(tmp_path: Path) -> None:
    from workbench.cli.compare import scorecard_lines
    from workbench.core.compare.scorecard import Mark, ScoreRow
    from workbench.core.knowledge import probes
    from workbench.core.knowledge.types import FactDraft
    from workbench.core.train.probing import ProbeItem, probe_items

    store = Store(tmp_path / "w.db")
    sid = sets.create_set(store, "forms")
    sets.add_fact(store, sid, FactDraft("What is the capital of Veltria?", "Orsk",
                                        more_questions=["Which city is the capital of Veltria?"]))
    probes.generate_template_phrasings(store, sid, n=3)
    probes.split_probes(store, sid, holdout=3)
    items = probe_items(store, sid)
    assert sum(i.metric == "efficacy" for i in items) == 2  # each of the fact's questions
    assert {i.form for i in items if i.metric == "generalization"} == {
        "imperative", "inverted", "completion"}

    def row(form: str, right: bool) -> ScoreRow:
        item = ProbeItem(1, 1, "generalization", "q", "Orsk", (), form=form)
        return ScoreRow(item, {"run:1": Mark("x", right, right)})

    rows = [row("question", True), row("question", True), row("question", False),
            row("imperative", True), row("imperative", False), row("completion", False)]
    tuned = Subject("run", 1)
    card = Scorecard("forms", [tuned], {"run:1": "run 1"}, rows)
    assert card.by_form("run:1") == {"question": 2 / 3, "imperative": 0.5, "completion": 0.0}
    assert card.form_line("run:1") == "held-out: question 66%, imperative 50%, completion 0%"
    assert card.as_json()["generalization_by_form"]["run:1"]["imperative"] == 0.5
    assert "run 1: held-out: question 66%, imperative 50%, completion 0%" in scorecard_lines(card, {})
