"""The recipe on a small set: a handful of facts, as a live demo teaches them, on a real model.

SmolLM2-135M-Instruct (through our GGUF import) learns 6 fictional facts (two per relation:
capital, currency, founder; `workbench.testing.fictional_facts`), prepared as `workbench
inject` prepares a set. A small set is trained for many epochs (the recipe's ~200 steps are
an upper bound, at most 12 epochs), so whatever replay it holds is seen again every epoch.
Each variant runs under two seeds, every probe scored by free generation; the known answers
lost are counted by how sure the base was of them (`knowledge/certainty.py`): one it was sure
of is damage, one it barely knew a coin flip any update may turn.

    python bench/small_set.py                    # every variant, both seeds
    python bench/small_set.py default            # some; results merge into bench/results/small_set.*
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

from results_io import RESULTS, write_results  # noqa: E402

SCRATCH = ROOT / "test-artifacts" / "small-set-bench"
FACTS = 6
SEEDS = (42, 1)

LOWER_SHARES = tuple(round(0.85 - 0.05 * i, 2) for i in range(13))  # 0.85 … 0.25
# name → (overrides of the recommended config, {module.NAME: value}, why it is here)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "default": ({}, {}, "the recommended recipe, as `workbench inject` runs it"),
    "same-replay": ({}, {"workbench.core.train.replay.FRESH_EPOCHS": 1},
                    "the previous default: one epoch's replay, the same rows in every epoch "
                    "(`replay.FRESH_EPOCHS` 1), where the default draws as many afresh for "
                    "each of its 12 epochs; it lost answers the base was sure "
                    "of (Croatia's capital, the Czech currency)"),
    "shrink-lower": ({}, {"workbench.core.train.shrink.SHARES": LOWER_SHARES},
                     "the update's shrink searched down to a quarter of it (steps of 0.05 "
                     "from 0.85 to 0.25) instead of to 0.55, where the facts of a small set "
                     "still held: whether they hold further down; not adopted: they went at "
                     "0.50, so it kept 0.60 as the default then did (one seed; measured with "
                     "one epoch's replay in every epoch, as `same-replay`)"),
}


def run_variant(name: str, seed: int, ws: Any, store: Any, model: Path) -> dict[str, Any]:
    from recipe import ask_replay_pool, constants_set

    from workbench.core.data import runs
    from workbench.core.inject import recommended_config
    from workbench.core.train import history
    from workbench.core.train.run import create_run, execute_run
    from workbench.core.train.verdict import Forgotten

    overrides, consts, _ = VARIANTS[name]
    cfg = recommended_config(store, "small", str(model), device="cpu")
    cfg = cfg.with_values({**overrides, "training.seed": seed,
                           "name": f"small-set bench: {name}, seed {seed}"})
    run_id = create_run(store, ws, cfg)
    with constants_set(consts):
        ask_replay_pool(store, cfg)  # as the set's preparation asks it: not part of Train
        started = time.perf_counter()
        summary = execute_run(store, ws, run_id)
    seconds = time.perf_counter() - started
    step = history.last_probed_step(store, run_id)
    lost = runs.wrong_locality(store, run_id, step)
    told = [Forgotten(*x) for x in lost]  # sure / barely known as the verdict tells them
    return {"variant": name, "seed": seed, "run": run_id, "status": summary.status,
            "steps": summary.steps, "scores": summary.scores, "seconds": seconds,
            "epochs": cfg.training.epochs, "overrides": overrides | consts,
            "lost": [{"question": q, "gold": g, "answer": a, "margin": m}
                     for q, g, a, m in lost],
            "lost_sure": sum(f.sure for f in told),
            "lost_unsure": sum(f.barely_known for f in told)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT",
                        help=f"any of: {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    from workbench.demo.build import machine_summary
    from workbench.realmodel import smollm2_folder

    from recipe import prepare

    from workbench.testing import fictional_facts

    model = smollm2_folder()
    ws, store, prep_s, counts = prepare(model, SCRATCH, "small", fictional_facts(n_facts=FACTS))
    path = RESULTS / "small_set.json"
    result = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    result["runs"] = {k: v for k, v in result["runs"].items() if k.rsplit("@", 1)[0] in VARIANTS}
    machine = machine_summary("cpu")
    for name in args.variants or list(VARIANTS):
        for seed in args.seeds:
            print(f"--- {name}, seed {seed}", flush=True)
            result["runs"][f"{name}@{seed}"] = run_variant(name, seed, ws, store, model) | {
                "machine": machine, "date": str(date.today())}
            if "prepare_seconds" not in result:  # the first preparation's, as measured
                result.update(prepare_seconds=prep_s, prepared=counts, facts=FACTS)
            write_results("small_set", result, markdown(result))


def _pct(value: float | None) -> str:
    from workbench.core.scoring import percent

    return percent(value)


def markdown(r: dict[str, Any]) -> str:
    rows = sorted(r["runs"].values(), key=lambda v: (list(VARIANTS).index(v["variant"])
                                                     if v["variant"] in VARIANTS else 99,
                                                     -v["seed"]))
    machines = sorted({v["machine"] for v in rows})
    days = sorted({v["date"] for v in rows})
    out = [f"# The recipe on a small set: SmolLM2-135M-Instruct, {r.get('facts', FACTS)} "
           "fictional facts × 2 questions", "",
           f"{'; '.join(machines)}; measured {days[0]}"
           + (f" to {days[-1]}" if len(days) > 1 else "") + ". Scored by free generation. "
           "Known answers lost are counted by how sure the base was of them: sure (margin "
           "≥0.6 nats, where no random update of a trained one's size lost any on the 90-fact "
           "set) and barely known (<0.25). `python bench/small_set.py [VARIANT…]`.", "",
           f"Set preparation, once: {r.get('prepare_seconds', 0) / 60:.1f} min"
           f"{r.get('prepare_note', '')}; {r.get('prepared', {})}.", "",
           "| variant | what changes | seed | efficacy | held-out | locality | lost: sure "
           "| barely known | steps | Train → scored |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for v in rows:
        s = v["scores"]
        why = VARIANTS[v["variant"]][2] if v["variant"] in VARIANTS else ""
        out.append(f"| {v['variant']} | {why} | {v['seed']} | {_pct(s.get('efficacy'))} | "
                   f"{_pct(s.get('generalization'))} | {_pct(s.get('locality'))} | "
                   f"{v['lost_sure']} | {v['lost_unsure']} | {v['steps']} | "
                   f"{v['seconds'] / 60:.1f} min |")
    out += ["", "Known answers lost, by run (the base's margin in nats):", ""]
    for v in rows:
        said = "; ".join(f"{x['question']} → {x['answer'][:60]!r} ({x['margin']:.2f})"
                         if x["margin"] is not None else x["question"] for x in v["lost"])
        out.append(f"- {v['variant']}, seed {v['seed']}: {said or 'none'}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
