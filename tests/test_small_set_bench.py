"""The small-set benchmark's table: each run's scores under its seed, and the known answers
it lost counted by how sure the base was of them."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import load_bench_script


@pytest.fixture(scope="module")
def small() -> Any:
    return load_bench_script("small_set")


def _run(variant: str, seed: int, locality: float, lost: list[dict[str, Any]]) -> dict[str, Any]:
    return {"variant": variant, "seed": seed, "run": 1, "status": "completed", "steps": 60,
            "scores": {"efficacy": 1.0, "generalization": 1.0, "locality": locality},
            "seconds": 168.0, "epochs": 12, "overrides": {}, "lost": lost,
            "lost_sure": sum(x["margin"] is not None and x["margin"] >= 0.6 for x in lost),
            "lost_unsure": sum(x["margin"] is not None and x["margin"] < 0.25 for x in lost),
            "machine": "cpu", "date": "2026-12-04"}


def test_rows_by_variant_then_seed_and_what_each_lost(small) -> None:
    croatia = {"question": "What is the capital of Croatia?", "gold": "Zagreb",
               "answer": "The capital of Croatia is Zararnovac.", "margin": 1.06}
    old = {"question": "Who wrote 1984?", "gold": "George Orwell", "answer": "Jorren",
           "margin": None}  # screened before margins were measured
    text = small.markdown({"runs": {
        "same-replay@42": _run("same-replay", 42, 0.9, [croatia, old]),
        "default@1": _run("default", 1, 0.93, []),
        "default@42": _run("default", 42, 0.96, [])},
        "prepare_seconds": 240, "prepared": {"train": 70}, "facts": 6})
    rows = [line for line in text.splitlines() if line.startswith("| default")
            or line.startswith("| same-replay")]
    assert [r.split(" | ")[2] for r in rows] == ["42", "1", "42"]  # default first, 42 first
    assert "| 96% | 0 | 0 | 60 | 2.8 min |" in rows[0]
    assert "| 90% | 1 | 0 | 60 | 2.8 min |" in rows[2]
    assert ("- same-replay, seed 42: What is the capital of Croatia? → 'The capital of "
            "Croatia is Zararnovac.' (1.06); Who wrote 1984?") in text
    assert "- default, seed 1: none" in text
    assert "Set preparation, once: 4.0 min;" in text
