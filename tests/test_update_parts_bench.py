"""The update-parts benchmark's cuts and its results file: a random update of the trained one's
size, a partial re-run that keeps what it did not measure again, and the days its measures
span."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from conftest import load_bench_script


@pytest.fixture(scope="module")
def parts() -> Any:
    return load_bench_script("update_parts")


def test_random_cut_has_the_updates_rank_and_size(parts) -> None:
    a, b = torch.randn(4, 12), torch.randn(9, 4) * 0.01
    new_a, new_b = parts._cut("random")("model.layers.3.mlp.up_proj", a, b)
    assert new_a.shape == a.shape and new_b.shape == b.shape
    torch.testing.assert_close(torch.linalg.matrix_norm(new_b @ new_a),
                               torch.linalg.matrix_norm(b @ a))
    cosine = torch.nn.functional.cosine_similarity((new_b @ new_a).flatten(), (b @ a).flatten(), 0)
    assert abs(cosine) < 0.5  # not the trained direction
    again = parts._cut("random")("model.layers.3.mlp.up_proj", a, b)
    torch.testing.assert_close(again[1] @ again[0], new_b @ new_a)  # seeded by the module
    other = parts._cut("random")("model.layers.4.mlp.up_proj", a, b)
    assert not torch.allclose(other[1] @ other[0], new_b @ new_a)
    draw = parts._cut("random-2")("model.layers.3.mlp.up_proj", a, b)  # another draw
    assert not torch.allclose(draw[1] @ draw[0], new_b @ new_a)


def test_a_partial_rerun_keeps_the_recorded_cuts_and_average(parts, tmp_path,
                                                             monkeypatch) -> None:
    def point(cut: str, locality: float) -> dict[str, Any]:
        return {"cut": cut, "locality": locality}

    recorded = {"runs": [{"variant": "fp32", "run": 6,
                          "points": [point("whole", 0.9), point("rank-8", 0.9)]}],
                "average": {"variants": ["fp32"], "runs": [6], "points": []}}
    (tmp_path / "update_parts.json").write_text(json.dumps(recorded))
    monkeypatch.setattr(parts, "RESULTS", tmp_path)
    now = {"runs": [{"variant": "fp32", "run": 6,
                     "points": [point("random", 0.95), point("whole", 0.91)]}]}
    parts._keep_recorded(now)
    assert [(p["cut"], p["locality"]) for p in now["runs"][0]["points"]] == [
        ("whole", 0.91), ("rank-8", 0.9), ("random", 0.95)]  # CUTS order, the new measure wins
    assert now["average"] == recorded["average"]
    # Another run of the same variant (retrained): nothing recorded of it is carried over.
    retrained = {"runs": [{"variant": "fp32", "run": 9, "points": [point("random", 0.95)]}]}
    parts._keep_recorded(retrained)
    assert [p["cut"] for p in retrained["runs"][0]["points"]] == ["random"]
    assert "average" not in retrained
    # A run not measured this time keeps its place; a new one comes after.
    recorded["runs"].append({"variant": "fp32-seed-1", "run": 7, "points": [point("whole", 0.93)]})
    (tmp_path / "update_parts.json").write_text(json.dumps(recorded))
    some = {"runs": [{"variant": "fp32-seed-1", "run": 7, "points": [point("random", 0.9)]},
                     {"variant": "other", "run": 8, "points": [point("whole", 0.8)]}]}
    parts._keep_recorded(some)
    assert [(r["variant"], [p["cut"] for p in r["points"]]) for r in some["runs"]] == [
        ("fp32", ["whole", "rank-8"]), ("fp32-seed-1", ["whole", "random"]), ("other", ["whole"])]
    assert some["average"] == recorded["average"]


def test_random_summary_compares_the_trained_updates_with_random_ones(parts) -> None:
    runs = [{"variant": "a", "run": 1, "points": [{"cut": "whole", "locality": 0.90},
                                                  {"cut": "random", "locality": 0.94},
                                                  {"cut": "random-half", "locality": 0.99}]},
            {"variant": "b", "run": 2, "points": [{"cut": "whole", "locality": 0.94},
                                                  {"cut": "random-2", "locality": 0.96}]}]
    line = parts._random_summary(runs)[-1]
    assert "kept 95.0% of the known answers on average (2 measures" in line
    assert "the trained updates 92.0% (2 runs)" in line and "3.0 points more" in line
    assert parts._random_summary([{"points": [{"cut": "whole", "locality": 0.9}]}]) == []


def test_the_header_gives_the_days_the_recorded_measures_span(parts) -> None:
    one_day = {"date": "2026-12-04", "runs": [{"points": [{"cut": "whole", "date": "2026-12-04"},
                                                         {"cut": "random"}]}]}
    assert parts._dates(one_day) == "2026-12-04"  # undated measures count as the file's day
    one_day["runs"][0]["points"][0]["date"] = "2026-12-03"
    assert parts._dates(one_day) == "measured 2026-12-03 to 2026-12-04"
    one_day["average"] = {"date": "2026-12-05"}
    assert parts._dates(one_day) == "measured 2026-12-03 to 2026-12-05"
