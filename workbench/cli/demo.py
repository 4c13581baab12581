"""`workbench demo …`: rebuild the embedded demo model, benchmark injection into it, and
(re)install the demo knowledge set into a workspace."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from workbench.core.progress import Progress


def _printer() -> Progress:
    started = time.monotonic()

    def show(fraction: float, message: str) -> None:
        bar = "#" * int(30 * fraction)
        print(f"\r[{bar:<30}] {100 * fraction:5.1f}%  {time.monotonic() - started:6.0f} s  "
              f"{message[:60]:<60}", end="", file=sys.stderr, flush=True)
        if fraction >= 1.0:
            print(file=sys.stderr)

    return show


def cmd_build_model(args: argparse.Namespace) -> int:
    from workbench.demo.build import build_model, rewrite_knowledge

    if args.set_only:
        n_locality, _ = rewrite_knowledge(Path(args.out), Path(args.set_file), device=args.device)
        print(f"demo set written to {args.set_file} ({n_locality} locality probes)")
        return 0

    report = build_model(Path(args.out), Path(args.set_file), device=args.device,
                         progress=_printer())
    print(f"demo model written to {args.out} in {report.total_seconds / 60:.1f} min on "
          f"{report.machine}")
    for split, share in report.accuracy.items():
        print(f"  {split:<10} {100 * share:5.1f} % of {report.questions[split]} questions")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from workbench.demo.bench import report, run_bench, write_results

    result = run_bench()
    print(report(result))
    if args.out:
        print(f"written to {write_results(result, Path(args.out))}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from workbench.demo.bench import demo_run_config

    cfg = demo_run_config()
    if args.output:
        cfg.save(args.output)
        print(f"saved to {args.output}; train with: workbench train {args.output}")
    else:
        print(cfg.to_yaml(), end="")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from workbench.core.store import Store
    from workbench.core.workspace import resolve_workspace
    from workbench.demo.knowledge import DEMO_SET_NAME, install_demo_set

    workspace = resolve_workspace(args.workspace)
    sid = install_demo_set(Store(workspace.db_path), name=args.name)
    print(f"installed {args.name!r} (set {sid})" if sid else
          f"a set named {args.name!r} already exists; nothing changed" +
          ("" if args.name != DEMO_SET_NAME else " (pass --name to install a copy)"))
    return 0


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    from workbench.core.paths import DEMO_MODEL_DIR, DEMO_SET_FILE
    from workbench.demo.knowledge import DEMO_SET_NAME

    demo = sub.add_parser("demo", help="the embedded demo model and knowledge set")
    dsub = demo.add_subparsers(dest="demo_command", metavar="ACTION", required=True)
    p = dsub.add_parser("build-model", help="rebuild the demo model and knowledge set from the "
                        "seed (about 7 minutes on 2 CPU cores; a GPU is used when present)")
    p.add_argument("--out", default=str(DEMO_MODEL_DIR), help="model folder to write")
    p.add_argument("--set-file", default=str(DEMO_SET_FILE), help="knowledge set file to write")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--set-only", action="store_true", help="keep the model; write the demo "
                   "set and the model's general-knowledge list again from it")
    p.set_defaults(func=cmd_build_model)
    p = dsub.add_parser("bench", help="inject the demo set with the default method and report "
                        "efficacy, generalization, locality and wall time")
    p.add_argument("--out", default=None, help="also write the report to this folder "
                   "(e.g. bench/results)")
    p.set_defaults(func=cmd_bench)
    p = dsub.add_parser("config", help="print (or save) the run YAML of the default demo "
                        "injection")
    p.add_argument("-o", "--output", default=None, help="save it to this YAML file")
    p.set_defaults(func=cmd_config)
    p = dsub.add_parser("install", help="add the demo knowledge set to the workspace")
    p.add_argument("--name", default=DEMO_SET_NAME, help="name of the set to create")
    p.set_defaults(func=cmd_install)
