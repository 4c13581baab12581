"""The update-reach benchmark's results file: each run's row, and a setting's reach against
the default's taken over each one's seeds."""

from __future__ import annotations

import json
from typing import Any

from conftest import load_bench_script


def run(variant: str, change: float, kl: float, along: float = 0.02) -> dict[str, Any]:
    group = {"questions": 3, "layer_change": change, "layer_change_last": change / 2,
             "first_token_kl": kl, "first_token_kl_median": kl / 2, "first_token_moved": 0.1,
             "answer_kl": along, "answer_kl_max": along * 8}
    return {"variant": variant, "run": 1, "locality": group, "facts": group}


def test_rows_and_the_reach_against_the_default_over_seeds(tmp_path, monkeypatch) -> None:
    reach = load_bench_script("update_reach")
    (tmp_path / "recipe.json").write_text(json.dumps(
        {"runs": {"default": {"scores": {"locality": 0.94}}}}))
    monkeypatch.setattr(reach, "RESULTS", tmp_path)
    result = {"machine": "CPU", "date": "2026-12-04",
              "runs": [run("default", 2e-3, 0.08), run("default-seed-1", 4e-3, 0.1),
                       run("penalised", 1e-4, 0.06, 0.01),
                       run("penalised-seed-1", 2e-4, 0.12, 0.01)]}
    text = reach.markdown(result)
    assert ("| `default` | 94% | 2.00e-03 (1.00e-03) | 2.00e-03 (1.00e-03) | 0.080 (0.040) "
            "| 0.100 | 0.020 (0.160) |") in text
    assert "| `penalised` | — |" in text  # no recipe row: its locality is not invented
    # Means over seeds: 3e-3 against 1.5e-4 (20x); KL 0.09 against 0.09 (1.00x); along the
    # answers 0.02 against 0.01 (2x).
    assert ("`penalised` (over its seeds) moved the layers' output at locality questions "
            "20.0x less than `default` (over its seeds), their first answer token's "
            "distribution 1.00x less and the distributions along the base's answers 2.00x "
            "less (KL).") in text
    # Without the default's runs there is nothing to compare with.
    assert "less than" not in reach.markdown(result | {"runs": result["runs"][2:]})
