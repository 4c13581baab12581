"""A fact's fields as files give them: the limits, the checks every imported or typed field
meets, the list cells ("a|b"), and the errors that name the file and line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from workbench.core.errors import KnowledgeError
from workbench.core.knowledge.types import FactDraft, text_problem

MAX_FIELD_CHARS = 20_000
# The CSV columns export_csv writes, which are also the FactDraft fields a mapping may name.
CSV_COLUMNS = ("question", "answer", "subject", "aliases", "tags", "source", "system", "group")
LIST_FIELDS = ("aliases", "tags")
# Column names recognised without a mapping (compared lowercased), in order of preference.
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "question": ("question", "prompt", "instruction"),
    "answer": ("answer", "response", "output"),
    "subject": ("subject",),
    "aliases": ("aliases",),
    "tags": ("tags",),
    "source": ("source",),
    "system": ("system",),
    "group": ("group", "fact"),
}
LIST_SEPARATOR = "|"


@dataclass
class ImportResult:
    """Every fact of a file, plus the harmless rows that were dropped (line number, reason)."""

    facts: list[FactDraft]
    skipped: list[tuple[int, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list, compare=False)  # line each fact starts on


def _where(filename: str, line: int | None = None) -> str:
    return filename if line is None else f"{filename} line {line}"


def _fail(where: str, problem: str, hint: str | None = None) -> NoReturn:
    raise KnowledgeError(f"{where}: {problem}", hint=hint)


def _kind(value: Any) -> str:
    """A JSON value's type in the words a user of the file would use (never its repr, which
    could be huge or recurse too deeply)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(text: str, limit: int = 30) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean_field(value: str, where: str, name: str) -> str:
    """A fact field stripped, newlines normalised, and checked: no NUL, no unpaired surrogate,
    at most MAX_FIELD_CHARS. Shared with the forms (`sets.add_facts`), so a typed fact meets
    the same limits as an imported one."""
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > MAX_FIELD_CHARS:
        _fail(where, f"{name} is {len(text)} characters long; the limit is {MAX_FIELD_CHARS}")
    problem = text_problem(text)
    if problem:
        _fail(where, f"{name} {problem}")
    return text


def _draft(where: str, fields: Mapping[str, Any]) -> FactDraft:
    """A FactDraft from type-checked raw fields (str, or list[str] for aliases/tags): text is
    stripped and checked, empty list items are dropped, question and answer are required."""
    text = {name: clean_field(fields.get(name, ""), where, name)
            for name in ("question", "answer", "subject", "source", "system", "group")}
    if not text["question"]:
        _fail(where, "no question")
    if not text["answer"]:
        _fail(where, "no answer")
    lists = {name: [item for item in (clean_field(raw, where, f"an item of {name}")
                                      for raw in fields.get(name, [])) if item]
             for name in LIST_FIELDS}
    return FactDraft(**text, **lists)


def _alpaca_question(instruction: str, extra_input: str) -> str:
    instruction, extra_input = instruction.strip(), extra_input.strip()
    return f"{instruction}\n\n{extra_input}" if extra_input else instruction


def _split_list(cell: str) -> list[str]:
    """Items of a "|"-separated CSV cell; "\\|" is a literal pipe and "\\\\" a backslash (any
    other backslash is kept as typed)."""
    items, current, chars = [], [], iter(cell)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            current.append(following if following in (LIST_SEPARATOR, "\\") else char + following)
        elif char == LIST_SEPARATOR:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return items


def _join_list(items: Iterable[str]) -> str:
    return LIST_SEPARATOR.join(
        item.replace("\\", "\\\\").replace(LIST_SEPARATOR, "\\" + LIST_SEPARATOR)
        for item in items)
