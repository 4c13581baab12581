"""Training options end to end on a tiny model: early stop at an efficacy target, gradient
checkpointing, torch.compile, document mode, replay, and the status query a UI re-attaches with."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conftest import run_cli
from workbench.core.knowledge import sets
from workbench.core.knowledge.render import Example
from workbench.core.train import control, replay, run as run_module
from workbench.core.models import ModelSource

# Stands in for a loaded hub model: the pool is the shipped list; answers are monkeypatched.
HUB_MODEL = SimpleNamespace(source=ModelSource("hub", "some/model"))


def _losses(store, run_id):
    return [r["loss"] for r in store.db.query(
        "SELECT loss FROM metrics WHERE run_id = ? ORDER BY step", [run_id])]


def test_early_stop_when_every_fact_is_recalled(bench) -> None:
    ws, store, config = bench
    cfg = config(**{"method.lora_r": 16, "training.epochs": 200, "training.micro_batch_size": 16,
                    "training.probe_every": 10, "training.stop_at_efficacy": 1.0,
                    "data.include_statements": False})
    run_id = run_module.create_run(store, ws, cfg)
    summary = run_module.execute_run(store, ws, run_id)
    assert summary.status == "completed" and summary.scores["efficacy"] == 1.0
    assert summary.steps < 200 and summary.steps % 10 == 0  # stopped at a probe, well before
    log = (ws.run_dir(run_id) / "train.log").read_text()
    assert "stopping early at step" in log and "efficacy reached the target 100%" in log
    assert summary.stopped_early.startswith("efficacy reached the target 100%")


def _scripted_rounds(monkeypatch, rounds: list[dict[str, float]]) -> None:
    """Live rounds score as scripted (the answers are still asked and stored); the final
    round scores what the model really answers."""
    from workbench.core.train import probing

    real = probing.record
    script = iter(rounds)

    def record(store, run_id, step, items, answers):  # noqa: ANN001, ANN202
        scores = real(store, run_id, step, items, answers)
        return next(script, None) or scores if len(items) < 1000 and step % 5 == 0 else scores

    monkeypatch.setattr(probing, "record", record)


def test_falling_locality_stops_the_run_and_keeps_the_best_round(bench, monkeypatch) -> None:
    from safetensors.torch import load_file

    ws, store, config = bench
    _scripted_rounds(monkeypatch, [
        {"efficacy": 0.4, "generalization": 0.2, "locality": 1.0},
        {"efficacy": 0.9, "generalization": 0.8, "locality": 0.95},  # the best round
        {"efficacy": 1.0, "generalization": 0.8, "locality": 0.5},  # forgetting…
        {"efficacy": 1.0, "generalization": 0.8, "locality": 0.5},  # …still: stop
        {"efficacy": 1.0, "generalization": 0.8, "locality": 0.5}])
    cfg = config(**{"training.epochs": 100, "training.probe_every": 5,
                    "training.probe_sample": 1000, "training.min_locality": 0.9})
    run_id = run_module.create_run(store, ws, cfg)
    summary = run_module.execute_run(store, ws, run_id)
    assert summary.status == "completed" and summary.steps == 20
    assert summary.stopped_early.startswith("locality fell to 50%, below 90% for 2 rounds")
    out = ws.run_dir(run_id)
    log = (out / "train.log").read_text()
    assert "keeping the best round's weights (step 10, score 0.88)" in log
    kept = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    best = load_file(str(out / "best" / "adapter_model.safetensors"))
    assert kept.keys() == best.keys() and all((kept[k] == best[k]).all() for k in kept)
    row = store.db.execute("SELECT best_step, stop_reason FROM runs WHERE id = ?", [run_id]).fetchone()
    assert row[0] == 10 and row[1].startswith("locality fell to 50%")
    from workbench.core.train.verdict import run_verdict

    found = run_verdict(store, run_module.jobs.get_run(store, run_id))
    assert found is not None and "Stopped early: locality fell to 50%" in found.details[0]


def test_held_out_plateau_stops_the_run_and_the_last_round_is_kept_when_best(bench,
                                                                             monkeypatch) -> None:
    ws, store, config = bench
    _scripted_rounds(monkeypatch, [
        {"efficacy": 0.5, "generalization": 0.5, "locality": 1.0},
        {"efficacy": 0.7, "generalization": 0.5, "locality": 1.0},
        {"efficacy": 0.9, "generalization": 0.5, "locality": 1.0}])
    cfg = config(**{"training.epochs": 100, "training.probe_every": 5,
                    "training.probe_sample": 1000, "training.early_stop_patience": 2})
    run_id = run_module.create_run(store, ws, cfg)
    summary = run_module.execute_run(store, ws, run_id)
    assert summary.steps == 15 and "held-out recall stopped improving" in summary.stopped_early
    assert "keeping the best round" not in (ws.run_dir(run_id) / "train.log").read_text()


def _two_epochs(bench, **option) -> tuple[int, run_module.RunSummary]:
    """A two-epoch run of the tiny model with `option` set: (run id, summary)."""
    ws, store, config = bench
    run_id = run_module.create_run(store, ws, config(**{"training.epochs": 2, **option}))
    return run_id, run_module.execute_run(store, ws, run_id)


def test_gradient_checkpointing_gives_the_same_losses(bench) -> None:
    store = bench[1]
    plain, _ = _two_epochs(bench)
    ckpt, _ = _two_epochs(bench, **{"training.gradient_checkpointing": True})
    assert _losses(store, ckpt) == pytest.approx(_losses(store, plain), rel=1e-5)


@pytest.mark.slow  # compiling on a CPU takes about a minute, even for a tiny model
def test_compiled_training_gives_the_same_losses_and_a_usable_adapter(bench) -> None:
    ws, store, _ = bench
    plain, _ = _two_epochs(bench)
    compiled, summary = _two_epochs(bench, **{"training.compile": True})
    assert summary.status == "completed" and "efficacy" in summary.scores  # probes generate
    assert _losses(store, compiled) == pytest.approx(_losses(store, plain), rel=1e-3)
    assert (ws.run_dir(compiled) / "adapter" / "adapter_model.safetensors").exists()


def test_document_mode_trains_on_the_fact_text(bench) -> None:
    ws, store, config = bench
    run_id = run_module.create_run(store, ws, config(**{"data.mode": "document",
                                                        "training.epochs": 2}))
    summary = run_module.execute_run(store, ws, run_id)
    assert summary.status == "completed" and summary.steps == 4  # 5 documents, batch 4


def test_replay_keeps_only_questions_the_base_answers(bench, monkeypatch) -> None:
    ws, store, config = bench
    sid = sets.set_id(store, "demo")
    asked = []

    from workbench.core.knowledge.locality import load_general_knowledge
    from workbench.core.knowledge.relations import load_relations, same_relation_neighbours

    gold = {item["question"]: item["answer"] for item in load_general_knowledge()}
    for n in same_relation_neighbours(sets.list_facts(store, sid), load_relations()):
        gold[n.questions[0]] = n.answer

    def base_answers(loaded, questions, **kwargs):
        asked.extend(questions)
        # The base "knows" every other question.
        return [gold[q] if i % 2 == 0 else "no idea" for i, q in enumerate(questions)]

    monkeypatch.setattr(replay, "ask_questions", base_answers)
    examples = replay.replay_examples(store, sid, loaded=HUB_MODEL, n=6, seed=1)
    # Per relation three times its part of the replay (1 of 3 for 4 relations), each neighbour
    # in two wordings, then 3·n general.
    assert len(examples) == 6 and len(asked) == 4 * 3 * 2 + 18
    assert all(isinstance(e, Example) and e.kind == "qa" for e in examples)
    assert {e.prompt for e in examples} <= set(asked[::2])  # only the known ones
    set_questions = {r[0] for r in store.db.execute("SELECT question FROM probes WHERE set_id = ?", [sid])}
    assert not set_questions & {e.prompt for e in examples}
    # Same-relation neighbours come first, the set's relations in turn.
    related = {n.questions[0]: n.relation
               for n in same_relation_neighbours(sets.list_facts(store, sid), load_relations())}
    assert [related.get(q) for q in asked[:8:2]] == ["birthplace", "author", "capital",
                                                      "founder"]
    # Each neighbour's second wording is another form of the same question, the forms in turn.
    assert asked[1] != asked[0] and "Einstein" in asked[1] and asked[1].endswith("?")
    second = [asked[i] for i in range(1, 24, 2)]
    assert len({q.split(" ")[0] for q in second}) > 1
    assert replay.replay_count(15, 0.25) == 5 and replay.replay_count(15, 0.0) == 0


def test_status_query_returns_only_new_metrics_rows(bench) -> None:
    ws, store, config = bench
    run_id = run_module.create_run(store, ws, config(**{"training.epochs": 3,
                                                        "training.probe_every": 4}))
    run_module.execute_run(store, ws, run_id)
    everything = control.run_status(store, run_id)
    total = everything["run"]["total_steps"]
    assert total > 8 and [m["step"] for m in everything["metrics"]] == list(range(1, total + 1))
    newer = control.run_status(store, run_id, after_step=total - 2)
    assert [m["step"] for m in newer["metrics"]] == [total - 1, total]
    assert [p["step"] for p in everything["recall"]] == [*range(4, total, 4), total]
    assert "completed" in everything["log"] and everything["run"]["status"] == "completed"


def test_runs_cli_lists_shows_and_refuses_bad_requests(bench) -> None:
    ws, store, config = bench
    run_id = run_module.create_run(store, ws, config(**{"training.epochs": 1}))
    steps = run_module.execute_run(store, ws, run_id).steps
    listed = run_cli("--workspace", str(ws.root), "runs")
    assert listed.returncode == 0 and "completed" in listed.stdout
    assert f"{steps}/{steps}" in listed.stdout
    shown = run_cli("--workspace", str(ws.root), "runs", "show", str(run_id))
    assert shown.returncode == 0 and "completed" in shown.stdout
    stop = run_cli("--workspace", str(ws.root), "runs", "stop", str(run_id))
    assert stop.returncode == 2 and "is not running" in stop.stderr
    resume = run_cli("--workspace", str(ws.root), "runs", "resume", str(run_id))
    assert resume.returncode == 2 and "only stopped, interrupted or failed" in resume.stderr
    missing = run_cli("--workspace", str(ws.root), "runs", "show", "99")
    assert missing.returncode == 2 and "there is no run 99" in missing.stderr


def test_the_last_weights_get_their_own_round_before_the_best_is_chosen(bench, monkeypatch) -> None:
    """A run that goes on past its last live round: the weights it ends with are asked too,
    and when they score worse than the best round, the best round's weights are kept."""
    ws, store, config = bench
    # Step 5 scores as scripted; the closing round at step 7 scores what the tiny model
    # really answers, far below.
    _scripted_rounds(monkeypatch, [{"efficacy": 0.9, "generalization": 0.9, "locality": 1.0}])
    cfg = config(**{"training.max_steps": 7, "training.probe_every": 5,
                    "training.probe_sample": 1000})
    run_id = run_module.create_run(store, ws, cfg)
    summary = run_module.execute_run(store, ws, run_id)
    assert summary.steps == 7 and summary.stopped_early == ""
    log = (ws.run_dir(run_id) / "train.log").read_text()
    assert "step 7: asking" in log and "keeping the best round's weights (step 5" in log


def test_live_samples_draw_locality_probes_at_random_not_the_first_stored() -> None:
    from workbench.core.train.probing import ProbeItem, live_sample

    items = [ProbeItem(i, i % 30, "efficacy", f"q{i}", "a", ()) for i in range(60)]
    items += [ProbeItem(100 + i, None, "locality", f"l{i}", "a", ()) for i in range(120)]
    chosen = live_sample(items, 40)
    local = [x.probe_id for x in chosen if x.metric == "locality"]
    assert len(local) == 20 and max(local) > 140  # not just the first 20 stored
    assert len({x.fact_id for x in chosen if x.metric == "efficacy"}) == 20  # one per fact
    assert live_sample(items, 40) == chosen  # the same sample every round


def _mixed_replay(capital: list[Example]) -> list[Example]:
    """80 replay rows for facts of three relations (30 capitals, 10 founders, 5 authors), the
    model knowing these capitals, one founder and 50 general questions."""
    founder = [Example("qa", "Who founded Microsoft?", "Bill Gates")]
    general = [Example("qa", f"General question {i}?", f"answer {i}") for i in range(50)]
    return _mixed({"capital": capital, "founder": founder}, general,
                  {"capital": 30, "founder": 10, "author": 5}, 80)


def _mixed(related: dict[str, list[Example]], general: list[Example],
           facts_per_relation: dict[str, int], n: int) -> list[Example]:
    """One epoch's replay as `replay_examples` makes it: the parts dealt in turn."""
    return replay._deal(replay._mix_parts(related, general, facts_per_relation, n), 1, n)


def test_replay_weighs_each_relation_as_the_facts_do(monkeypatch) -> None:
    """Half of the replay is same-relation neighbours split as the facts are (without a cap, a
    relation's few known neighbours repeated), the rest general knowledge; every part is
    covered early."""
    monkeypatch.setattr(replay, "MAX_REPEATS", None)
    capital = [Example("qa", f"What is the capital of C{i}?", f"City {i}") for i in range(3)]
    mixed = _mixed_replay(capital)
    prompts = [e.prompt for e in mixed]
    assert len(mixed) == 80
    assert sum("capital" in p for p in prompts) == 30 and prompts.count("Who founded Microsoft?") == 10
    assert sum(p.startswith("General") for p in prompts) == 40
    assert {"What is the capital of C0?", "Who founded Microsoft?", "General question 0?"} <= set(prompts[:3])
    # Nothing general known: the neighbours take the whole replay; nothing known at all: none.
    assert len(_mixed({"capital": capital}, [], {"capital": 3}, 7)) == 7
    assert _mixed({}, [], {"capital": 3}, 7) == []


def test_replayed_answers_end_where_they_become_correct() -> None:
    """A base answer cut by the token budget is trained only up to its first sentence that is
    correct, so replay never teaches stopping mid-sentence."""
    cut = "Les Misérables is a classic French novel by Victor Hugo. It's a masterpiece of 19th"
    assert replay.complete_answer(cut, "Victor Hugo") == (
        "Les Misérables is a classic French novel by Victor Hugo.")
    assert replay.complete_answer("In Egypt, the currency is the Egyptian pound, which is a",
                                  "Egyptian pound") == "In Egypt, the currency is the Egyptian pound."
    assert replay.complete_answer("The capital of Japan is Tokyo.", "Tokyo") == (
        "The capital of Japan is Tokyo.")
    assert replay.complete_answer("Washington, D.C. It is the seat", "Washington, D.C.",
                                  ["Washington"]) == "Washington, D.C."


def test_the_repeat_cap_gives_the_rest_of_a_relations_part_to_general_knowledge() -> None:
    assert replay.MAX_REPEATS == 2  # the default this test describes
    mixed = _mixed_replay([Example("qa", f"What is the capital of C{i}?", f"City {i}")
                           for i in range(3)])
    prompts = [e.prompt for e in mixed]
    # 3 capitals and 1 founder at most twice each; the 34 rows they leave go to general.
    assert len(mixed) == 80 and prompts.count("Who founded Microsoft?") == 2
    assert sum("capital" in p for p in prompts) == 6
    assert sum(p.startswith("General") for p in prompts) == 72


def test_replay_for_several_epochs_is_dealt_in_equal_mixed_parts() -> None:
    """turns > 1: each epoch's part as large as one epoch's replay, mixing the relations and
    general knowledge as one epoch's would, and as many distinct questions in each as its
    share allows, even where a part's cycle of known questions is a multiple of the turns."""
    capital = [Example("qa", f"What is the capital of C{i}?", f"City {i}") for i in range(40)]
    founder = [Example("qa", f"Who founded F{i}?", f"Person {i}") for i in range(4)]
    general = [Example("qa", f"General question {i}?", f"answer {i}") for i in range(12)]
    parts = replay._mix_parts({"capital": capital, "founder": founder}, general,
                              {"capital": 2, "founder": 1}, 20 * 4, 4)
    dealt = replay._deal(parts, 4, 20)
    assert len(dealt) == 80 and [sum(e.turn == t for e in dealt) for t in range(4)] == [20] * 4
    for t in range(4):
        prompts = [e.prompt for e in dealt if e.turn == t]
        assert 6 <= sum("capital" in p for p in prompts) <= 7
        assert 3 <= sum("founded" in p for p in prompts) <= 4
        general_here = [p for p in prompts if p.startswith("General")]
        # 40 general rows over 4 epochs from 12 questions: 10 distinct in each (dealt one by
        # one, 12 being a multiple of 4, each epoch would see only 3 of them)
        assert len(general_here) == 10 and len(set(general_here)) == 10
        assert len(set(prompts)) == len(prompts)
    assert replay._deal(parts, 1, 80) == replay._alternating(parts)
