"""The recipe benchmark's spread between seeds: computed from the recorded pairs, not typed in,
so the noise a candidate must beat stays true as rows are added."""

from __future__ import annotations

import math
from typing import Any

import pytest

from conftest import load_bench_script


@pytest.fixture(scope="module")
def recipe() -> Any:
    return load_bench_script("recipe")


def _row(name: str, locality: float, machine: str = "cpu A") -> dict[str, Any]:
    return {"variant": name, "machine": machine, "scores": {"locality": locality},
            "config": {"shrink_update": True}, "consistent_locality": True,
            "anchors": {}, "precision": "fp32",
            "shrink": {"judged_on": "a question per fact and metric"}}


def test_seed_pairs_take_one_setting_under_both_seeds_on_one_machine(recipe) -> None:
    runs = {"a": _row("a", 0.90), "a-seed-1": _row("a-seed-1", 0.94),
            "b": _row("b", 0.95), "b-seed-1": _row("b-seed-1", 0.80, machine="cpu B"),
            "c": _row("c", 0.92)}
    assert recipe.seed_pairs({"runs": runs}) == [("a", 0.90, 0.94)]


def test_the_spread_is_the_pairs_root_mean_square_over_root_two(recipe) -> None:
    runs = {"a": _row("a", 0.90), "a-seed-1": _row("a-seed-1", 0.94),
            "b": _row("b", 0.96), "b-seed-1": _row("b-seed-1", 0.93)}
    r = {"runs": runs, "prepared": {"kept_general": 60, "kept_neighbours": 40}}
    text = "\n".join(recipe._seed_spread(r))
    sigma = math.sqrt((0.04 ** 2 + 0.03 ** 2) / 2) / math.sqrt(2)
    assert f"about {sigma * 100:.1f} points" in text and "| a | 90% | 94% | 4.0 points |" in text
    assert "the 100 probes alone" in text
    assert recipe._seed_spread({"runs": {"a": runs["a"], "a-seed-1": runs["a-seed-1"]},
                                "prepared": r["prepared"]}) == []  # one pair shows no spread


def test_rows_that_measured_it_show_what_they_kept_of_the_sure_answers(recipe) -> None:
    runs = {"a": {**_row("a", 0.90), "sure_kept": [45, 46]}, "b": _row("b", 0.94),
            "c": {**_row("c", 0.92), "sure_kept": [0, 0]}}  # c: no margins screened
    text = "\n".join(recipe._sure_kept({"runs": runs}))
    assert "| a | 90% | 97% (45 of 46) |" in text and "| b |" not in text and "| c |" not in text
    assert recipe._sure_kept({"runs": {"b": runs["b"]}}) == []  # none measured: no section


def test_the_bounds_that_train_on_the_probes_are_no_seed_pair(recipe) -> None:
    runs = {"a": _row("a", 0.90), "a-seed-1": _row("a-seed-1", 0.94),
            "probes-trained": _row("probes-trained", 0.99),
            "probes-trained-seed-1": _row("probes-trained-seed-1", 0.97)}
    assert recipe.seed_pairs({"runs": runs}) == [("a", 0.90, 0.94)]


@pytest.mark.parametrize("as_facts", [False, True])
def test_the_probes_bound_puts_each_probe_in_every_epochs_part(recipe, monkeypatch,
                                                                 as_facts) -> None:
    """Each locality probe once per epoch's part, in place of a drawn row (the replay's size
    unchanged), replayed or trained as a fact; the draw is put back after the run."""
    from workbench.core.knowledge.render import Example
    from workbench.core.train import probing, replay

    def draw(store, sid, loaded, n, *, turns=1, seed=0, **rest):
        return [Example("qa", f"drawn {t}-{k}", "answer.", replay=True, turn=t)
                for t in range(turns) for k in range(n)]

    probes = [probing.ProbeItem(i, None, "locality", f"Known {i}?", "Gold", (),
                                reference=f"It is Gold, said {i}. More.") for i in range(3)]
    fact = probing.ProbeItem(9, 1, "efficacy", "A fact?", "New", ())
    monkeypatch.setattr(replay, "replay_examples", draw)
    monkeypatch.setattr(probing, "probe_items", lambda store, sid, locality: [fact, *probes])
    with recipe.probes_replayed(as_facts=as_facts):
        examples = replay.replay_examples(None, 1, None, 5, turns=2, seed=3)
    assert replay.replay_examples is draw
    assert len(examples) == 10
    for turn in (0, 1):
        part = [e for e in examples if e.turn == turn]
        placed = [e for e in part if e.prompt.startswith("Known")]
        assert len(part) == 5 and sorted(e.prompt for e in placed) == [p.question for p in probes]
        # The base's own answer, cut after the sentence that makes it right.
        assert {e.answer for e in placed} == {f"It is Gold, said {i}." for i in range(3)}
        assert all(e.replay is not as_facts for e in placed)
