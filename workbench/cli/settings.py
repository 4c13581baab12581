"""The `--section.field` and `--set section.field=value` flags, generated from the config
dataclasses: one field definition is the YAML key, the widget and these flags. Shared by
`workbench config` and `workbench train`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from workbench.core.config import iter_settings, parse_setting_text
from workbench.core.errors import ConfigError


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One `--section.field` flag per config field, with the field's help text and choices."""
    for info in iter_settings():
        group = f"{info.section} settings"
        target = next((g for g in parser._action_groups if g.title == group), None)
        target = target or parser.add_argument_group(group)
        kind = "LIST" if info.is_list else info.type.__name__.upper()
        # argparse formats help with %: a literal "30%" in a field's text would print the
        # whole action dict in its place.
        text = f"{info.help} [default: {info.default}]".replace("%", "%%")
        target.add_argument(
            f"--{info.path}", dest=info.path, default=None, metavar=kind,
            choices=None if info.is_list else info.choices, help=text,
        )


def setting_values(args: argparse.Namespace) -> dict[str, Any]:
    """The `--section.field` flags the user actually gave, parsed to their field types."""
    values: dict[str, Any] = {}
    for info in iter_settings():
        text = getattr(args, info.path, None)
        if text is not None:
            values[info.path] = parse_setting_text(info, text)
    return values


def parse_set(pairs: Sequence[str]) -> dict[str, Any]:
    """The `--set section.field=value` pairs, parsed to their field types (`name=…` too)."""
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


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting the command line gave, `--set` first and the flags over it."""
    return {**parse_set(args.set or []), **setting_values(args)}
