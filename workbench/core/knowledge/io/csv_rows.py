"""CSV/TSV rows → facts: the delimiter, the records (which may span lines), and which
column holds which field (by name, or by the mapping the user gave)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from workbench.core.knowledge.io.fields import (COLUMN_NAMES, CSV_COLUMNS, LIST_FIELDS,
                                                MAX_FIELD_CHARS, _alpaca_question, _draft, _fail,
                                                _kind, _short, _split_list, _where)
from workbench.core.knowledge.types import FactDraft

CSV_DELIMITERS = (",", ";", "\t")


def _field_count(line: str, delimiter: str) -> int:
    try:
        return len(next(csv.reader([line], delimiter=delimiter), []))
    except csv.Error:
        return 0


def _sniff_delimiter(text: str, filename: str) -> str:
    """The delimiter (",", ";" or tab) that splits the header into the most columns; the
    extension's usual one on a tie. csv.Sniffer is avoided: it guesses from data rows and
    gets free text (full of commas) wrong."""
    default = "\t" if filename.lower().endswith(".tsv") else ","
    header = next((line for line in io.StringIO(text) if line.strip()), "")
    counts = {delimiter: _field_count(header, delimiter) for delimiter in CSV_DELIMITERS}
    best = max(counts.values())
    if best <= 1 or counts[default] == best:
        return default
    return next(delimiter for delimiter in CSV_DELIMITERS if counts[delimiter] == best)


def _csv_problem(err: csv.Error) -> tuple[str, str]:
    message = str(err)
    if "field larger than field limit" in message:
        return (f"a field is longer than {MAX_FIELD_CHARS} characters",
                "or a quote is never closed")
    return (f"not valid CSV ({_short(message, 80)})",
            "a field containing the delimiter, a quote or a line break must be in double "
            "quotes, with its own quotes doubled")


def _csv_records(reader: Any, filename: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, cells); a record may span lines in quoted fields."""
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            problem, hint = _csv_problem(err)
            _fail(_where(filename, line), problem, hint=hint)
        yield line, record


def _column_index(names: list[str], column: str, field_name: str, where: str) -> int:
    wanted = column.strip().lower()
    found = [index for index, name in enumerate(names) if name == wanted]
    if not found:
        shown = ", ".join(_short(name) for name in names[:12] if name) or "none"
        _fail(where, f'no column "{_short(column)}" for {field_name}; the columns are: {shown}')
    if len(found) > 1:
        _fail(where, f'column "{_short(column)}" appears {len(found)} times in the header')
    return found[0]


def _resolve_columns(header: list[str], mapping: Mapping[str, str] | None,
                     where: str) -> dict[str, int]:
    """Field → column index. Mapped fields use the named column ('' means "do not import");
    the rest are auto-detected by name, never taking a column already used."""
    names = [cell.strip().lower() for cell in header]
    mapping = dict(mapping or {})
    unknown = [name for name in mapping if name not in CSV_COLUMNS]
    if unknown:
        _fail(where, f"cannot map unknown field {_short(str(unknown[0]))!r}; the fields are "
                     + ", ".join(CSV_COLUMNS))
    columns: dict[str, int] = {}
    for field_name, column in mapping.items():
        if column is None or column == "":
            continue
        if not isinstance(column, str):
            _fail(where, f"the column mapped to {field_name} must be a name, got {_kind(column)}")
        columns[field_name] = _column_index(names, column, field_name, where)
    for field_name, candidates in COLUMN_NAMES.items():
        if field_name in mapping:
            continue
        for candidate in candidates:
            if candidate in names and names.index(candidate) not in columns.values():
                columns[field_name] = _column_index(names, candidate, field_name, where)
                break
    for required in ("question", "answer"):
        if required not in columns:
            shown = ", ".join(_short(name) for name in names[:12] if name) or "none"
            _fail(where, f"no {required} column (looked for {', '.join(COLUMN_NAMES[required])}; "
                         f"the header has: {shown})", hint="choose the columns in the mapping")
    # Alpaca as CSV: an instruction column comes with an optional input column, which belongs
    # to the question exactly as in alpaca JSON.
    if (names[columns["question"]] == "instruction" and "question" not in mapping
            and "input" in names and names.index("input") not in columns.values()):
        columns["input"] = names.index("input")
    return columns


def _fact_from_record(record: list[str], columns: Mapping[str, int], where: str) -> FactDraft:
    def cell(name: str) -> str:
        index = columns.get(name)
        return record[index] if index is not None and index < len(record) else ""

    fields: dict[str, Any] = {name: cell(name) for name in CSV_COLUMNS if name not in LIST_FIELDS}
    fields["question"] = _alpaca_question(fields["question"], cell("input"))
    for name in LIST_FIELDS:
        fields[name] = _split_list(cell(name))
    return _draft(where, fields)
