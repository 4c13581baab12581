"""`workbench config`: validate and print a run config (or the default one), save it, and
show the Method tab's memory and time estimate for it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.cli.settings import add_setting_flags, given_values
from workbench.core.config import RunConfig


def cmd_config(args: argparse.Namespace) -> int:
    cfg = RunConfig.load(args.file) if args.file else RunConfig()
    values = given_values(args)
    if args.name is not None:
        values["name"] = args.name
    if values:
        cfg = cfg.with_values(values, source="command line")
    if args.output:
        path = cfg.save(args.output)
        print(f"saved {path}", file=sys.stderr)
    if not args.quiet and not args.output:  # saved to a file, the YAML is there to read
        sys.stdout.write(cfg.to_yaml())
    if args.memory:
        print_estimate(args, cfg)
    return 0


def print_estimate(args: argparse.Namespace, cfg: RunConfig) -> None:
    """The Method tab's memory and time estimate, for the device this machine would train on."""
    from workbench.core.estimate import preflight
    from workbench.core.workspace import open_workspace

    store, _ = open_workspace(args.workspace)
    checked = preflight(cfg, store)
    print("\n".join(f"# {line}" for line in checked.memory.lines()))
    if checked.time is not None:
        print(f"# {checked.time.line()}")


def add_config_parser(sub: Any) -> None:
    p = sub.add_parser(
        "config", help="validate and print a run config, or the default one",
        usage="workbench config [FILE] [--set SECTION.FIELD=VALUE] [--SECTION.FIELD VALUE] "
        "[--name NAME] [-o OUTPUT] [-q] [--memory]",
    )
    p.add_argument("file", nargs="?", help="run YAML to validate (omit for the defaults)")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override one setting (repeatable)")
    p.add_argument("--name", help="the run's name (the same as --set name=NAME)")
    p.add_argument("-o", "--output",
                   help="save the resulting config to this YAML file instead of printing it")
    p.add_argument("-q", "--quiet", action="store_true", help="validate only, print nothing")
    p.add_argument("--memory", action="store_true",
                   help="also print the memory estimate on this machine's device (as YAML "
                   "comments), with a suggestion when it will not fit")
    add_setting_flags(p)
    p.set_defaults(func=cmd_config)
