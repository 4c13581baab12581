"""Locality that measures what users mean: a known question is kept when the tuned model still
answers it correctly ("unchanged" text is the stricter view beside it)."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.core.knowledge import sets
from workbench.core.store import Store, now
from workbench.core.train import history, probing
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
