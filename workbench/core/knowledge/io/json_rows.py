"""JSON rows → facts: ``messages``, alpaca or question/answer objects, checked key by key, and
the array reader that decodes one element at a time so each error names its line."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from workbench.core.knowledge.io.fields import (LIST_FIELDS, _alpaca_question, _draft, _fail, _kind,
                                                _short, _where)
from workbench.core.knowledge.types import FactDraft

_JSON_WHITESPACE = " \t\n\r"


def _text_value(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:  # absent or null: the same as empty
        return ""
    if not isinstance(value, str):
        _fail(where, f'"{key}" must be text, got {_kind(value)}')
    return value


def _group_value(obj: Mapping[str, Any], where: str) -> str:
    """The "group" (or "fact") key of a JSON row as text; a whole number is fine too, since
    an id is the natural thing to group by."""
    key = "group" if "group" in obj else "fact"
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text_value(obj, key, where)


def _list_value(obj: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(where, f'"{key}" must be a list of text, got {_kind(value)}')
    for item in value:
        if not isinstance(item, str):
            _fail(where, f'"{key}" must be a list of text, got a list containing {_kind(item)}')
    return value


def _chat_fields(messages: Any, where: str) -> dict[str, str]:
    """Question, answer and system prompt of a ``messages`` row: exactly one user turn then one
    assistant turn, after an optional system turn. Anything else is refused rather than
    guessed at, because a fact is one question and one answer."""
    if not isinstance(messages, list):
        _fail(where, f'"messages" must be a list, got {_kind(messages)}')
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            _fail(where, f"messages[{index}] must be an object with role and content, "
                         f"got {_kind(message)}")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str):
            _fail(where, f'messages[{index}] "role" must be text, got {_kind(role)}')
        if not isinstance(content, str):
            _fail(where, f'messages[{index}] "content" must be text, got {_kind(content)}')
        turns.append((role.strip().lower(), content))
    system = turns.pop(0)[1] if turns and turns[0][0] == "system" else ""
    roles = [role for role, _ in turns]
    if roles != ["user", "assistant"]:
        seen = ", ".join(_short(role, 20) for role in roles[:6]) or "none"
        _fail(where, "messages must be one user message then one assistant message (after an "
                     f"optional system message); got roles: {seen}")
    return {"question": turns[0][1], "answer": turns[1][1], "system": system}


def _fact_from_object(value: Any, where: str) -> FactDraft:
    if not isinstance(value, dict):
        _fail(where, f"expected a JSON object, got {_kind(value)}")
    if "messages" in value:
        fields: dict[str, Any] = _chat_fields(value["messages"], where)
    elif "instruction" in value or "output" in value:
        fields = {
            "question": _alpaca_question(_text_value(value, "instruction", where),
                                         _text_value(value, "input", where)),
            "answer": _text_value(value, "output", where),
            "system": _text_value(value, "system", where),  # LLaMA-Factory's alpaca column
        }
    elif "question" in value or "answer" in value:
        fields = {key: _text_value(value, key, where) for key in ("question", "answer", "system")}
    else:
        _fail(where, 'unrecognised row: expected "messages", "instruction" and "output", or '
                     '"question" and "answer"')
    for key in ("subject", "source"):
        fields[key] = _text_value(value, key, where)
    fields["group"] = _group_value(value, where)
    for key in LIST_FIELDS:
        fields[key] = _list_value(value, key, where)
    return _draft(where, fields)


def _load_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        _fail(where, f"invalid JSON ({err.msg} at column {err.colno})")
    except RecursionError:
        _fail(where, "JSON nested too deeply")
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        _fail(where, f"invalid JSON ({_short(str(err), 80)})")


def _split_lines(text: str) -> list[str]:
    # Split on \n only: str.splitlines() would also split on U+2028 etc., which may sit raw
    # inside JSON strings. A final newline ends the last line rather than starting a new one.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class _LineCounter:
    """Line numbers of text positions asked for in increasing order, in linear total time."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> int:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _skip_whitespace(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _JSON_WHITESPACE:
        pos += 1
    return pos


def _iter_json_array(text: str, filename: str, start: int) -> Iterator[tuple[int, Any]]:
    """(line, element) for each element of the array starting at `start`. Elements are decoded
    one at a time so each fact, and each error, gets the line where its element starts."""
    decoder = json.JSONDecoder()
    lines = _LineCounter(text)
    pos = _skip_whitespace(text, start + 1)
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            line = lines.at(pos)
            where = _where(filename, line)
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                _fail(_where(filename, err.lineno), f"invalid JSON ({err.msg} at column "
                                                    f"{err.colno})")
            except RecursionError:
                _fail(where, "JSON nested too deeply")
            except ValueError as err:
                _fail(where, f"invalid JSON ({_short(str(err), 80)})")
            yield line, value
            pos = _skip_whitespace(text, pos)
            if text.startswith(",", pos):
                pos = _skip_whitespace(text, pos + 1)
                continue
            if text.startswith("]", pos):
                pos += 1
                break
            _fail(_where(filename, lines.at(pos)), "invalid JSON (expected ',' or ']' in the "
                                                    "array)")
    pos = _skip_whitespace(text, pos)
    if pos < len(text):
        _fail(_where(filename, lines.at(pos)), "invalid JSON (extra text after the array)")
