"""`setting()` fields and the `Section` base: typed, validated config dataclasses.

Split from config.py so that each method module can declare its own settings dataclass
(methods/lora.py, full.py, located.py, distill.py) and config.py can build its method section
from the registry of methods without an import cycle.
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
import typing
from dataclasses import field
from typing import Any, ClassVar

from workbench.core.errors import ConfigError

# How a rejected value is shown in an error: a few items and characters of it. A YAML file of
# a few hundred bytes can expand, through anchors and aliases, to a list of a billion items,
# whose full repr would never finish.
_VALUE_REPR = reprlib.Repr()
_VALUE_REPR.maxstring = _VALUE_REPR.maxother = 80
_VALUE_REPR.maxlevel = 2


def shown(value: Any) -> str:
    """A rejected value as an error message quotes it: its start only."""
    return _VALUE_REPR.repr(value)


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    advanced: bool = False,
    label: str = "",
) -> Any:
    """A config field with its help text and bounds (inclusive `minimum`/`maximum`,
    exclusive `above`/`below`). `advanced` fields are hidden in the UI's simple view; `label`
    names the field for people (the UI's widgets, the recipe's lines)."""
    meta = {
        "help": help,
        "label": label,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "above": above,
        "below": below,
        "advanced": advanced,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _describe_bounds(kind: str, meta: dict[str, Any]) -> str:
    """Plain words for a numeric constraint: 'a positive integer', 'a number from 0 to 1'."""
    noun = "integer" if kind == "int" else "number"
    lo, hi, above, below = meta["minimum"], meta["maximum"], meta["above"], meta["below"]
    if lo is not None and hi is not None:
        return f"a {noun} from {lo:g} to {hi:g}"
    if above is not None and below is not None:
        return f"a {noun} greater than {above:g} and less than {below:g}"
    if lo is not None and below is not None:
        return f"a {noun} from {lo:g} up to (not including) {below:g}"
    if (kind == "int" and lo == 1) or above == 0:
        return f"a positive {noun}"
    if lo == 0:
        return f"a non-negative {noun}"
    if lo is not None:
        return f"a {noun} of at least {lo:g}"
    if above is not None:
        return f"a {noun} greater than {above:g}"
    return f"an {noun}" if kind == "int" else f"a {noun}"


def _in_bounds(value: float, meta: dict[str, Any]) -> bool:
    checks = (
        meta["minimum"] is None or value >= meta["minimum"],
        meta["maximum"] is None or value <= meta["maximum"],
        meta["above"] is None or value > meta["above"],
        meta["below"] is None or value < meta["below"],
    )
    return all(checks)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    """(True, inner) for `X | None`, else (False, tp)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


class Section:
    """Base of the config sections: validates every field after construction."""

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            setattr(self, f.name, self._check(f, hints[f.name], value))
        self.check_together()

    def check_together(self) -> None:
        """Cross-field rules of a section; override where fields depend on each other."""

    def fail(self, name: str, must: str, value: Any) -> ConfigError:
        where = f"{self.section}.{name}" if self.section else name
        return ConfigError(f"{where} must be {must}, got {shown(value)}")

    def _check(self, f: dataclasses.Field[Any], tp: Any, value: Any) -> Any:
        meta = f.metadata
        optional, tp = _is_optional(tp)
        if value is None:
            if optional:
                return None
            raise self.fail(f.name, "set (it has no empty value)", value)
        if tp is bool:
            if not isinstance(value, bool):
                raise self.fail(f.name, "true or false", value)
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int) or not _in_bounds(value, meta):
                raise self.fail(f.name, _describe_bounds("int", meta), value)
            return value
        if tp is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            number = 0.0
            try:
                number = float(value) if ok else number
            except OverflowError:  # an integer too big for a float (400 digits in a YAML file)
                ok = False
            if not ok or value != value or not _in_bounds(number, meta):  # NaN fails too
                raise self.fail(f.name, _describe_bounds("float", meta), value)
            return number
        if tp is str:
            if not isinstance(value, str):
                raise self.fail(f.name, "text", value)
            if meta["choices"] and value not in meta["choices"]:
                raise self.fail(f.name, "one of " + ", ".join(meta["choices"]), value)
            return value
        if typing.get_origin(tp) is list:
            (item_tp,) = typing.get_args(tp)
            if not isinstance(value, (list, tuple)):
                raise self.fail(f.name, f"a list of {item_tp.__name__}", value)
            for item in value:
                bad_int = item_tp is int and (isinstance(item, bool) or not isinstance(item, int))
                if bad_int or not isinstance(item, item_tp):
                    raise self.fail(f.name, f"a list of {item_tp.__name__}", value)
            if meta["choices"] and any(item not in meta["choices"] for item in value):
                raise self.fail(f.name, "a list of any of " + ", ".join(meta["choices"]), value)
            return list(value)
        raise TypeError(f"unsupported config field type {tp!r} for {f.name}")  # a bug, not input
