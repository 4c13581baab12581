"""DDP vs FSDP on several processes: tokens/s of the whole run and peak memory per process.

The same run YAML (LoRA with the recipe's replay, no recall checks, a fixed number of steps)
is launched with `accelerate launch --multi_gpu --num_processes N`, once with
`training.distributed: ddp` and once with `fsdp`, and once on one process as the baseline.
Tokens/s is the median over the steps after the first few (all processes together); memory is
the largest process's peak (`mem_peak`: CUDA's max allocated, or a CPU process's peak RSS).

    python bench/distributed.py                  # 2 GPUs (needs at least 2 CUDA devices)
    python bench/distributed.py --model Qwen/Qwen2.5-1.5B-Instruct --processes 4
    python bench/distributed.py --cpu            # 2 CPU processes over gloo (the shape of
                                                 # the comparison, not a GPU figure)

Default model: SmolLM2-135M-Instruct through the GGUF import (no hub needed). Writes
bench/results/distributed.md (or distributed-cpu.md with --cpu).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from results_io import write_results  # noqa: E402  (bench/, the script's own folder)
from workbench.core.store import Store  # noqa: E402
from workbench.core.workspace import resolve_workspace  # noqa: E402
from workbench.demo.bench import demo_run_config  # noqa: E402
from workbench.demo.build import machine_summary  # noqa: E402
from workbench.demo.knowledge import (install_demo_set, load_payload,  # noqa: E402
                                      write_demo_set)

REPO = Path(__file__).resolve().parents[1]
WARMUP = 3  # steps left out of the median (allocator warm-up, first gathers)
GIB = 2**30


def launch(ws: Path, yaml: Path, processes: int) -> None:
    base = [sys.executable, "-m", "workbench", "--workspace", str(ws), "train", str(yaml)]
    if processes > 1:
        base = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                "--num_processes", str(processes), "--num_machines", "1", "--dynamo_backend",
                "no", *base[1:]]
    done = subprocess.run(base, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{yaml.stem} failed:\n{done.stderr[-3000:]}")


def held(ws: Path, run: int) -> str:
    """"258.3 MiB of 516.5 MiB": the parameters each process held, from the run's log (one
    process holds them all)."""
    log = (ws / "runs" / str(run) / "train.log").read_text(encoding="utf-8")
    found = re.search(r"parameters held by each process: (.+)", log)
    return found.group(1).strip() if found else "all"


def figures(store: Store, run: int) -> dict[str, Any]:
    rows = list(store.db.query("SELECT step, tokens_per_s, tokens, step_seconds, mem_peak, "
                               "mem_allocated FROM metrics WHERE run_id = ? ORDER BY step", [run]))
    timed = rows[WARMUP:] or rows
    return {"steps": len(rows),
            "tokens_per_s": statistics.median(r["tokens"] / r["step_seconds"] for r in timed),
            "peak_per_process_gib": max(r["mem_peak"] or 0 for r in rows) / GIB,
            "last_step_per_process_gib": (rows[-1]["mem_allocated"] or 0) / GIB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub id or folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--cpu", action="store_true", help="CPU processes over gloo")
    args = parser.parse_args()
    if not args.cpu:
        import torch

        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if found < args.processes:
            raise SystemExit(f"this compares {args.processes} GPUs and {found} are visible; "
                             f"run it where there are, or pass --cpu")
    model = args.model
    if model is None:
        from workbench.core.gguf_import import import_gguf
        from workbench.realmodel import smollm2_gguf

        model = str(import_gguf(smollm2_gguf()))
    device = "cpu" if args.cpu else "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        ws = resolve_workspace(Path(tmp) / "ws")
        store = Store(ws.db_path)
        # A few facts: the run's final recall round (every probe, asked by all processes
        # together under FSDP) is not what is measured here.
        payload = load_payload()
        install_demo_set(store, write_demo_set(
            {**payload, "facts": payload["facts"][:16], "locality": payload["locality"][:8]},
            Path(tmp) / "facts.json"))
        common = {"model.name_or_path": model, "model.device": device,
                  "training.max_steps": args.steps, "training.probe_every": 0,
                  "training.checkpoint_every": 0, "training.checkpoint_each_epoch": False,
                  "training.epochs": 1000, "training.stop_at_efficacy": 0.0,
                  "training.processes": args.processes}
        # The same examples per step everywhere: N processes x micro-batch vs one x N times it.
        variants = [("one process", 1, {"training.micro_batch_size": args.micro_batch
                                         * args.processes, "training.distributed": "ddp"}),
                    ("ddp", args.processes, {"training.micro_batch_size": args.micro_batch,
                                             "training.distributed": "ddp"}),
                    ("fsdp", args.processes, {"training.micro_batch_size": args.micro_batch,
                                              "training.distributed": "fsdp"})]
        results = []
        for name, processes, values in variants:
            yaml = demo_run_config(device).with_values(
                {**common, **values, "name": name}).save(Path(tmp) / f"{name}.yaml")
            launch(ws.root, yaml, processes)
            run = int(next(iter(store.db.query("SELECT max(id) AS id FROM runs")))["id"])
            results.append({"variant": name, "processes": processes, **figures(store, run),
                            "parameters_held": held(ws.root, run)})
            print(results[-1], flush=True)
    base = results[0]["tokens_per_s"]
    lines = [f"# DDP vs FSDP ({'CPU processes, gloo' if args.cpu else 'GPUs'})", "",
             f"{'SmolLM2-135M-Instruct (its GGUF, imported)' if args.model is None else model}"
             f", LoRA (the demo recipe's "
             f"settings), {args.steps} steps of {args.micro_batch * args.processes} examples, "
             f"{date.today()}, {machine_summary(device)}.", "",
             "| variant | processes | parameters held per process | tokens/s (all) | "
             "vs one process | peak per process | at the last step |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['variant']} | {r['processes']} | {r['parameters_held']} | "
                     f"{r['tokens_per_s']:,.0f} | "
                     f"{r['tokens_per_s'] / base:.2f}x | {r['peak_per_process_gib']:.2f} GiB | "
                     f"{r['last_step_per_process_gib']:.2f} GiB |")
    if args.cpu:
        lines += ["", "FSDP halves the parameters each process holds. A CPU process's resident "
                  "memory does not fall with them here: its peak is set by loading (the whole "
                  "model in every process, before FSDP shards it), and at the last step it is "
                  "mostly the runtime, the activations, the heap glibc keeps and the layers "
                  "FSDP gathers into new buffers at every forward and backward. Processes share "
                  "the machine's cores, so tokens/s shows what gloo's gathers cost, not what "
                  "two GPUs would do. The GPU figures (allocated tensors only) need a machine "
                  "with two GPUs: `python bench/distributed.py`."]
    lines += ["", "Reproduce: `python bench/distributed.py" + (" --cpu" if args.cpu else "") + "`"]
    write_results("distributed-cpu" if args.cpu else "distributed",
                  {"model": args.model or "SmolLM2-135M-Instruct (GGUF import)",
                   "device": device, "results": results},
                  "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
