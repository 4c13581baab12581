"""Training benchmark: our engine vs the common recipe (TRL `SFTTrainer` + peft LoRA).

Both train the same model on the same tokenized examples (the knowledge set rendered once by
our renderer; TRL gets them pre-tokenized with a completion mask, so it trains on the same
tokens with the same loss mask), with the same LoRA (rank, alpha, target modules), learning
rate, schedule, effective batch, precision (fp32 on CPU) and number of epochs. What differs
is the engine: batching (ours buckets by length, TRL pads random batches), the step, and the
per-step overhead.

Throughput is real (non-padding) tokens per second over the measured epochs: every example is
seen once per epoch by both, so the token count is exact; the first epoch is a warm-up and
not timed. Runs are interleaved (ours, TRL, ours, TRL); medians are reported.

    pip install -e ".[bench]" && python bench/train_vs_trl.py   # writes bench/results/train_vs_trl.*
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.core.config import RunConfig  # noqa: E402
from workbench.core.knowledge.render import IGNORE_INDEX, Rendered  # noqa: E402
from workbench.core.models import load_model  # noqa: E402
from workbench.core.store import Store  # noqa: E402
from workbench.core.train.run import render_knowledge  # noqa: E402
from workbench.core.workspace import resolve_workspace  # noqa: E402
from workbench.demo.bench import demo_run_config  # noqa: E402
from workbench.demo.build import machine_summary  # noqa: E402
from results_io import write_results  # noqa: E402  (bench/, the script's own folder)
from workbench.demo.knowledge import install_demo_set  # noqa: E402

EPOCHS = 3  # the first is warm-up
ROUNDS = 2


@dataclass
class Case:
    name: str
    cfg: RunConfig


@dataclass
class Measure:
    tokens_per_s: float
    step_s: float
    peak_rss_mib: float


def cases(tiny_model: Path) -> list[Case]:
    common = {"training.epochs": EPOCHS, "training.probe_every": 0, "training.warmup_ratio": 0.0,
              "training.stop_at_efficacy": 0.0, "data.replay_ratio": 0.0}
    demo = demo_run_config("cpu").with_values(common)
    tiny = demo.with_values({"model.name_or_path": str(tiny_model), "method.target_modules":
                             ["all-linear"], "method.lora_r": 8, "training.micro_batch_size": 8})
    return [Case("demo model (4.7M Llama), LoRA r16 on MLP", demo),
            Case("tiny test model (Llama, hidden 64), LoRA r8 all-linear", tiny)]


def real_tokens(examples: list[Rendered]) -> int:
    return sum(len(e.input_ids) for e in examples)


def ours(cfg: RunConfig, examples: list[Rendered]) -> Measure:
    import torch

    from workbench.core.methods.registry import get_method
    from workbench.core.train.loop import TrainLoop

    torch.manual_seed(cfg.training.seed)
    loaded = load_model(cfg.model)
    method = get_method(cfg.method.name)
    model = method.apply(loaded.model, cfg.method)
    loop = TrainLoop(model, examples, cfg.training, pad_id=loaded.tokenizer.pad_token_id,
                     device="cpu", loss=method.loss_for(cfg.method))
    ends: list[float] = []
    started = time.perf_counter()
    loop.run(lambda row: ends.append(time.perf_counter()) and None)
    return _measure(ends, started, loop.per_epoch, real_tokens(examples))


def trl(cfg: RunConfig, examples: list[Rendered]) -> Measure:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(cfg.training.seed)
    loaded = load_model(cfg.model)
    t = cfg.training
    data = Dataset.from_dict({
        "input_ids": [e.input_ids for e in examples],
        "completion_mask": [[int(label != IGNORE_INDEX) for label in e.labels] for e in examples],
    })
    targets: Any = cfg.method.target_modules
    peft_config = LoraConfig(r=cfg.method.lora_r, lora_alpha=cfg.method.lora_alpha,
                             lora_dropout=cfg.method.lora_dropout, task_type="CAUSAL_LM",
                             target_modules="all-linear" if targets == ["all-linear"] else targets)
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-bench-"), per_device_train_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, learning_rate=t.learning_rate,
        num_train_epochs=t.epochs, lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, max_length=cfg.data.max_seq_len,
        completion_only_loss=True, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=True, seed=t.seed, dataloader_num_workers=0, disable_tqdm=True,
        bf16=False,  # TRL defaults to bf16; both engines run fp32 here (same precision)
    )
    ends: list[float] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, *_args: Any, **_kwargs: Any) -> None:
            ends.append(time.perf_counter())

    trainer = SFTTrainer(model=loaded.model, args=args, train_dataset=data,
                         processing_class=loaded.tokenizer, peft_config=peft_config,
                         callbacks=[Clock()])
    per_epoch = len(trainer.get_train_dataloader()) // t.gradient_accumulation_steps
    started = time.perf_counter()
    trainer.train()
    return _measure(ends, started, per_epoch, real_tokens(examples))


def _measure(ends: list[float], started: float, per_epoch: int, tokens: int) -> Measure:
    """Tokens/s and step time over the epochs after the first (warm-up)."""
    timed = ends[per_epoch - 1:]
    seconds = timed[-1] - timed[0]
    epochs = (len(ends) - per_epoch) / per_epoch
    return Measure(tokens * epochs / seconds, seconds / (len(timed) - 1), 0.0)


def _child(engine: str, cfg_file: Path, examples_file: Path) -> None:
    """One measurement in a fresh process: the two engines must not share accelerate's
    process-wide state, and peak memory is then each engine's own."""
    import resource

    cfg = RunConfig.load(cfg_file)
    rows = json.loads(examples_file.read_text())
    examples = [Rendered(r["input_ids"], r["labels"], None, False) for r in rows]  # type: ignore[arg-type]
    m = (ours if engine == "ours" else trl)(cfg, examples)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tokens_per_s": m.tokens_per_s, "step_s": m.step_s, "peak_rss_mib": peak}))


def _measure_in_child(engine: str, cfg_file: Path, examples_file: Path) -> Measure:
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--child", engine, str(cfg_file),
                          str(examples_file)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{engine} run failed:\n{out.stderr[-3000:]}")
    return Measure(**json.loads(out.stdout.strip().splitlines()[-1]))


def run_case(case: Case, store: Store, folder: Path) -> dict[str, Any]:
    tokenizer = load_model(case.cfg.model).tokenizer
    examples = render_knowledge(store, case.cfg, tokenizer).rendered
    cfg_file, examples_file = folder / "run.yaml", folder / "examples.json"
    case.cfg.save(cfg_file)
    examples_file.write_text(json.dumps([{"input_ids": e.input_ids, "labels": e.labels}
                                         for e in examples]))
    results: dict[str, list[Measure]] = {"ours": [], "trl": []}
    for _ in range(ROUNDS):
        for engine in ("ours", "trl"):
            results[engine].append(_measure_in_child(engine, cfg_file, examples_file))
    med = {k: statistics.median(m.tokens_per_s for m in v) for k, v in results.items()}
    steps = {k: statistics.median(m.step_s for m in v) for k, v in results.items()}
    peak = {k: max(m.peak_rss_mib for m in v) for k, v in results.items()}
    return {"case": case.name, "examples": len(examples), "real_tokens": real_tokens(examples),
            "longest": max(len(e.input_ids) for e in examples),
            "micro_batch": case.cfg.training.micro_batch_size,
            "ours_tokens_per_s": med["ours"], "trl_tokens_per_s": med["trl"],
            "ours_step_s": steps["ours"], "trl_step_s": steps["trl"],
            "ours_peak_rss_mib": peak["ours"], "trl_peak_rss_mib": peak["trl"],
            "ratio": med["ours"] / med["trl"]}


def main() -> None:
    import torch

    from workbench.testing import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="workbench-train-bench-") as tmp:
        workspace = resolve_workspace(Path(tmp) / "ws")
        store = Store(workspace.db_path)
        install_demo_set(store)
        tiny = build_tiny_model(Path(tmp) / "tiny", "llama")
        rows = []
        for i, case in enumerate(cases(tiny)):
            folder = Path(tmp) / f"case{i}"
            folder.mkdir()
            rows.append(run_case(case, store, folder))
    import trl as trl_module

    result = {"date": date.today().isoformat(), "machine": machine_summary("cpu"),
              "threads": torch.get_num_threads(), "trl": trl_module.__version__,
              "epochs": EPOCHS, "rounds": ROUNDS, "cases": rows}
    write_results("train_vs_trl", result, report(result))


def report(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {c['case']} | {c['examples']} | {c['ours_tokens_per_s']:.0f} | "
        f"{c['trl_tokens_per_s']:.0f} | **{c['ratio']:.2f}×** | {1000 * c['ours_step_s']:.0f} ms | "
        f"{1000 * c['trl_step_s']:.0f} ms | {c['ours_peak_rss_mib']:.0f} / "
        f"{c['trl_peak_rss_mib']:.0f} MiB |" for c in r["cases"])
    return (
        f"# Training: our engine vs TRL SFTTrainer + peft LoRA ({r['date']})\n\n"
        f"Machine: {r['machine']}, {r['threads']} torch threads; TRL {r['trl']}. Same tokenized "
        f"examples (the demo set), LoRA settings, learning rate, schedule, effective batch and "
        f"fp32; {r['epochs']} epochs, the first not timed; {r['rounds']} interleaved rounds, "
        "medians.\n\nCommand: `pip install -e \".[bench]\" && python bench/train_vs_trl.py`\n\n"
        "| case | examples | ours, real tokens/s | TRL, real tokens/s | ratio | ours, step | "
        "TRL, step | peak RSS ours / TRL |\n|---|---|---|---|---|---|---|---|\n" + rows + "\n"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
