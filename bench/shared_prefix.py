"""A micro-batch's shared chat-template start computed once (`train/shared_prefix.py`)
against every row computing it, on the real model whose template motivated it.

SmolLM2-135M-Instruct puts the same system turn before every question; the recipe's run
trains 16 short question/answer rows per step. The same examples (the benchmark set's
fictional facts, both questions each, as the recipe renders them), the same LoRA, in fresh
processes, the variants interleaved over the rounds, the first epoch untimed; medians. The
final loss of each variant is shown too: the two paths compute the same thing.

    python bench/shared_prefix.py   # writes bench/results/shared_prefix.*
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results_io import write_results  # noqa: E402  (bench/, the script's own folder)

ROUNDS = 2
EXAMPLES = 192  # 12 steps of 16 per epoch
EPOCHS = 2  # the first is warm-up
VARIANTS = {"shared": "the shared start computed once (shipped)",
            "plain": "every row computes its own copy of the shared start"}


def config(model: Path) -> Any:
    from workbench.core.config import RunConfig
    from workbench.core.recipe import mlp_modules
    from workbench.core.estimate import model_shape
    from workbench.core.sections import ModelConfig

    model_cfg = ModelConfig(name_or_path=str(model), device="cpu")
    return RunConfig(model=model_cfg).with_values({
        "method.name": "lora", "method.lora_r": 16, "method.lora_alpha": 32.0,
        "method.target_modules": list(mlp_modules(model_shape(model_cfg).linears)),
        "training.learning_rate": 2e-3, "training.micro_batch_size": 16,
        "training.epochs": EPOCHS, "training.probe_every": 0, "training.warmup_ratio": 0.0})


def examples(tokenizer: Any) -> list[Any]:
    from workbench.core.knowledge.render import Example, render_set
    from workbench.testing import fictional_facts

    rows = fictional_facts()[:EXAMPLES]
    return render_set([Example("qa", r["question"], r["answer"]) for r in rows], tokenizer,
                      512).rendered


def child(variant: str, cfg_file: Path, examples_file: Path) -> None:
    import torch

    from workbench.core.config import RunConfig
    from workbench.core.knowledge.render import Rendered
    from workbench.core.methods.registry import get_method
    from workbench.core.models import load_model
    from workbench.core.train import shared_prefix
    from workbench.core.train.loop import TrainLoop

    if variant == "plain":
        shared_prefix.MIN_SHARED = 10**9
    cfg = RunConfig.load(cfg_file)
    rows = [Rendered(r["input_ids"], r["labels"], None, False)
            for r in json.loads(examples_file.read_text())]
    torch.manual_seed(cfg.training.seed)
    loaded = load_model(cfg.model)
    model = get_method(cfg.method.name).apply(loaded.model, cfg.method)
    loop = TrainLoop(model, rows, cfg.training, pad_id=loaded.tokenizer.pad_token_id,
                     device="cpu")
    ends: list[float] = []
    losses: list[float] = []
    loop.run(lambda row: ends.append(time.perf_counter()) or losses.append(row["loss"]) and None)
    timed = ends[loop.per_epoch - 1:]
    print(json.dumps({"step_s": (timed[-1] - timed[0]) / (len(timed) - 1),
                      "final_loss": losses[-1]}))


def measure(variant: str, cfg_file: Path, examples_file: Path) -> dict[str, float]:
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--child", variant, str(cfg_file),
                          str(examples_file)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import torch

    from workbench.core.models import load_tokenizer
    from workbench.core.train.shared_prefix import shared_length
    from workbench.core.train.batching import collate
    from workbench.demo.build import machine_summary
    from workbench.realmodel import smollm2_folder

    model = smollm2_folder()
    cfg = config(model)
    tokenizer = load_tokenizer(cfg.model)
    rows = examples(tokenizer)
    with tempfile.TemporaryDirectory(prefix="shared-prefix-bench-") as tmp:
        cfg_file, examples_file = Path(tmp) / "run.yaml", Path(tmp) / "examples.json"
        cfg.save(cfg_file)
        examples_file.write_text(json.dumps([{"input_ids": r.input_ids, "labels": r.labels}
                                             for r in rows]))
        results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for _ in range(ROUNDS):
            for v in VARIANTS:
                results[v].append(measure(v, cfg_file, examples_file))
    shared = shared_length(collate(rows[:16], tokenizer.pad_token_id))
    row = {v: {"step_s": statistics.median(m["step_s"] for m in ms),
               "final_loss": ms[-1]["final_loss"]} for v, ms in results.items()}
    result = {"date": date.today().isoformat(), "machine": machine_summary("cpu"),
              "threads": torch.get_num_threads(), "rounds": ROUNDS, "examples": len(rows),
              "mean_tokens": sum(len(r.input_ids) for r in rows) / len(rows),
              "shared_tokens": shared, "variants": row,
              "speedup": row["plain"]["step_s"] / row["shared"]["step_s"]}
    write_results("shared_prefix", result, report(result))


def report(r: dict[str, Any]) -> str:
    lines = [f"| {v} | {VARIANTS[v]} | {m['step_s']:.2f} s | {m['final_loss']:.5f} |"
             for v, m in r["variants"].items()]
    return (
        f"# Shared chat-template start computed once ({r['date']})\n\n"
        f"Machine: {r['machine']}, {r['threads']} torch threads. SmolLM2-135M-Instruct (the "
        f"GGUF through our import), LoRA r16 on the MLP projections, {r['examples']} "
        f"question/answer rows of the recipe benchmark's facts ({r['mean_tokens']:.0f} tokens "
        f"on average, of which the first {r['shared_tokens']} are the same in every row), "
        f"micro-batch 16; fresh process per measurement, first epoch untimed, {r['rounds']} "
        f"interleaved rounds, medians.\n\nCommand: `python bench/shared_prefix.py`\n\n"
        "| variant | what | step | final loss |\n|---|---|---|---|\n" + "\n".join(lines)
        + f"\n\nComputed once, a step takes 1/{r['speedup']:.2f} of the time.\n")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
