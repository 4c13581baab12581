"""How much of what SmolLM2-135M knew survives each share of a trained update: the evidence
for the recipe's shrink step, and for where its locality ceiling lies.

Takes a finished run of `bench/recipe.py` trained with the whole update kept (`no-shrink`, by
default), puts its LoRA update back at shares 0 … 1 of itself (the base moved that share of
the way to the trained weights) and scores every probe of the bench set by free generation at
each: efficacy, held-out and locality (known answers still right). Beside it, the locality
probes the base model answers right under three prompts (no system prompt, two different
system prompts), robustly known, against those it answers right under the plain one only.

    python bench/recipe.py no-shrink     # the run to read
    python bench/shrink_curve.py [--run VARIANT] [--shares 0 0.1 …]   # bench/results/shrink_curve.*
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results_io import write_results  # noqa: E402
from workbench.core.knowledge.locality import ROBUST_SYSTEMS  # noqa: E402

SHARES = (0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0)
SYSTEMS = ("", *ROBUST_SYSTEMS)  # no system prompt, then the ones locality probes must pass


def measure(variant: str, shares: list[float]) -> dict[str, Any]:
    from peft import PeftModel

    from recipe import recorded_run
    from workbench.core.generate import ask_questions
    from workbench.core.models import load_model
    from workbench.core.scoring import is_correct
    from workbench.core.train import probing
    from workbench.core.train.shrink import LoraShare

    recorded = recorded_run(variant)
    loaded, items = load_model(recorded.cfg.model), recorded.items
    locality = [i for i in items if i.metric == "locality"]
    # Asked of the base before the adapter goes in: peft puts its layers into this very model.
    robust = [[is_correct(a, i.answer, i.aliases) for a, i in
               zip(ask_questions(loaded, [i.question for i in locality], system=s), locality)]
              for s in SYSTEMS]  # per prompt, per probe: answered right?
    model = PeftModel.from_pretrained(loaded.model, str(recorded.adapter))
    model.eval()
    robust_ids = {i.probe_id for k, i in enumerate(locality) if all(r[k] for r in robust)}
    share_of = LoraShare(model)
    points = []
    for share in shares:
        share_of(share)
        started = time.perf_counter()
        answers = probing.ask_items(loaded, model, items)
        marks = [(i, probing.score(i, a)) for i, a in zip(items, answers)]
        scores = probing.shares([(i.metric, m) for i, m in marks])
        kept = [m.correct for i, m in marks if i.probe_id in robust_ids]
        fragile = [m.correct for i, m in marks if i.metric == "locality"
                   and i.probe_id not in robust_ids]
        points.append({"share": share, **scores,
                       "robust_kept": sum(kept) / len(kept) if kept else None,
                       "fragile_kept": sum(fragile) / len(fragile) if fragile else None,
                       "seconds": time.perf_counter() - started})
        print(json.dumps(points[-1]), flush=True)
    return {"variant": variant, "run": recorded.run_id, "points": points,
            "locality_probes": len(locality), "robust": len(robust_ids)}


def markdown(r: dict[str, Any]) -> str:
    from recipe import _pct

    lines = [
        "# Locality against the share of the update kept (SmolLM2-135M-Instruct)",
        "",
        f"{r['machine']}; {r['date']}. The `{r['variant']}` run of `bench/recipe.py` (run "
        f"{r['run']}, the whole update kept) with its LoRA update scaled to each share, every "
        f"probe scored by free generation. `python bench/shrink_curve.py`.",
        "",
        f"Of the {r['locality_probes']} locality probes, the base model answers {r['robust']} "
        "right under all three prompts (no system prompt and two system prompts): robustly "
        "known. The set's preparation keeps only those, so the rest is empty unless the base "
        "answers differently on this machine.",
        "",
        "| share of the update | efficacy | held-out | locality | robustly known kept | "
        "the rest kept | answers unchanged |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in r["points"]:
        lines.append(f"| {p['share']:.2f} | {_pct(p.get('efficacy'))} | "
                     f"{_pct(p.get('generalization'))} | {_pct(p.get('locality'))} | "
                     f"{_pct(p['robust_kept'])} | {_pct(p['fragile_kept'])} | "
                     f"{_pct(p.get('locality_unchanged'))} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="no-shrink", help="the recipe variant whose run to read")
    parser.add_argument("--shares", type=float, nargs="+", default=list(SHARES))
    args = parser.parse_args()
    from workbench.demo.build import machine_summary

    result = measure(args.run, args.shares)
    result.update(date=str(date.today()), machine=machine_summary("cpu"))
    write_results("shrink_curve", result, markdown(result))


if __name__ == "__main__":
    main()
