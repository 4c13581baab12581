"""The replay-hold benchmark's results file: each run's row beside the recipe bench's own
locality figure, none invented for a run the recipe bench has no row for."""

from __future__ import annotations

import json
from typing import Any

from conftest import load_bench_script


def run(variant: str, kept: float, moved: float, to_set: float) -> dict[str, Any]:
    return {"variant": variant, "run": 1, "replayed": 223, "replayed_kept": kept,
            "replayed_lost": [], "first_token_moved": moved, "moved_to_set_answers": to_set}


def test_rows_beside_the_recipe_benchs_locality(tmp_path, monkeypatch) -> None:
    hold = load_bench_script("replay_hold")
    (tmp_path / "recipe.json").write_text(json.dumps(
        {"runs": {"default": {"scores": {"locality": 0.944}}}}))
    monkeypatch.setattr(hold, "RESULTS", tmp_path)
    result = {"machine": "CPU", "date": "2026-12-05", "base_replayed_kept": 1.0,
              "runs": [run("default", 0.87, 0.111, 0.037), run("sharper", 0.96, 0.12, 0.02)]}
    text = hold.markdown(result)
    assert "the set's 223 distinct replayed questions (the base answers 100% of them" in text
    assert "| `default` | 87% | 94% | 0.111 | 0.037 |" in text
    assert "| `sharper` | 96% | — | 0.120 | 0.020 |" in text
