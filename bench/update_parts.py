"""Does one part of a trained update carry the forgetting and not the facts? If so, cutting it
after training would keep more of what SmolLM2-135M knew at no training cost.

Takes finished runs of `bench/recipe.py` (their saved LoRA adapters, shrunk as the recipe
leaves them), cuts each adapter's update in one way at a time and scores every probe of the
bench set by free generation: efficacy, held-out and locality (known answers still right).
The cuts: the top singular directions of each module's update only (the rest being the
small, diffuse part), one kind of MLP projection left out, one third of the layers left out,
and a random update of the same size in its place.
And the two seeds' updates averaged (each adapter active, its B scaled by a weight): if what a
run loses were the seed's noise around a shared update, the average would keep the facts and
lose less.

    python bench/recipe.py fp32 fp32-seed-1      # the runs to read
    python bench/update_parts.py [--runs VARIANT…] [--cuts CUT…]
                                 # bench/results/update_parts.*
    python bench/update_parts.py --average       # the two runs averaged, merged into them
    (what a later invocation does not measure again is kept)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results_io import RESULTS, write_results  # noqa: E402

# name → what is left of each module's update
CUTS: dict[str, str] = {
    "whole": "the adapter as the run saved it",
    "rank-8": "each module's update cut to its top 8 singular directions (of 16)",
    "rank-4": "each module's update cut to its top 4 singular directions",
    "no-down": "the down projections' update left out",
    "no-gate-up": "the gate and up projections' update left out",
    "no-layers-0-9": "the first third of the layers' update left out",
    "no-layers-20-29": "the last third of the layers' update left out",
    "random": "each module's update replaced by a random one of its rank and size (Frobenius "
              "norm): what an update of that size loses whatever it learned",
    "random-2": "as `random`, another random draw",
    "random-half": "as `random`, at half the size",
    "random-quarter": "as `random`, at a quarter of the size",
    "random-sixteenth": "as `random`, at a sixteenth of the size",
}


def _cut(name: str) -> Callable[[str, Any, Any], tuple[Any, Any]]:
    """(module name, A, B) → the (A, B) kept: B·A is the module's update."""
    import torch

    def top(k: int) -> Callable[[str, Any, Any], tuple[Any, Any]]:
        def keep(_: str, a: Any, b: Any) -> tuple[Any, Any]:
            qb, rb = torch.linalg.qr(b)  # B·A = Qb (Rb Raᵀ) Qaᵀ, an r×r SVD away
            qa, ra = torch.linalg.qr(a.T)
            u, s, vh = torch.linalg.svd(rb @ ra.T)
            new_b, new_a = torch.zeros_like(b), torch.zeros_like(a)
            new_b[:, :k] = qb @ u[:, :k] * s[:k]
            new_a[:k] = (qa @ vh[:k].T).T
            return new_a, new_b
        return keep

    def without(test: Callable[[str], bool]) -> Callable[[str, Any, Any], tuple[Any, Any]]:
        return lambda n, a, b: (a, torch.zeros_like(b) if test(n) else b)

    def layer(n: str) -> int:
        return int(n.split("layers.")[1].split(".")[0])

    def random(draw: str, size: float = 1.0) -> Callable[[str, Any, Any], tuple[Any, Any]]:
        return lambda n, a, b: _random_update(f"{n}{draw}", a, b * size)

    return {"whole": lambda n, a, b: (a, b), "rank-8": top(8), "rank-4": top(4),
            "no-down": without(lambda n: "down_proj" in n),
            "no-gate-up": without(lambda n: "gate_proj" in n or "up_proj" in n),
            "no-layers-0-9": without(lambda n: layer(n) <= 9),
            "no-layers-20-29": without(lambda n: 20 <= layer(n) <= 29),
            "random": random(""), "random-2": random(" 2"), "random-half": random("", 0.5),
            "random-quarter": random("", 0.25), "random-sixteenth": random("", 1 / 16)}[name]


def _random_update(seed: str, a: Any, b: Any) -> tuple[Any, Any]:
    """A random (A, B) of the shapes of `a`, `b` whose product has the Frobenius norm of
    b·a, seeded by `seed` (the module's name and the draw): the same on every run."""
    import torch

    generator = torch.Generator().manual_seed(zlib.crc32(seed.encode()))
    new_a = torch.randn(a.shape, generator=generator, dtype=a.dtype)
    new_b = torch.randn(b.shape, generator=generator, dtype=b.dtype)
    scale = torch.linalg.matrix_norm(b @ a) / torch.linalg.matrix_norm(new_b @ new_a)
    return new_a, new_b * scale


def measure(variant: str, cuts: list[str]) -> dict[str, Any]:
    import torch
    from peft import PeftModel

    from recipe import recorded_run, score_every_probe
    from workbench.core.methods.lora import lora_layers
    from workbench.core.models import load_model

    recorded = recorded_run(variant)
    loaded = load_model(recorded.cfg.model)
    model = PeftModel.from_pretrained(loaded.model, str(recorded.adapter))
    wrapped = {id(m) for m in lora_layers(model)}
    modules = [(n, m) for n, m in model.named_modules() if id(m) in wrapped]
    saved = {n: (m.lora_A["default"].weight.detach().clone(),
                 m.lora_B["default"].weight.detach().clone()) for n, m in modules}
    points = []
    for name in cuts:
        keep = _cut(name)
        with torch.no_grad():
            for n, m in modules:
                a, b = keep(n, *saved[n])
                m.lora_A["default"].weight.copy_(a)
                m.lora_B["default"].weight.copy_(b)
        started = time.perf_counter()
        points.append({"cut": name, **score_every_probe(loaded, model, recorded.items),
                       "seconds": time.perf_counter() - started, "date": str(date.today())})
        print(json.dumps(points[-1]), flush=True)
    return {"variant": variant, "run": recorded.run_id, "points": points}


def average(variants: list[str], weights: list[float]) -> dict[str, Any]:
    """Every probe scored with the runs' adapters active together, each B scaled by each
    weight in turn: at 0.5 each, the runs' mean update."""
    from peft import PeftModel

    from recipe import recorded_run, score_every_probe
    from workbench.core.models import load_model
    from workbench.core.train.shrink import LoraShare

    recorded = [recorded_run(v) for v in variants]
    loaded = load_model(recorded[0].cfg.model)
    names = [f"run{r.run_id}" for r in recorded]
    model = PeftModel.from_pretrained(loaded.model, str(recorded[0].adapter),
                                      adapter_name=names[0])
    for name, r in zip(names[1:], recorded[1:]):
        model.load_adapter(str(r.adapter), adapter_name=name)
    model.base_model.set_adapter(names)
    share = LoraShare(model)  # every active adapter's B, each scaled alike
    points = []
    for weight in weights:
        share(weight)
        started = time.perf_counter()
        points.append({"weight": weight, **score_every_probe(loaded, model, recorded[0].items),
                       "seconds": time.perf_counter() - started})
        print(json.dumps(points[-1]), flush=True)
    return {"variants": variants, "runs": [r.run_id for r in recorded], "points": points}


def markdown(r: dict[str, Any]) -> str:
    from recipe import _pct

    lines = [
        "# What is left of a trained update, part by part (SmolLM2-135M-Instruct)",
        "",
        f"{r['machine']}; {_dates(r)}. The saved adapters of `bench/recipe.py` runs, each cut "
        "one way at a time, every probe scored by free generation. "
        "`python bench/update_parts.py`.",
        "",
        "| run | what is kept | efficacy | held-out | locality | answers unchanged |",
        "|---|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        for p in run["points"]:
            lines.append(f"| `{run['variant']}` | {CUTS[p['cut']]} | {_pct(p.get('efficacy'))} | "
                         f"{_pct(p.get('generalization'))} | {_pct(p.get('locality'))} | "
                         f"{_pct(p.get('locality_unchanged'))} |")
    lines += _random_summary(r["runs"])
    if "average" in r:
        a = r["average"]
        runs = " and ".join(f"`{v}`" for v in a["variants"])
        lines += ["", f"The updates of {runs} averaged: both adapters active, each B scaled by "
                  "the weight (0.5: their mean).", "",
                  "| weight of each | efficacy | held-out | locality | answers unchanged |",
                  "|---|---|---|---|---|"]
        lines += [f"| {p['weight']:.2f} | {_pct(p.get('efficacy'))} | "
                  f"{_pct(p.get('generalization'))} | {_pct(p.get('locality'))} | "
                  f"{_pct(p.get('locality_unchanged'))} |" for p in a["points"]]
    return "\n".join(lines) + "\n"


def _dates(r: dict[str, Any]) -> str:
    """When the recorded measures were taken: partial re-runs add to earlier ones, so one day
    can be a range (a measure recorded without a date counts as the results' own date)."""
    days = {p.get("date", r["date"]) for run in r["runs"] for p in run["points"]}
    days |= {r["average"].get("date", r["date"])} if "average" in r else set()
    first, last = min(days, default=r["date"]), max(days, default=r["date"])
    return first if first == last else f"measured {first} to {last}"


def _random_summary(runs: list[dict[str, Any]]) -> list[str]:
    """The trained updates' locality against random updates of the same size, averaged over
    every run and draw: how much of what a run loses is its direction's doing."""
    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    trained = [p["locality"] for run in runs for p in run["points"] if p["cut"] == "whole"]
    drawn = [p["locality"] for run in runs for p in run["points"]
             if p["cut"] in ("random", "random-2")]
    if not trained or not drawn:
        return []
    return ["", f"A random update of each module's rank and size kept {mean(drawn):.1%} of the "
            f"known answers on average ({len(drawn)} measures: two draws at each run's size), "
            f"the trained updates "
            f"{mean(trained):.1%} ({len(trained)} runs): an update of this size costs "
            f"~{1 - mean(drawn):.0%} of them whatever it learned, its direction "
            f"{100 * (mean(drawn) - mean(trained)):.1f} points more."]


def _keep_recorded(result: dict[str, Any]) -> None:
    """Merge in what the recorded results measured and this invocation did not: the other
    cuts of these very runs (the same saved adapters, in CUTS order), the runs not measured
    again (in their recorded place), and the average while its runs are all still there."""
    before = RESULTS / "update_parts.json"
    recorded = json.loads(before.read_text()) if before.exists() else {}
    new = {run["variant"]: run for run in result["runs"]}
    runs = []
    for old in recorded.get("runs", []):
        run = new.pop(old["variant"], old)
        if run is not old and run["run"] == old["run"]:
            points = {p["cut"]: p for p in old["points"]} | {p["cut"]: p for p in run["points"]}
            run["points"] = [points[c] for c in CUTS if c in points]
        runs.append(run)
    result["runs"] = runs + list(new.values())
    average = recorded.get("average")
    if average and set(average["runs"]) <= {run["run"] for run in result["runs"]}:
        result["average"] = average


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["fp32", "fp32-seed-1"],
                        help="recipe variants whose saved adapters to cut")
    parser.add_argument("--cuts", nargs="+", choices=list(CUTS), default=list(CUTS))
    parser.add_argument("--average", action="store_true",
                        help="only the runs' updates averaged, added to the recorded results")
    parser.add_argument("--weights", nargs="+", type=float, default=[0.5, 0.6],
                        help="with --average: each adapter's weight")
    args = parser.parse_args()
    from workbench.demo.build import machine_summary

    if args.average:
        result = json.loads((RESULTS / "update_parts.json").read_text())
        result["average"] = average(args.runs, args.weights) | {
            "date": str(date.today()), "machine": machine_summary("cpu")}
    else:
        result = {"runs": [measure(v, args.cuts) for v in args.runs],
                  "date": str(date.today()), "machine": machine_summary("cpu")}
        _keep_recorded(result)
    write_results("update_parts", result, markdown(result))


if __name__ == "__main__":
    main()
