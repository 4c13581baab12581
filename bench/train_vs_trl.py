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
from collections.abc import Iterator
from contextlib import contextmanager
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
# ours; TRL with our activation checkpointing setting (off: the same work); TRL's defaults
# (checkpointing on), the recipe as a user gets it.
ENGINES = ("ours", "trl", "trl_defaults")
ROUNDS = 2


@dataclass
class Case:
    name: str
    cfg: RunConfig
    limit: int | None = None  # the first `limit` examples only (a large model on a CPU)


@dataclass
class Measure:
    tokens_per_s: float
    step_s: float
    peak_rss_mib: float
    first_step_s: float = 0.0  # from the loop's start to the end of step 1


def cases(tiny_model: Path, qwen_model: Path) -> list[Case]:
    common = {"training.epochs": EPOCHS, "training.probe_every": 0, "training.warmup_ratio": 0.0,
              "training.stop_at_efficacy": 0.0, "data.replay_ratio": 0.0}
    demo = demo_run_config("cpu").with_values(common)
    tiny = demo.with_values({"model.name_or_path": str(tiny_model), "method.target_modules":
                             ["all-linear"], "method.lora_r": 8, "training.micro_batch_size": 8})
    # 494M parameters in fp32 on two cores: seconds per step, so 32 examples in steps of 8,
    # two epochs (one warm-up, one timed).
    qwen = tiny.with_values({"model.name_or_path": str(qwen_model), "method.lora_r": 16,
                             "training.epochs": 2})
    return [Case("demo model (4.7M Llama), LoRA r16 on MLP", demo),
            Case("tiny test model (Llama, hidden 64), LoRA r8 all-linear", tiny),
            Case("Qwen2.5-0.5B shape (494M, random weights), LoRA r16 all-linear", qwen, limit=32)]


def real_tokens(examples: list[Rendered]) -> int:
    return sum(len(e.input_ids) for e in examples)


def ours(cfg: RunConfig, examples: list[Rendered], loss: Any = None,
         loop_class: Any = None) -> Measure:
    """Our engine; `loss` and `loop_class` swap one part out (bench/engine_options.py)."""
    import torch

    from workbench.core.methods.registry import get_method
    from workbench.core.train.loop import TrainLoop

    torch.manual_seed(cfg.training.seed)
    loaded = load_model(cfg.model)
    method = get_method(cfg.method.name)
    model = method.apply(loaded.model, cfg.method)
    loop = (loop_class or TrainLoop)(model, examples, cfg.training,
                                     pad_id=loaded.tokenizer.pad_token_id, device="cpu",
                                     loss=loss or method.loss_for(cfg.method))
    ends: list[float] = []
    started = time.perf_counter()
    loop.run(lambda row: ends.append(time.perf_counter()) and None)
    return _measure(ends, started, loop.per_epoch, real_tokens(examples), first=ends[0] - started)


def trl(cfg: RunConfig, examples: list[Rendered], *, matched: bool = True) -> Measure:
    """TRL as a user sets it up; `matched` also turns off its default activation
    checkpointing (recomputing activations costs about a third more compute), so it does the
    same work as ours."""
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
        **({"gradient_checkpointing": t.gradient_checkpointing} if matched else {}),
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


def _measure(ends: list[float], started: float, per_epoch: int, tokens: int,
             first: float = 0.0) -> Measure:
    """Tokens/s and step time over the epochs after the first (warm-up)."""
    timed = ends[per_epoch - 1:]
    seconds = timed[-1] - timed[0]
    epochs = (len(ends) - per_epoch) / per_epoch
    return Measure(tokens * epochs / seconds, seconds / (len(timed) - 1), 0.0, first)


def _child(engine: str, cfg_file: Path, examples_file: Path) -> None:
    """One measurement in a fresh process: the two engines must not share accelerate's
    process-wide state, and peak memory is then each engine's own."""
    cfg = RunConfig.load(cfg_file)
    examples = read_examples(examples_file)
    m = ours(cfg, examples) if engine == "ours" else trl(cfg, examples,
                                                           matched=engine == "trl")
    print_measure(m)


def print_measure(m: Measure) -> None:
    """A child's one line of output: the measure, with this process's peak memory."""
    import dataclasses

    print(json.dumps({**dataclasses.asdict(m), "peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's resident high-water mark. Not getrusage's ru_maxrss: Linux carries it
    across exec, so a child would report its parent's peak (which loaded the models)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource  # no /proc (macOS): ru_maxrss is in bytes there

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure_in_child(script: str, *args: str) -> Measure:
    """Run `python SCRIPT --child ARGS…` and read the measure it prints last."""
    import subprocess

    out = subprocess.run([sys.executable, script, "--child", *args], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return Measure(**json.loads(out.stdout.strip().splitlines()[-1]))


def flops_per_token(cfg: RunConfig, examples: list[Rendered]) -> float:
    """FLOPs one trained token costs this model with this method (the Train tab's MFU
    formula, at the examples' mean length): the same for both engines."""
    from workbench.core.methods.registry import get_method
    from workbench.core.train import telemetry

    model = get_method(cfg.method.name).apply(load_model(cfg.model).model, cfg.method)
    matmul, trainable, n_layers, attn_dim = telemetry.model_flops_shape(model)
    return telemetry.flops_per_token(matmul_params=matmul, trainable_params=trainable,
                                     n_layers=n_layers, attn_dim=attn_dim,
                                     seq_len=real_tokens(examples) / len(examples))


def write_case(case: Case, store: Store, folder: Path) -> tuple[list[Rendered], Path, Path]:
    """The case's examples, rendered once, and the run YAML + examples file its children read."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = load_model(case.cfg.model).tokenizer
    examples = render_knowledge(store, case.cfg, tokenizer).rendered[:case.limit]
    cfg_file, examples_file = folder / "run.yaml", folder / "examples.json"
    case.cfg.save(cfg_file)
    examples_file.write_text(json.dumps([{"input_ids": e.input_ids, "labels": e.labels}
                                         for e in examples]))
    return examples, cfg_file, examples_file


def read_examples(examples_file: Path) -> list[Rendered]:
    rows = json.loads(examples_file.read_text())
    return [Rendered(r["input_ids"], r["labels"], None, False) for r in rows]  # type: ignore[arg-type]


def run_case(case: Case, store: Store, folder: Path, peak: float) -> dict[str, Any]:
    examples, cfg_file, examples_file = write_case(case, store, folder)
    per_token = flops_per_token(case.cfg, examples)
    results: dict[str, list[Measure]] = {engine: [] for engine in ENGINES}
    for _ in range(ROUNDS):
        for engine in ENGINES:
            results[engine].append(measure_in_child(__file__, engine, str(cfg_file),
                                                    str(examples_file)))
    row: dict[str, Any] = {
        "case": case.name, "examples": len(examples), "real_tokens": real_tokens(examples),
        "longest": max(len(e.input_ids) for e in examples), "epochs": case.cfg.training.epochs,
        "micro_batch": case.cfg.training.micro_batch_size, "flops_per_token": per_token}
    for engine, ms in results.items():
        rate = statistics.median(m.tokens_per_s for m in ms)
        row[engine] = {"tokens_per_s": rate, "step_s": statistics.median(m.step_s for m in ms),
                       "peak_rss_mib": max(m.peak_rss_mib for m in ms),
                       "mfu": per_token * rate / peak, "runs": [m.tokens_per_s for m in ms]}
    row["ratio"] = row["ours"]["tokens_per_s"] / row["trl"]["tokens_per_s"]
    row["ratio_defaults"] = row["ours"]["tokens_per_s"] / row["trl_defaults"]["tokens_per_s"]
    return row


@contextmanager
def scratch_cases() -> Iterator[tuple[Store, Path, list[Case]]]:
    """A scratch workspace with the demo set, and the cases over the demo model, the tiny test
    model and a Qwen2.5-0.5B-shaped one built in it; removed afterwards."""
    from workbench.testing import build_qwen25_shaped_model, build_tiny_model

    with tempfile.TemporaryDirectory(prefix="workbench-train-bench-") as tmp:
        workspace = resolve_workspace(Path(tmp) / "ws")
        store = Store(workspace.db_path)
        install_demo_set(store)
        tiny = build_tiny_model(Path(tmp) / "tiny", "llama")
        qwen = build_qwen25_shaped_model(Path(tmp) / "qwen2.5-0.5b", "0.5B")
        yield store, Path(tmp), cases(tiny, qwen)


def main() -> None:
    import torch

    from workbench.core.train.telemetry import measure_peak_flops

    with scratch_cases() as (store, scratch, all_cases):
        peak = measure_peak_flops("cpu", "fp32", 2048)  # the largest matmuls' rate here
        rows = [run_case(case, store, scratch / f"case{i}", peak)
                for i, case in enumerate(all_cases)]
    import trl as trl_module

    result = {"date": date.today().isoformat(), "machine": machine_summary("cpu"),
              "threads": torch.get_num_threads(), "trl": trl_module.__version__,
              "peak_flops": peak, "rounds": ROUNDS, "cases": rows}
    write_results("train_vs_trl", result, report(result))


def report(r: dict[str, Any]) -> str:
    def cell(c: dict[str, Any], engine: str) -> str:
        m = c[engine]
        return f"{m['tokens_per_s']:.0f} ({_ms(m['step_s'])}, MFU {100 * m['mfu']:.0f} %)"

    rows = "\n".join(
        f"| {c['case']} | {c['examples']} × {c['epochs']} | {cell(c, 'ours')} | "
        f"{cell(c, 'trl')} | **{c['ratio']:.2f}×** | {cell(c, 'trl_defaults')} | "
        f"**{c['ratio_defaults']:.2f}×** | {c['ours']['peak_rss_mib']:.0f} / "
        f"{c['trl']['peak_rss_mib']:.0f} / {c['trl_defaults']['peak_rss_mib']:.0f} MiB |"
        for c in r["cases"])
    return (
        f"# Training: our engine vs TRL SFTTrainer + peft LoRA ({r['date']})\n\n"
        f"Machine: {r['machine']}, {r['threads']} torch threads; TRL {r['trl']}. Same tokenized "
        "examples (the demo set), LoRA settings, learning rate, schedule, effective batch and "
        "fp32; the first epoch not timed; "
        f"{r['rounds']} interleaved rounds, medians. Real (non-padding) tokens/s, step time "
        f"and MFU against the {r['peak_flops'] / 1e9:.0f} GFLOP/s a 2048² fp32 matmul reaches "
        "here. *TRL, same work*: activation checkpointing off, as ours; *TRL defaults*: its "
        "default activation checkpointing on, the recipe as a user gets it."
        "\n\nCommand: `pip install -e \".[bench]\" && python bench/train_vs_trl.py` "
        "(or `workbench bench train`)\n\n"
        "| case | examples × epochs | ours: tokens/s (step, MFU) | TRL, same work | ratio | "
        "TRL defaults | ratio | peak RSS ours / TRL / TRL defaults |\n"
        "|---|---|---|---|---|---|---|---|\n" + rows + "\n"
    )


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
