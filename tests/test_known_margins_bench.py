"""The known-answer margin benchmark's tally: probes in fifths by the base's margin, each
fifth's losses counted per kind of update over the recorded measures."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import load_bench_script


@pytest.fixture(scope="module")
def margins() -> Any:
    return load_bench_script("known_margins")


def test_losses_are_counted_in_fifths_by_margin(margins) -> None:
    margin = {f"q{i}": i / 10 for i in range(10)}  # q0 the least sure, q9 the surest
    lost = {"trained": [["q0", "q1", "q9"], ["q0"]], "random": [["q1"]]}
    rows = margins.by_fifth(margin, lost)
    assert [r["probes"] for r in rows] == [2] * 5
    assert rows[0]["margins"] == [0.0, 0.1] and rows[4]["margins"] == [0.8, 0.9]
    assert rows[0]["trained"] == {"lost": 3, "rate": 3 / 4}  # q0 twice, q1 once, of 2×2 asked
    assert rows[0]["random"] == {"lost": 1, "rate": 1 / 2}
    assert rows[4]["trained"] == {"lost": 1, "rate": 1 / 4}
    assert [r["random"]["lost"] for r in rows[1:]] == [0, 0, 0, 0]
    text = margins.markdown({"machine": "cpu", "date": "2026-12-04", "probes": 10,
                             "measures": {"trained": 2, "random": 1}, "fifths": rows,
                             "trained": ["`a` (run 1)", "`b` (run 2)"]})
    assert "2 trained updates (`a` (run 1), `b` (run 2):" in text
    assert "Of the 4 answers lost by the trained updates, 3 (75%) were in the fifth" in text
    assert "| 1 (2 probes) | 0.00 to 0.10 | 3 | 75.0% | 1 | 50.0% |" in text
