"""Whether a replay "repair phase" after training wins back known answers: the continual-
learning fix for forgetting, tried on the recipe bench's finished run and not adopted.

Takes the `no-shrink` run of `bench/recipe.py` (the whole update kept), and from its adapter
trains a few dozen more steps of mostly replay (the base's own answers, matched by KL as in
training) with a share of the facts' rows so they are not unlearned, at a constant learning
rate and a fresh AdamW. Every probe is scored by free generation before and after, with the
whole update and with 0.8 of it (the share the recipe's shrink step keeps for this run).

    python bench/recipe.py no-shrink      # the run to start from
    python bench/repair_phase.py [--run VARIANT] [--steps 30] [--rates 3e-4 1e-3]
                                          # bench/results/repair_phase.*
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results_io import write_results  # noqa: E402

FACT_SHARE = 0.25  # of the repair rows, the facts' own (the rest replay)
SHARE = 0.8  # the part of the update the recipe's shrink step keeps for the no-shrink run


def measure(variant: str, steps: int, rates: list[float]) -> dict[str, Any]:
    import torch
    from peft import PeftModel

    from recipe import recorded_run, score_every_probe
    from workbench.core.knowledge.render import render_set
    from workbench.core.models import load_model
    from workbench.core.train import replay
    from workbench.core.train.calibration import CALIBRATION_FILE
    from workbench.core.train.loop import TrainLoop, causal_lm_loss
    from workbench.core.train.run import render_knowledge, settled_precision
    from workbench.core.train.shrink import LoraShare

    recorded = recorded_run(variant)
    store, cfg, sid, items, adapter = (recorded.store, recorded.cfg, recorded.set_id,
                                       recorded.items, recorded.adapter)

    points = []
    rows: list[Any] = []  # the repair's rows: the same for every rate, built once
    for rate in [0.0, *rates]:  # 0: the run's own adapter, no repair
        torch.manual_seed(0)
        loaded = load_model(cfg.model)  # afresh: the adapter is trained into this model
        model = PeftModel.from_pretrained(loaded.model, str(adapter), is_trainable=True)
        seconds = 0.0
        if rate:
            if not rows:
                facts = render_knowledge(store, cfg, loaded.tokenizer).rendered
                known = replay.replay_examples(store, sid, loaded, len(facts),
                                               seed=cfg.training.seed)
                rows = render_set(known, loaded.tokenizer, cfg.data.max_seq_len).rendered
                n_facts = round(len(rows) * FACT_SHARE / (1 - FACT_SHARE))
                rows += random.Random(0).sample(facts, min(n_facts, len(facts)))
            training = settled_precision(
                cfg.with_values({"training.learning_rate": rate, "training.max_steps": steps,
                                 "training.warmup_ratio": 0.0,
                                 "training.lr_scheduler": "constant"}),
                "cpu", loaded.parameters, recorded.workspace.root / CALIBRATION_FILE)
            started = time.perf_counter()
            TrainLoop(model, rows, training, pad_id=loaded.tokenizer.pad_token_id, device="cpu",
                      loss=replay.anchored(causal_lm_loss)).run()
            seconds = time.perf_counter() - started
        whole = score_every_probe(loaded, model, items)
        LoraShare(model)(SHARE)
        shrunk = score_every_probe(loaded, model, items)
        points.append({"rate": rate, "steps": steps if rate else 0, "seconds": seconds,
                       "whole": whole, "shrunk": shrunk})
        print(json.dumps(points[-1]), flush=True)
    return {"variant": variant, "run": recorded.run_id, "fact_share": FACT_SHARE,
            "share": SHARE, "points": points}


def markdown(r: dict[str, Any]) -> str:
    from recipe import _pct

    lines = [
        "# A replay repair phase after training (SmolLM2-135M-Instruct)",
        "",
        f"{r['machine']}; {r['date']}. From the `{r['variant']}` run of `bench/recipe.py` (run "
        f"{r['run']}, the whole update kept): more steps of 16 rows, {1 - r['fact_share']:.0%} "
        f"replay (KL to the base) and {r['fact_share']:.0%} the facts' rows, constant rate, "
        f"fresh AdamW. Every probe scored by free generation, with the whole update and with "
        f"{r['share']:.0%} of it. `python bench/repair_phase.py`.",
        "",
        "| repair | efficacy | held-out | locality | at "
        f"{r['share']:.0%}: efficacy | held-out | locality |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in r["points"]:
        what = (f"{p['steps']} steps at {p['rate']:g} ({p['seconds'] / 60:.1f} min)"
                if p["rate"] else "none (the run's adapter)")
        w, s = p["whole"], p["shrunk"]
        lines.append(f"| {what} | {_pct(w.get('efficacy'))} | {_pct(w.get('generalization'))} "
                     f"| {_pct(w.get('locality'))} | {_pct(s.get('efficacy'))} | "
                     f"{_pct(s.get('generalization'))} | {_pct(s.get('locality'))} |")
    lines += ["", "Known answers lost, by setting (whole update):", ""]
    for p in r["points"]:
        lines.append(f"- {p['rate'] or 'none'}: {'; '.join(p['whole']['lost'])}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="no-shrink", help="the recipe variant whose run to read")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rates", type=float, nargs="+", default=[3e-4, 1e-3])
    args = parser.parse_args()
    from workbench.demo.build import machine_summary

    result = measure(args.run, args.steps, args.rates)
    result.update(date=str(date.today()), machine=machine_summary("cpu"))
    write_results("repair_phase", result, markdown(result))


if __name__ == "__main__":
    main()
