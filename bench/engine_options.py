"""Each speed choice of the training engine, on and off, on the same model and data.

The choices: the output head run on the label tokens only, in chunks (`head_loss.py`) against
logits at every position; steps of similar-length examples (`batching.plan_epoch`) against
random batches padded to their longest; `training.compile` (torch.compile of the decoder
stack) against eager. Everything else is the engine as it ships. Each measurement is a fresh
process (as in train_vs_trl.py: the first epoch is warm-up, including compilation; real
tokens/s over the rest), variants interleaved over the rounds, medians; peak RSS per process.

    python bench/engine_options.py   # writes bench/results/engine_options.*
"""

from __future__ import annotations

import random
import statistics
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results_io import write_results  # noqa: E402  (bench/, the script's own folder)
from train_vs_trl import (Case, Measure, _ms, measure_in_child, ours,  # noqa: E402
                          print_measure, read_examples, scratch_cases, write_case)
from workbench.core.config import RunConfig  # noqa: E402
from workbench.core.knowledge.render import Rendered  # noqa: E402
from workbench.core.store import Store  # noqa: E402
from workbench.demo.build import machine_summary  # noqa: E402

ROUNDS = 2
# (variant, what it turns off or on); "shipped" is the engine's default.
VARIANTS = {
    "shipped": "head on label tokens, length-sorted steps, eager",
    "full_logits": "logits at every position (the head on all tokens)",
    "random_batches": "random batches, padded to their longest",
    "compiled": "training.compile on",
}


def random_plan_loop() -> Any:
    """TrainLoop with its length-sorted plan replaced by shuffled steps of the same size."""
    from workbench.core.train.loop import TrainLoop

    class RandomBatches(TrainLoop):
        def _plan(self, epoch: int) -> list[list[Rendered]]:
            order = list(self.examples)
            random.Random(self.cfg.seed * 7919 + epoch).shuffle(order)
            return [order[i:i + self.step_size] for i in range(0, len(order), self.step_size)]

    return RandomBatches


def run_variant(variant: str, cfg: RunConfig, examples: Sequence[Rendered]) -> Measure:
    from workbench.core.train.loop import full_logits_loss

    if variant == "full_logits":
        return ours(cfg, list(examples), loss=full_logits_loss)
    if variant == "random_batches":
        return ours(cfg, list(examples), loop_class=random_plan_loop())
    if variant == "compiled":
        return ours(cfg.with_values({"training.compile": True}), list(examples))
    return ours(cfg, list(examples))


def measure_case(case: Case, store: Store, folder: Path, variants: Sequence[str]) -> dict[str, Any]:
    examples, cfg_file, examples_file = write_case(case, store, folder)
    results: dict[str, list[Measure]] = {v: [] for v in variants}
    for _ in range(ROUNDS):
        for v in variants:
            results[v].append(measure_in_child(__file__, v, str(cfg_file), str(examples_file)))
    base = statistics.median(m.tokens_per_s for m in results["shipped"])
    rows = {}
    for v, ms in results.items():
        rate = statistics.median(m.tokens_per_s for m in ms)
        rows[v] = {"tokens_per_s": rate, "step_s": statistics.median(m.step_s for m in ms),
                   "first_step_s": statistics.median(m.first_step_s for m in ms),
                   "peak_rss_mib": max(m.peak_rss_mib for m in ms),
                   "shipped_vs_this": base / rate}
    return {"case": case.name, "examples": len(examples), "epochs": case.cfg.training.epochs,
            "variants": rows}


def main() -> None:
    import torch

    with scratch_cases() as (store, scratch, (demo, _, qwen_case)):
        rows = [measure_case(case, store, scratch / f"case{i}", variants)
                for i, (case, variants) in enumerate([
                    (demo, list(VARIANTS)),
                    # Compiling a 494M model on two cores takes minutes: not measured there.
                    (qwen_case, ["shipped", "full_logits", "random_batches"])])]
    result = {"date": date.today().isoformat(), "machine": machine_summary("cpu"),
              "threads": torch.get_num_threads(), "rounds": ROUNDS, "variants": VARIANTS,
              "cases": rows}
    write_results("engine_options", result, report(result))


def report(r: dict[str, Any]) -> str:
    lines = []
    for c in r["cases"]:
        for v, m in c["variants"].items():
            gain = "—" if v == "shipped" else f"{m['shipped_vs_this']:.2f}×"
            lines.append(f"| {c['case']} | {v}: {r['variants'][v]} | {m['tokens_per_s']:.0f} | "
                         f"{_ms(m['step_s'])} | {m['first_step_s']:.1f} s | "
                         f"{m['peak_rss_mib']:.0f} MiB | {gain} |")
    return (
        f"# Training engine: each speed choice on and off ({r['date']})\n\n"
        f"Machine: {r['machine']}, {r['threads']} torch threads. The cases of "
        "train_vs_trl.md (demo set examples, fp32, LoRA); each variant changes one thing from "
        f"the shipped engine. Fresh process per measurement, first epoch untimed, "
        f"{r['rounds']} interleaved rounds, medians.\n\nCommand: `python bench/engine_options.py`"
        "\n\n| case | variant | real tokens/s | step | first step (incl. compile) | peak RSS | "
        "shipped is faster by |\n|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        cfg = RunConfig.load(Path(sys.argv[3]))
        print_measure(run_variant(sys.argv[2], cfg, read_examples(Path(sys.argv[4]))))
    else:
        main()
