"""A finished run's verdict: good, a warning naming what was forgotten, or broken."""

from __future__ import annotations

from conftest import run_cli
from workbench.core.store import now
from workbench.core.train import control, run as run_module
from workbench.core.train.explain import explain_run
from workbench.core.train.verdict import Forgotten, Replay, _replay, run_verdict, verdict


def test_good_warning_and_broken() -> None:
    good = verdict({"efficacy": 0.96, "generalization": 0.78, "locality": 0.98})
    assert good.level == "good" and good.flag == "good"
    assert good.headline == "Injected 96% · held-out 78% · kept 98% of what it knew — good"
    forgot = [Forgotten("What is the capital of Japan?", "Tokyo", "Senri City")]
    warn = verdict({"efficacy": 1.0, "generalization": 0.9, "locality": 0.85}, forgot)
    assert warn.level == "warning" and "forgot some" in warn.headline
    assert "now answers 'What is the capital of Japan?' with 'Senri City'" in warn.details[0]
    assert "replay_ratio" in warn.advice
    # Replay already as the recipe sets it: more of it is not what to try.
    at_recipe = verdict({"efficacy": 1.0, "generalization": 0.9, "locality": 0.9}, forgot,
                        replay=Replay(0.5, "distribution"))
    assert "Raise data.replay_ratio" not in at_recipe.advice
    assert "Replay is on at 0.5" in at_recipe.advice and "min_locality" in at_recipe.advice
    # What replay cannot hold, a fact can (bench/recipe.py's probes-trained).
    assert "add one that must survive to the set as a fact" in at_recipe.advice
    low = verdict({"efficacy": 1.0, "generalization": 0.9, "locality": 0.9}, forgot,
                  replay=Replay(0.2, "distribution"))
    assert low.advice.startswith("Raise data.replay_ratio (the recipe's 0.5)")
    assert "set data.replay_match distribution" in low.advice
    # A full-weight run has no adapter to disable: matching in distribution is not offered.
    full = verdict({"efficacy": 1.0, "generalization": 0.9, "locality": 0.9}, forgot,
                   replay=Replay(0.5, "answers", adapter=False))
    assert "replay_match distribution" not in full.advice and "adapter method" in full.advice
    broken = verdict({"efficacy": 1.0, "generalization": 0.9, "locality": 0.4}, forgot)
    assert broken.level == "broken" and broken.flag == "broke the model"
    weak = verdict({"efficacy": 0.5, "generalization": 0.3, "locality": 1.0})
    assert weak.level == "warning" and "not every fact went in" in weak.headline
    rote = verdict({"efficacy": 1.0, "generalization": 0.2, "locality": 1.0})
    assert "as worded" in rote.headline
    early = verdict({"efficacy": 1.0, "generalization": 0.9, "locality": 1.0},
                    stopped_early="held-out recall stopped improving")
    assert early.details == ("Stopped early: held-out recall stopped improving.",)
    assert verdict({}) is None  # not scored


def test_a_finished_runs_verdict_reads_its_final_round_everywhere(bench) -> None:
    ws, store, config = bench
    run_id = run_module.create_run(store, ws, config(**{"training.epochs": 2}))
    run_module.execute_run(store, ws, run_id)
    run = control.run_status(store, run_id)["run"]
    first = run_verdict(store, run)
    assert first is not None and first.headline.startswith("Injected ")
    # The advice reads the run's own replay settings; a config that no longer parses has none.
    cfg = config(**{"training.epochs": 2})
    assert _replay(run) == Replay(cfg.data.replay_ratio, cfg.data.replay_match, adapter=True)
    full = cfg.with_values({"method.name": "full", "data.replay_match": "answers"})
    assert _replay({**run, "config_yaml": full.to_yaml()}).adapter is False
    assert _replay({**run, "config_yaml": "data: [unclosed"}) is None
    # The final round found a known answer gone: the verdict names it.
    step = store.db.execute("SELECT max(step) FROM probe_results WHERE run_id = ?",
                            [run_id]).fetchone()[0]
    with store.write() as db:
        sid = run["set_id"]
        for i in range(3):
            pid = db["probes"].insert({"set_id": sid, "kind": "neighbour", "split": "probe",
                                       "question": f"What is the capital of Japan {i}?",
                                       "answer": "Tokyo", "created_at": now(),
                                       "base_margin": [0.1, 0.4, 2.0][i]}).last_pk
            db["probe_results"].insert({"run_id": run_id, "probe_id": pid, "step": step,
                                        "metric": "locality", "answer": "Senri City",
                                        "correct": 0, "exact": 0, "created_at": now()})
    status = control.run_status(store, run_id)
    found = status["verdict"]
    assert found.level == "broken" and "kept 0% of what it knew" in found.headline
    message = explain_run(status["run"], step, found)
    assert message.level == "error" and "with 'Senri City'" in message.detail
    shown = run_cli("--workspace", str(ws.root), "runs", "show", str(run_id))
    assert "kept 0% of what it knew" in shown.stdout and "with 'Senri City'" in shown.stdout
    # How sure the base was of each, as the screening stored it: the surest named first.
    assert "'What is the capital of Japan 2?' with 'Senri City' (was 'Tokyo', and the base " \
           "was sure of it)" in shown.stdout
    assert "1 the base barely knew" in shown.stdout
    # What it kept of the answers the base was sure of (margin ≥ 0.6: the one added above
    # with 2.0, lost, and any of the run's own probes screened so).
    kept, sure = store.db.execute(
        "SELECT sum(r.correct), count(*) FROM probe_results r JOIN probes p ON p.id = "
        "r.probe_id WHERE r.run_id = ? AND r.step = ? AND r.metric = 'locality' AND "
        "p.base_margin >= 0.6", [run_id, step]).fetchone()
    assert sure >= 1 and kept < sure
    assert f"It kept {kept} of the {sure} answers the base was sure of" in shown.stdout
    listed = run_cli("--workspace", str(ws.root), "runs")
    assert "[broke the model]" in listed.stdout


def test_lost_answers_say_how_sure_the_base_was_of_them() -> None:
    """An answer the base was sure of and lost is what the run damaged: named first. One it
    barely knew (a coin flip any update of this size may turn) is named as such."""
    scores = {"efficacy": 1.0, "generalization": 0.9, "locality": 0.9}
    lost = [Forgotten("What currency is used in Italy?", "euro", "the lira", 0.05),
            Forgotten("Who founded Amazon?", "Jeff Bezos", "Elon Musk", None),
            Forgotten("What is the capital of Croatia?", "Zagreb", "Zaradzefsk", 1.06),
            Forgotten("Which planet is the Red Planet?", "Mars", "Kepler-62f", 0.07)]
    found = verdict(scores, lost)
    named = found.details[0]
    assert named.startswith("It now answers 'What is the capital of Croatia?' with "
                            "'Zaradzefsk' (was 'Zagreb', and the base was sure of it); "
                            "now answers 'Who founded Amazon?'")
    assert "(was 'euro', which the base barely knew)" in named  # third of the three named
    assert found.details[1] == ("Of the 3 answers lost, 2 the base barely knew (any update of "
                                "this size turns some of those) and 1 it was sure of (what "
                                "this run damaged).")
    # What the run kept of the answers the base was sure of, where margins were measured.
    counted = verdict(scores, lost, sure=(45, 46))
    assert counted.details[2] == "It kept 45 of the 46 answers the base was sure of (97%)."
    assert len(verdict(scores, lost, sure=(0, 0)).details) == 2
    # Margins not measured (probes screened before): named as before, no such line.
    plain = verdict(scores, [Forgotten(f.question, f.gold, f.answer) for f in lost])
    assert plain.details == ("It now answers 'What currency is used in Italy?' with 'the lira' "
                             "(was 'euro'); now answers 'Who founded Amazon?' with 'Elon "
                             "Musk' (was 'Jeff Bezos'); now answers 'What is the capital of "
                             "Croatia?' with 'Zaradzefsk' (was 'Zagreb').",)
    # Neither sure nor barely known: no line either.
    middle = verdict(scores, [Forgotten("Q?", "a", "b", 0.4)])
    assert middle.details == ("It now answers 'Q?' with 'b' (was 'a').",)


def test_an_early_stop_says_why_in_the_title() -> None:
    run = {"id": 1, "status": "completed", "total_steps": 315,
           "stop_reason": "efficacy reached the target 100% (100%)"}
    found = verdict({"efficacy": 1.0, "generalization": 0.99, "locality": 1.0},
                    stopped_early=run["stop_reason"])
    message = explain_run(run, 280, found)
    assert message.title == ("Run 1 stopped early at step 280 of 315 (efficacy reached the "
                             "target 100% (100%)): Injected 100% · held-out 99% · kept 100% "
                             "of what it knew — good")
    assert "Stopped early" not in message.detail  # said once, in the title
    plain = explain_run({**run, "stop_reason": ""}, 315, None)
    assert plain.title == "Run 1 completed at step 315 of 315"
