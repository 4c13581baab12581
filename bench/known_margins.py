"""Are the known answers an update loses the ones the base model was least sure of? If so, the
~5% that even a random update of the trained one's size loses (`bench/update_parts.py`) is
this model's fragility, not the recipe's doing, and no recipe keeps those answers for sure.

For each locality probe of the recipe bench's set, the base's margin on its own answer
(`workbench/core/knowledge/certainty.py`: its reply teacher-forced after the chat prompt, and
at each token up to where the gold answer is complete, the log-probability of that token
minus the best other token's; the answer's margin is the smallest, in nats; near 0: a coin
flip at one token). The probes are split into fifths by margin, and each fifth's losses are counted over
the recorded measures: the trained updates (`bench/update_parts.py`'s whole adapters, and the
finished runs in the recipe bench's workspace) and random updates of the trained one's size.

    python bench/recipe.py fp32              # the prepared set (and a run to read)
    python bench/known_margins.py            # bench/results/known_margins.*
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results_io import RESULTS, write_results  # noqa: E402

FIFTHS = 5
# update_parts cuts that are random updates of the trained one's own size
RANDOM_SAME_SIZE = ("random", "random-2")


def margins(loaded: Any, items: list[Any]) -> dict[str, float]:
    """question → the base's margin on its own reply (`knowledge/certainty.py`)."""
    from workbench.core.knowledge.certainty import answer_margins

    found = answer_margins(loaded, [(i.question, i.reference, i.answer, i.aliases)
                                    for i in items])
    return {i.question: m for i, m in zip(items, found, strict=True)}


def lost_lists() -> tuple[dict[str, list[list[str]]], list[str]]:
    """"trained" and "random" → the known answers lost, one list per recorded measure; and
    the names of the trained updates measured."""
    from workbench.core.data import runs
    from workbench.core.store import Store
    from workbench.core.train import history, probing
    from workbench.core.workspace import resolve_workspace

    from recipe import SCRATCH

    parts = json.loads((RESULTS / "update_parts.json").read_text())
    found: dict[str, list[list[str]]] = {"trained": [], "random": []}
    names: list[str] = []
    for run in parts["runs"]:
        for p in run["points"]:
            if p["cut"] == "whole":
                found["trained"].append(p["lost"])
                names.append(f"`{run['variant']}` (its saved adapter)")
            elif p["cut"] in RANDOM_SAME_SIZE:
                found["random"].append(p["lost"])
    store = Store(resolve_workspace(SCRATCH / "ws").db_path)
    for run in reversed(runs.listing(store, None)):  # oldest first
        step = history.last_probed_step(store, run["id"])
        if run["status"] == "completed" and step is not None:
            found["trained"].append(
                [q for q, *_ in probing.wrong_locality(store, run["id"], step)])
            names.append(f"`{run['name'].removeprefix('recipe bench: ')}` (run {run['id']})")
    return found, names


def by_fifth(margin: dict[str, float], lost: dict[str, list[list[str]]]) -> list[dict[str, Any]]:
    """The probes in fifths by margin (lowest first), each with its losses per kind of update:
    lost count, and the share of (probes × measures)."""
    order = sorted(margin, key=margin.get)
    rows = []
    for k in range(FIFTHS):
        part = order[k * len(order) // FIFTHS:(k + 1) * len(order) // FIFTHS]
        members = set(part)
        row: dict[str, Any] = {"fifth": k + 1, "probes": len(part),
                               "margins": [margin[part[0]], margin[part[-1]]]}
        for kind, measures in lost.items():
            n = sum(len(members & set(m)) for m in measures)
            row[kind] = {"lost": n, "rate": n / (len(part) * len(measures)) if measures else None}
        rows.append(row)
    return rows


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Which known answers an update loses: the base's margin (SmolLM2-135M-Instruct)",
        "",
        f"{r['machine']}; {r['date']}. The recipe bench's {r['probes']} locality probes, split "
        "into fifths by the base's margin on its own answer (the smallest log-probability gap, "
        "in nats, between its token and the best other one, up to where the answer is "
        "complete). Losses counted over the recorded measures: "
        f"{r['measures']['trained']} trained updates ({', '.join(r['trained'])}: "
        "`bench/update_parts.py`'s whole adapters and the finished runs in the recipe bench's "
        "workspace) and "
        f"{r['measures']['random']} random updates of the trained one's size. "
        "`python bench/known_margins.py`. A coarse measure: a small gap between two "
        "wordings that both end right (\"The capital…\" or the name at once) counts as small "
        "too.",
        "",
        "| fifth (by margin) | margins (nats) | trained: lost | of asked | random: lost | "
        "of asked |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["fifths"]:
        t, x = row["trained"], row["random"]
        lines.append(f"| {row['fifth']} ({row['probes']} probes) | {row['margins'][0]:.2f} to "
                     f"{row['margins'][1]:.2f} | {t['lost']} | {t['rate']:.1%} | {x['lost']} | "
                     f"{x['rate']:.1%} |")
    for kind in ("trained", "random"):
        total = sum(row[kind]["lost"] for row in r["fifths"])
        low = r["fifths"][0][kind]["lost"]
        if total:
            lines.append("")
            lines.append(f"Of the {total} answers lost by the {kind} updates, {low} "
                         f"({low / total:.0%}) were in the fifth the base was least sure of.")
    return "\n".join(lines) + "\n"


def main() -> None:
    from workbench.demo.build import machine_summary

    from recipe import prepare
    from workbench.core.config import ModelConfig
    from workbench.core.knowledge import sets
    from workbench.core.models import load_model
    from workbench.core.train import probing
    from workbench.realmodel import smollm2_folder

    model = smollm2_folder()
    ws, store, _, _ = prepare(model)
    sid = sets.set_id(store, "fictional")
    items = [i for i in probing.probe_items(store, sid, locality=True) if i.metric == "locality"]
    margin = margins(load_model(ModelConfig(name_or_path=str(model), device="cpu")), items)
    lost, trained = lost_lists()
    # Losses recorded on a set prepared elsewhere name the same probes, or they cannot count.
    unknown = {q for measures in lost.values() for m in measures for q in m} - set(margin)
    if unknown:
        raise SystemExit(f"{len(unknown)} lost answers are not probes of this set "
                         f"(e.g. {sorted(unknown)[0]!r}): prepare it as the runs' set was")
    result = {"date": str(date.today()), "machine": machine_summary("cpu"),
              "probes": len(items), "margins": margin, "trained": trained,
              "measures": {k: len(v) for k, v in lost.items()},
              "fifths": by_fifth(margin, lost)}
    write_results("known_margins", result, markdown(result))


if __name__ == "__main__":
    main()
