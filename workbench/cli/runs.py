"""`workbench train`, `workbench runs …`, and the hidden `worker`/`standby` commands, which
call the training worker's core entry point (`core/train/worker.py`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from workbench.cli.settings import add_setting_flags, given_values
from workbench.core.config import RunConfig
from workbench.core.data.names import ScoreMetric
from workbench.core.scoring import percent
from workbench.core.workspace import open_workspace


def _progress_bar() -> Callable[[dict[str, Any], int], None]:
    started = time.monotonic()
    first: list[int] = []  # the first step this process ran (a resume starts mid-way)

    def show(row: dict[str, Any], total: int) -> None:
        if not first:
            first.append(row["step"])
        done = row["step"] - first[0] + 1
        eta = (time.monotonic() - started) / done * (total - row["step"])
        bar = "#" * int(30 * row["step"] / total)
        print(f"\r[{bar:<30}] step {row['step']}/{total}  epoch {row['epoch']:.2f}  "
              f"loss {row['loss']:.4f}  {row['tokens_per_s']:.0f} tok/s  ETA {eta:.0f} s",
              end="", file=sys.stderr, flush=True)

    return show


def _shared_run_id(create: Callable[[], int], cfg: RunConfig) -> int:
    """Under `accelerate launch` the main process registers the run and tells the others."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return create()
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast

    from workbench.core.device import pick_device

    # cpu=True selects the gloo backend: processes on CPUs (or tests) instead of GPUs.
    state = PartialState(cpu=pick_device(cfg.model.device) == "cpu")
    run_id = create() if state.is_main_process else 0
    return int(broadcast(torch.tensor([run_id], device=state.device), from_process=0).item())


def cmd_train(args: argparse.Namespace, values: dict[str, Any]) -> int:
    from workbench.core.train import control
    from workbench.core.train.run import create_run, execute_run, is_main_process

    store, workspace = open_workspace(args.workspace)
    if args.resume is not None:
        run_id = args.resume
    else:
        cfg = RunConfig.load(args.file)
        if values:
            cfg = cfg.with_values(values, source="command line")
        if args.background:
            run_id = control.start_run(store, workspace, cfg)
            print(f"run {run_id} started in the background; `workbench runs show {run_id}` "
                  f"follows it, `workbench runs stop {run_id}` stops it")
            return 0
        run_id = _shared_run_id(lambda: create_run(store, workspace, cfg), cfg)
    main = is_main_process()
    if main:
        print(f"run {run_id}: {workspace.run_dir(run_id)}", file=sys.stderr)
    summary = execute_run(store, workspace, run_id, resume=args.resume is not None,
                          progress=_progress_bar())
    if main:
        print(file=sys.stderr)
        scores = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in summary.scores.items())
        loss = f"{summary.final_loss:.4f}" if summary.final_loss is not None else "-"
        print(f"run {run_id} {summary.status}: {summary.steps} steps, final loss {loss}, "
              f"{summary.seconds:.1f} s{'; ' + scores if scores else ''}; outputs in "
              f"{summary.output_dir}")
        from workbench.core.train.jobs import get_run
        from workbench.core.train.verdict import run_verdict

        found = run_verdict(store, get_run(store, run_id))
        if found is not None:
            print(found.headline)
            for line in (*found.details, found.advice):
                if line:
                    print(f"  {line}")
        elif summary.stopped_early:
            print(f"stopped early: {summary.stopped_early}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from workbench.core.train.worker import run_worker

    return run_worker(args.workspace, args.run_id, resume=args.resume)


def cmd_standby(_args: argparse.Namespace) -> int:
    from workbench.core.train.worker import serve_standby

    return serve_standby()


def cmd_runs(args: argparse.Namespace) -> int:
    from workbench.core.train import control, history
    from workbench.core.train.explain import explain_run

    store, workspace = open_workspace(args.workspace)
    action = args.runs_command or "list"
    if action == "list":
        rows = history.list_runs(store, limit=None)[::-1]  # oldest first, as ids grow
        for r in rows:
            flag = f"  [{r.verdict}]" if r.verdict else ""
            print(f"{r.id:>4}  {r.status:<11} {r.step:>6}/{r.total_steps or '?':<6} "
                  f"{r.method:<10} {r.name}{flag}")
        if not rows:
            print("no runs yet: `workbench train RUN.yaml` starts one")
    elif action == "show":
        status = control.run_status(store, args.run_id)
        run = status["run"]
        last = status["metrics"][-1] if status["metrics"] else {}
        print(show_line(run, last))
        if status["recall"]:
            print(recall_line(status["recall"][-1]))
        message = explain_run(run, last.get("step"), status["verdict"])
        print(" ".join(filter(None, (message.title + ".", message.detail))))
        if message.advice:
            print("what to do:", message.advice)
        print(status["log"])
    elif action == "stop":
        control.stop_run(store, args.run_id)
        print(f"run {args.run_id}: stop requested; it saves a checkpoint and exits after the "
              f"current step")
    elif action == "resume":
        control.resume_run(store, workspace, args.run_id)
        print(f"run {args.run_id} resumed in the background")
    return 0


def show_line(run: dict[str, Any], last: dict[str, Any]) -> str:
    """`run 3 (name): running, step 40/196, loss 1.2345`; before the first step, no loss."""
    head = f"run {run['id']} ({run['name']}): {run['status']}"
    loss = last.get("loss")
    if not last or loss is None or loss != loss:  # NaN: no step has been taken
        return f"{head}, no step taken yet ({run['total_steps'] or '?'} planned)"
    return f"{head}, step {last.get('step', 0)}/{run['total_steps'] or '?'}, loss {loss:.4f}"


def recall_line(point: dict[str, Any]) -> str:
    """`recall at step 40: efficacy 90% · held-out 85% · kept 100%` from a recall-curve point."""
    labels = {ScoreMetric.EFFICACY: "efficacy", ScoreMetric.GENERALIZATION: "held-out",
              ScoreMetric.LOCALITY: "kept", ScoreMetric.ABSTENTION: "abstains"}
    parts = [f"{label} {percent(point[m])}" for m, label in labels.items()
             if point.get(m) is not None]
    return f"recall at step {point['step']}: " + " · ".join(parts)


def add_runs_parsers(sub: Any) -> None:
    """`train`, `runs` and the hidden `worker`/`standby` (the app starts the core's worker
    module itself; these stay for anyone who started workers through the CLI)."""
    p = sub.add_parser("train", help="train a run from its YAML (in this process, or --background)",
                       usage="workbench train RUN.yaml [--background] [--set SECTION.FIELD=VALUE] "
                       "[--SECTION.FIELD VALUE] | workbench train --resume RUN_ID")
    p.add_argument("file", nargs="?", help="run YAML (see `workbench config`)")
    p.add_argument("--resume", type=int, metavar="RUN_ID",
                   help="continue a stopped or interrupted run from its last complete checkpoint")
    p.add_argument("--background", action="store_true",
                   help="start a worker process and return at once")
    p.add_argument("--name", help="the run's name (the same as --set name=NAME)")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override one setting (repeatable)")
    add_setting_flags(p)

    def train(args: argparse.Namespace) -> int:
        if (args.file is None) == (args.resume is None):
            p.error("give either a run YAML or --resume RUN_ID")
        values = given_values(args)
        if args.name is not None:
            values["name"] = args.name
        return cmd_train(args, values)

    p.set_defaults(func=train)

    # Started by the app, not by users: hidden from the help.
    p = sub.add_parser("worker")
    p.add_argument("run_id", type=int)
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=cmd_worker)
    sub.add_parser("standby").set_defaults(func=cmd_standby)
    sub._choices_actions = [a for a in sub._choices_actions if a.dest not in ("worker", "standby")]

    runs = sub.add_parser("runs", help="list, follow, stop and resume runs")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    rsub.add_parser("list", help="all runs with their status (the default)")
    for name, text in (("show", "status, latest metrics, recall and log tail of a run"),
                       ("stop", "ask a running run to save and stop"),
                       ("resume", "continue a stopped/interrupted run in the background")):
        rsub.add_parser(name, help=text).add_argument("run_id", type=int)
    runs.set_defaults(func=cmd_runs)
