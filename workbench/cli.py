"""`workbench …`: the command-line client of the headless core.

Every subcommand is a thin wrapper over core functions, like the UI. User errors
(`WorkbenchError`) print one line to stderr and exit with status 2, never a traceback;
`--debug` shows the traceback of anything unexpected.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Sequence
from typing import Any

from workbench import __version__
from workbench.cli_bench import add_bench_parser
from workbench.cli_compare import add_compare_parsers
from workbench.cli_inject import add_inject_parser
from workbench.cli_demo import add_demo_parser
from workbench.cli_knowledge import add_knowledge_parser
from workbench.cli_runs import add_runs_parsers
from workbench.core.config import RunConfig, iter_settings, parse_setting_text
# EXIT_USER_ERROR is re-exported: the status a user error ends the command line with.
from workbench.core.errors import EXIT_USER_ERROR, ConfigError, exit_status


# ---- settings flags generated from the config dataclasses ------------------------------
def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One `--section.field` flag per config field, with the field's help text and choices."""
    for info in iter_settings():
        group = f"{info.section} settings"
        target = next((g for g in parser._action_groups if g.title == group), None)
        target = target or parser.add_argument_group(group)
        kind = "LIST" if typing.get_origin(info.type) is list else info.type.__name__.upper()
        extra = f" [default: {info.default}]"
        target.add_argument(
            f"--{info.path}", dest=info.path, default=None, metavar=kind,
            choices=info.choices, help=info.help + extra,
        )


def setting_values(args: argparse.Namespace) -> dict[str, Any]:
    """The `--section.field` flags the user actually gave, parsed to their field types."""
    values: dict[str, Any] = {}
    for info in iter_settings():
        text = getattr(args, info.path, None)
        if text is not None:
            values[info.path] = parse_setting_text(info, text)
    return values


def _parse_set(pairs: Sequence[str]) -> dict[str, Any]:
    by_path = {info.path: info for info in iter_settings()}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects section.field=value, got {pair!r}")
        if key.strip() == "name":
            values["name"] = text
            continue
        info = by_path.get(key.strip())
        if info is None:
            raise ConfigError(f"unknown setting {key!r} in --set (see `workbench config --help`)")
        values[info.path] = parse_setting_text(info, text)
    return values


# ---- subcommands -----------------------------------------------------------------------
def cmd_config(args: argparse.Namespace) -> int:
    cfg = RunConfig.load(args.file) if args.file else RunConfig()
    values = {**_parse_set(args.set or []), **setting_values(args)}
    if values:
        cfg = cfg.with_values(values, source="command line")
    if args.output:
        path = cfg.save(args.output)
        print(f"saved {path}", file=sys.stderr)
    if not args.quiet:
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


def cmd_models_check(args: argparse.Namespace) -> int:
    from workbench.core.config import ModelConfig
    from workbench.core.models import check_model, format_bytes, format_count

    quant = "4bit" if args.load_in_4bit else "8bit" if args.load_in_8bit else "none"
    cfg = ModelConfig(
        name_or_path=args.model, device=args.device, dtype=args.dtype, quantization=quant,
        trust_remote_code=args.trust_remote_code, revision=args.revision,
    )
    from workbench.core.progress import TerminalProgress

    report = check_model(cfg, progress=TerminalProgress("GGUF import"))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [
        ("model", report["source"]),
        *([("converted to", report["converted_to"])] if report["converted_to"] else []),
        ("architecture", report["architecture"]),
        ("parameters", f"{format_count(report['parameters'])} ({report['parameters']:,})"),
        ("dtype", report["dtype"]),
        ("quantization", report["quantization"]),
        ("device", report["device"]),
        ("weights in memory", format_bytes(report["weight_bytes"])),
        ("memory used by load", format_bytes(report["memory_delta_bytes"])),
        ("load time", f"{report['load_seconds']} s"),
        ("vocabulary", f"{report['vocab_size']:,} tokens"),
        ("chat template", report["chat_template"]),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from workbench.ui.server import ServeOptions, serve  # gradio only for this command

    serve(ServeOptions(host=args.host, port=args.port, share=args.share,
                       password=args.password, workspace=args.workspace,
                       open_browser=args.open_browser))
    return 0


# ---- parser ----------------------------------------------------------------------------
def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `workbench serve`, shared with launch.py."""
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but localhost needs --password "
                   "[default: 127.0.0.1]")
    p.add_argument("--port", type=int, default=7860, help="port [default: 7860]")
    p.add_argument("--share", action="store_true",
                   help="also create a public Gradio share link (needs --password)")
    p.add_argument("--password", default=None,
                   help="password for user 'workbench' (or set $WORKBENCH_PASSWORD); required "
                   "when listening beyond localhost or sharing")
    p.add_argument("--open-browser", action="store_true", help="open the page in a browser")
    # SUPPRESS: given here it wins, absent it leaves the global --workspace alone.
    p.add_argument("--workspace", default=argparse.SUPPRESS,
                   help="workspace folder [default: $WORKBENCH_HOME or ~/knowledge-workbench]")


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

    p = sub.add_parser("serve", help="start the web app (same as python launch.py)")
    add_serve_arguments(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "config", help="validate and print a run config, or the default one",
        usage="workbench config [FILE] [--set SECTION.FIELD=VALUE] [--SECTION.FIELD VALUE] "
        "[-o OUTPUT] [-q] [--memory]",
    )
    p.add_argument("file", nargs="?", help="run YAML to validate (omit for the defaults)")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override one setting (repeatable)")
    p.add_argument("-o", "--output", help="also save the resulting config to this YAML file")
    p.add_argument("-q", "--quiet", action="store_true", help="validate only, print nothing")
    p.add_argument("--memory", action="store_true",
                   help="also print the memory estimate on this machine's device (as YAML "
                   "comments), with a suggestion when it will not fit")
    add_setting_flags(p)
    p.set_defaults(func=cmd_config)

    add_knowledge_parser(sub)

    add_inject_parser(sub)

    add_runs_parsers(sub, add_setting_flags,
                     lambda args: {**_parse_set(args.set or []), **setting_values(args)})

    add_compare_parsers(sub)

    add_demo_parser(sub)

    add_bench_parser(sub)

    models = sub.add_parser("models", help="inspect models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("check", help="load a model and report size, dtype, device and memory")
    p.add_argument("model", help="hub id or local model folder")
    quant = p.add_mutually_exclusive_group()
    quant.add_argument("--load-in-4bit", action="store_true", help="NF4 4-bit (bitsandbytes)")
    quant.add_argument("--load-in-8bit", action="store_true", help="8-bit (bitsandbytes)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    p.add_argument("--revision", default=None, help="hub branch, tag or commit")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model repo's own Python code (only if you trust it)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_models_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return exit_status(lambda: args.func(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
