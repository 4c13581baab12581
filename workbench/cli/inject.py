"""`workbench inject FACTS_FILE --model MODEL`: import, prepare, train with the recommended
recipe, score, and write the adapter and scorecard (`core/inject.py`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workbench.core.methods.registry import REGISTRY
from workbench.core.progress import TerminalProgress
from workbench.core.scoring import percent


def cmd_inject(args: argparse.Namespace) -> int:
    from workbench.core.inject import inject
    from workbench.core.workspace import open_workspace

    store, workspace = open_workspace(args.workspace)
    bar = TerminalProgress()

    def stage(name: str) -> Any:
        bar.stage = name
        return bar

    def on_step(row: dict[str, Any], total: int) -> None:
        bar.stage = "training"
        bar(min(1.0, row["step"] / max(1, total)),
            f"step {row['step']} of {total}, loss {row['loss']:.3f}")

    result = inject(store, workspace, Path(args.facts_file), args.model, set_name=args.set,
                    method=args.method, out=Path(args.out) if args.out else None,
                    device=args.device, stage=stage, on_step=on_step)
    print(file=sys.stderr)
    print(result.import_message)
    print(f"run {result.run_id} on set {result.set_name!r}: "
          + ", ".join(f"{k} {percent(v)}" for k, v in result.scores.items()))
    if result.verdict:
        print(result.verdict)
        for line in result.verdict_details:
            print(f"  {line}")
    if result.stopped_early:
        print(f"stopped early: {result.stopped_early}")
    if result.out is not None:
        print(f"wrote {result.out}/ (adapter or model, and scorecard.json)")
    if args.json:
        print(json.dumps({"run": result.run_id, "scores": result.scores,
                          "verdict": result.verdict,
                          "verdict_details": list(result.verdict_details)}))
    return 0


def add_inject_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inject", help="the whole job: import a facts file, prepare, train with the recommended "
        "recipe, score, and write the adapter and scorecard")
    p.add_argument("facts_file", help="CSV, TSV, JSON or JSONL of facts (question, answer, …)")
    p.add_argument("--model", required=True,
                   help="hub id, local model folder, or a .gguf file")
    p.add_argument("--method", default=None, choices=tuple(REGISTRY),
                   help="override the recommended method")
    p.add_argument("--set", default=None, help="name of the new knowledge set (default: the "
                   "file's name)")
    p.add_argument("--out", default=None, help="folder to write adapter/ (or model/) and "
                   "scorecard.json into; must not exist or be empty")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    p.set_defaults(func=cmd_inject)
