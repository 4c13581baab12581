"""The training worker's entry point: the process that runs one stored run to its end.

    python -m workbench.core.train.worker [--workspace W] worker RUN_ID [--resume]
    python -m workbench.core.train.worker standby

`control` starts the first form for each run (`control.WORKER_COMMAND`); the app keeps one
process of the second form ready (`standby`), which waits with its imports done and then runs
the first form's arguments in-process. Both live in the core so that starting a run never
goes through the command-line client above it; `workbench worker …` and `workbench standby`
call the same functions. The arguments keep the shape of those CLI commands, so a run's log
and process list read the same whichever started it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from workbench.core.errors import exit_status


def run_worker(workspace: str | None, run_id: int, *, resume: bool = False) -> int:
    """Train run `run_id` of `workspace` in this process (from its last complete checkpoint
    when `resume`), then say how it ended on stdout, which is the run's log."""
    from workbench.core.train.run import execute_run
    from workbench.core.workspace import open_workspace

    store, opened = open_workspace(workspace)
    summary = execute_run(store, opened, run_id, resume=resume)
    print(f"run {run_id} {summary.status} after {summary.steps} steps", flush=True)
    return 0


def serve_standby() -> int:
    """Be the app's spare worker: import now, then run the one job line the app sends through
    `main`, error handling and exit status included, exactly as a fresh worker would."""
    from workbench.core.train import standby

    return standby.serve(main)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench.core.train.worker",
                                     description="Run a stored training run (started by the app "
                                     "and `workbench train --background`, not by hand).")
    parser.add_argument("--workspace", default=None, help="workspace folder")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("worker", help="train one run")
    p.add_argument("run_id", type=int)
    p.add_argument("--resume", action="store_true")
    sub.add_parser("standby", help="wait, imports done, for one `worker` line on stdin")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "standby":
        return exit_status(serve_standby, debug=args.debug)
    return exit_status(lambda: run_worker(args.workspace, args.run_id, resume=args.resume),
                       debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
