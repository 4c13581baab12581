"""`workbench …`: the command-line client of the headless core.

Every subcommand is a thin wrapper over core functions, like the UI; each command group is one
module of this package, which adds its parser here (`add_*_parser`) and never imports this
module back. User errors (`WorkbenchError`) print one line to stderr and exit with status 2,
never a traceback; `--debug` shows the traceback of anything unexpected
(`core.errors.exit_status`, shared with the training worker).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from workbench import __version__
from workbench.cli.bench import add_bench_parser
from workbench.cli.compare import add_compare_parsers
from workbench.cli.config import add_config_parser
from workbench.cli.demo import add_demo_parser
from workbench.cli.inject import add_inject_parser
from workbench.cli.knowledge import add_knowledge_parser
from workbench.cli.models import add_models_parser
from workbench.cli.runs import add_runs_parsers
from workbench.cli.serve import add_serve_parser
# EXIT_USER_ERROR is re-exported: the status a user error ends the command line with.
from workbench.core.errors import EXIT_USER_ERROR, exit_status

__all__ = ["EXIT_USER_ERROR", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Knowledge Workbench: inject facts into an open LLM and prove it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--workspace", default=None,
                        help="workspace folder (database, runs) [default: $WORKBENCH_HOME or "
                        "~/knowledge-workbench]")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks for unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In this order in `workbench --help`.
    add_serve_parser(sub)
    add_config_parser(sub)
    add_knowledge_parser(sub)
    add_inject_parser(sub)
    add_runs_parsers(sub)
    add_compare_parsers(sub)
    add_demo_parser(sub)
    add_bench_parser(sub)
    add_models_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return exit_status(lambda: args.func(args), debug=args.debug)
