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
