"""`workbench bench [NAME…]`: run the benchmarks that ship with the source (`bench/`), each in a
process of its own (timings must not share a warm process), each writing its figures to
`bench/results/<name>.md` and `.json`, the tables the README quotes."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import WorkbenchError

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"  # the repository root's bench/


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str | None  # under bench/; None: a workbench subcommand
    about: str
    minutes: int  # on two CPU cores
    needs: str | None = None  # a module only the [bench] extra installs

    def argv(self) -> list[str]:
        if self.script is None:
            return [sys.executable, "-m", "workbench", "demo", "bench", "--out",
                    str(BENCH_DIR / "results")]
        return [sys.executable, str(BENCH_DIR / self.script)]


BENCHMARKS = (
    Benchmark("train", "train_vs_trl.py", "our training engine vs TRL SFTTrainer + peft LoRA: "
              "real tokens/s, step time, MFU, peak memory", 30, needs="trl"),
    Benchmark("engine", "engine_options.py", "each speed choice of the engine on and off "
              "(head on label tokens, length-sorted steps, torch.compile)", 20),
    Benchmark("shared-prefix", "shared_prefix.py", "a micro-batch's shared chat-template start "
              "computed once vs per row, on SmolLM2-135M: step time, loss", 5),
    Benchmark("first-step", "first_step.py", "time from pressing Train to the first optimizer "
              "step on the demo model", 2),
    Benchmark("telemetry", "telemetry_overhead.py", "cost of per-step telemetry and its "
              "SQLite write", 3),
    Benchmark("compare", "compare.py", "batched multi-pane generation vs one generate per "
              "pane: time per question, first token, tokens/s", 3),
    Benchmark("real-model", "real_model.py", "the real SmolLM2-135M model before/after: "
              "screening 90 facts, live and final probe rounds, Stop during a round", 40),
    Benchmark("shrink-curve", "shrink_curve.py", "a recipe run's update scaled from 0 to 1 on "
              "SmolLM2-135M: efficacy, held-out and locality at each share (needs "
              "`bench/recipe.py no-shrink` first)", 12),
    Benchmark("repair-phase", "repair_phase.py", "more steps of mostly replay after a recipe "
              "run on SmolLM2-135M (a repair phase): efficacy, held-out and locality before and "
              "after (needs `bench/recipe.py no-shrink` first)", 10),
    Benchmark("export", "export_rescore.py", "a recipe run on SmolLM2-135M exported (merged, "
              "f16 and q8_0 GGUF) and each file scored again against the run (needs "
              "`bench/recipe.py default` first)", 8),
    Benchmark("demo", None, "inject the demo set with the default recipe: efficacy, "
              "generalization, locality, wall time", 2),
)


def chosen(names: list[str]) -> list[Benchmark]:
    by_name = {b.name: b for b in BENCHMARKS}
    if names == ["all"]:
        return list(BENCHMARKS)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise WorkbenchError(f"no benchmark named {', '.join(map(repr, unknown))}",
                             hint=f"choose from {', '.join(by_name)} or all")
    return [by_name[n] for n in names]


def check_runnable(benchmarks: list[Benchmark]) -> None:
    """Clear errors before minutes of work: the scripts need the source checkout, and the
    TRL comparison needs the [bench] extra."""
    if any(b.script for b in benchmarks) and not BENCH_DIR.is_dir():
        raise WorkbenchError("the benchmark scripts ship with the source, not the installed "
                             "package", hint="run from a clone of the repository after "
                             "`pip install -e .`")
    missing = sorted({b.needs for b in benchmarks if b.needs and
                      importlib.util.find_spec(b.needs) is None})
    if missing:
        raise WorkbenchError(f"the benchmark needs {', '.join(missing)}",
                             hint='pip install -e ".[bench]"')


def cmd_bench(args: argparse.Namespace) -> int:
    if not args.names:
        width = max(len(b.name) for b in BENCHMARKS)
        for b in BENCHMARKS:
            print(f"{b.name:<{width}}  ~{b.minutes:>2} min  {b.about}")
        print("\nrun one or more: workbench bench NAME… (or all); results go to bench/results/")
        return 0
    benchmarks = chosen(args.names)
    check_runnable(benchmarks)
    failed = []
    for b in benchmarks:
        print(f"== {b.name}: {b.about} (about {b.minutes} min on two CPU cores)", flush=True)
        if subprocess.run(b.argv(), check=False).returncode != 0:
            failed.append(b.name)
    if failed:
        raise WorkbenchError(f"benchmark {', '.join(failed)} failed (its output is above)")
    return 0


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run the benchmarks (training vs TRL, engine options, time "
                       "to first step, telemetry cost, compare speed, demo injection)")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"{', '.join(b.name for b in BENCHMARKS)} or all; none lists them")
    p.set_defaults(func=cmd_bench)
