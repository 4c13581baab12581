"""Import and export of fact files: JSONL/JSON (chat, alpaca or question/answer rows), CSV/TSV,
and plain-text documents. Pure parsing and serialising: no database, no UI.

Parsing is all-or-nothing: a file either yields every fact or raises one `KnowledgeError` that
names the file and line (``facts.csv line 4: no answer``), so an import never stores half a
file. Only harmless rows (blank lines) are dropped, and they are listed in `ImportResult.skipped`.

A fact may have several questions. Files hold one question per row; `group_rows` makes one
fact of the rows that ask the same thing (same `group`/`fact` value, or same subject and
answer), and export writes one row per question with the group filled in, so it round-trips.

`export_jsonl` writes the ``messages`` form that TRL and LLaMA-Factory read unchanged, plus the
extra keys (subject, aliases, tags, source, group) that make a round trip keep every field.

This module is the front door: bytes → text, the file-wide limits (size, rows, duplicates) and
the choice of reader by extension. The jobs behind it have a module each: `fields` (a fact's
fields and the errors naming file and line), `json_rows`, `csv_rows`, `grouping` (rows → facts)
and `export`. The file-wide limits (bytes, rows) live here, beside the only code that reads
them, so changing them here (a test's monkeypatch too) changes them for every reader.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import PurePath

from workbench.core.errors import KnowledgeError, quoted
from workbench.core.knowledge.io.csv_rows import (_csv_records, _fact_from_record, _resolve_columns,
                                                  _sniff_delimiter)
from workbench.core.knowledge.io.export import export_csv, export_jsonl
from workbench.core.knowledge.io.fields import (CSV_COLUMNS, MAX_FIELD_CHARS, ImportResult,
                                                _fail, _short, _where, clean_field)
from workbench.core.knowledge.io.grouping import group_rows
from workbench.core.knowledge.io.json_rows import (_JSON_WHITESPACE, _fact_from_object,
                                                   _iter_json_array, _load_json, _split_lines)
from workbench.core.knowledge.types import FactDraft

__all__ = ["CSV_COLUMNS", "DOCUMENT_EXTENSIONS", "FACT_EXTENSIONS", "MAX_FIELD_CHARS",
           "MAX_FILE_BYTES", "MAX_ROWS", "ImportResult", "clean_field", "export_csv",
           "export_jsonl", "group_rows", "parse_csv", "parse_document", "parse_file",
           "parse_json", "parse_jsonl", "parse_mapping"]

MAX_FILE_BYTES = 50 * 2**20
MAX_ROWS = 100_000
FACT_EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv")
DOCUMENT_EXTENSIONS = (".txt", ".md", ".markdown")


def _decode(data: bytes, filename: str) -> str:
    """The file's text with newlines normalised to \\n, or an error for anything that is not
    usable text (too big, empty, not UTF-8/UTF-16, NUL bytes)."""
    data = bytes(data)
    if len(data) > MAX_FILE_BYTES:
        _fail(filename, f"the file is {len(data) / 2**20:.1f} MiB; the limit is "
                        f"{MAX_FILE_BYTES / 2**20:g} MiB", hint="split it into smaller files")
    if not data:
        _fail(filename, "the file is empty")
    # Spreadsheets on Windows save "Unicode text" as UTF-16 with a byte-order mark; decoding it
    # is friendlier than refusing.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = _decode_utf16(data, filename)
    else:
        text = _decode_utf8(data, filename)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    nul = text.find("\x00")
    if nul >= 0:
        _fail(_where(filename, text.count("\n", 0, nul) + 1), "contains a NUL byte",
              hint="is it a binary file, or UTF-16 without a byte-order mark? Save it as "
                   "UTF-8 text")
    if not text.strip():
        _fail(filename, "the file is empty (only whitespace)")
    return text


def _decode_utf8(data: bytes, filename: str) -> str:
    # The BOM is removed by hand (rather than decoding 'utf-8-sig') so error offsets stay
    # offsets into `body`, which is what the line number is counted from.
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        line = body.count(b"\n", 0, err.start) + 1
        _fail(_where(filename, line), f"byte 0x{body[err.start]:02x} is not valid UTF-8",
              hint="save the file as UTF-8 and import it again")


def _decode_utf16(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-16")  # reads the BOM for the byte order and drops it
    except UnicodeDecodeError as err:
        line = data[: err.start].decode("utf-16", errors="replace").count("\n") + 1
        _fail(_where(filename, line), f"not valid UTF-16 ({err.reason})",
              hint="save the file as UTF-8 and import it again")


def _normalised_key(draft: FactDraft) -> tuple[str, str]:
    return (" ".join(draft.question.lower().split()), " ".join(draft.answer.lower().split()))


class _Rows:
    """Collects a file's facts and skipped rows, enforcing MAX_ROWS and no duplicates."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.facts: list[FactDraft] = []
        self.skipped: list[tuple[int, str]] = []
        self.lines: list[int] = []
        self.first_line: dict[tuple[str, str], int] = {}
        self.count = 0

    def next_row(self, line: int) -> None:
        # Blank rows count too: they bound the memory a file of nothing but newlines takes.
        self.count += 1
        if self.count > MAX_ROWS:
            _fail(_where(self.filename, line), f"more than {MAX_ROWS} rows",
                  hint="split the file into smaller ones")

    def skip(self, line: int, reason: str) -> None:
        self.skipped.append((line, reason))

    def add(self, line: int, draft: FactDraft) -> None:
        key = _normalised_key(draft)
        if key in self.first_line:
            _fail(_where(self.filename, line),
                  f"duplicate of line {self.first_line[key]} (same question and answer)")
        self.first_line[key] = line
        self.facts.append(draft)
        self.lines.append(line)

    def result(self) -> ImportResult:
        if not self.facts:
            _fail(self.filename, "no data rows")
        return ImportResult(self.facts, self.skipped, self.lines)


def _parse_jsonl_text(text: str, filename: str) -> ImportResult:
    rows = _Rows(filename)
    for number, line in enumerate(_split_lines(text), start=1):
        rows.next_row(number)
        if not line.strip():
            rows.skip(number, "blank line")
            continue
        where = _where(filename, number)
        rows.add(number, _fact_from_object(_load_json(line, where), where))
    return rows.result()


def parse_jsonl(data: bytes, filename: str) -> ImportResult:
    """Facts from JSON Lines: one object per line in ``messages``, alpaca or question/answer
    form, with optional subject, aliases, tags and source keys."""
    return _parse_jsonl_text(_decode(data, filename), filename)


def parse_json(data: bytes, filename: str) -> ImportResult:
    """Facts from a .json file: an array of the objects `parse_jsonl` reads, a single
    (possibly pretty-printed) object, or JSON Lines under a .json name."""
    text = _decode(data, filename)
    start = len(text) - len(text.lstrip(_JSON_WHITESPACE))
    if text.startswith("[", start):
        return _parse_json_array(text, filename, start)
    if text.startswith("{", start):
        try:
            whole = json.loads(text)
        except (ValueError, RecursionError):
            whole = None  # not one object: read it line by line, which names the bad line
        if isinstance(whole, dict):
            line = text.count("\n", 0, start) + 1
            rows = _Rows(filename)
            rows.next_row(line)
            rows.add(line, _fact_from_object(whole, _where(filename, line)))
            return rows.result()
    return _parse_jsonl_text(text, filename)


def _parse_json_array(text: str, filename: str, start: int) -> ImportResult:
    rows = _Rows(filename)
    for line, value in _iter_json_array(text, filename, start):
        rows.next_row(line)
        rows.add(line, _fact_from_object(value, _where(filename, line)))
    return rows.result()


def parse_csv(data: bytes, filename: str,
              mapping: dict[str, str] | None = None) -> ImportResult:
    """Facts from a CSV/TSV file with a header row. `mapping` maps FactDraft field names to
    column names; unmapped fields are found by name. Aliases and tags are "|"-separated.
    Line numbers are physical lines, the header being line 1."""
    text = _decode(data, filename)
    delimiter = _sniff_delimiter(text, filename)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records = _csv_records(reader, filename)
    rows = _Rows(filename)
    header: list[str] | None = None
    columns: dict[str, int] = {}
    for line, record in records:
        rows.next_row(line)
        if not any(cell.strip() for cell in record):
            rows.skip(line, "empty row" if record else "blank line")
            continue
        if header is None:
            header = record
            columns = _resolve_columns(header, mapping, _where(filename, line))
            continue
        where = _where(filename, line)
        if len(record) > len(header) and any(cell.strip() for cell in record[len(header):]):
            _fail(where, f"{len(record)} values but the header has {len(header)} columns",
                  hint="quote fields that contain the delimiter")
        rows.add(line, _fact_from_record(record, columns, where))
    return rows.result()


def _extension(filename: str) -> str:
    return PurePath(filename).suffix.lower()


def parse_document(data: bytes, filename: str) -> str:
    """The text of a .txt/.md document, newlines normalised and outer whitespace stripped;
    turning it into question/answer proposals happens elsewhere."""
    if _extension(filename) not in DOCUMENT_EXTENSIONS:
        _fail(filename, "unsupported document type; supported: "
                        + ", ".join(DOCUMENT_EXTENSIONS))
    return _decode(data, filename).strip()


def parse_mapping(pairs: Iterable[str]) -> dict[str, str] | None:
    """`field=column` pairs, as typed in the Knowledge tab (split at commas) or given to
    `--map`, as the mapping `parse_file` takes; None when there are none."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in pairs)):
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise KnowledgeError(f"a column mapping is field=column, got {quoted(pair)}",
                                 hint="e.g. question=prompt, answer=reply")
        mapping[field.strip()] = column.strip()
    return mapping or None


def parse_file(data: bytes, filename: str,
               mapping: dict[str, str] | None = None) -> ImportResult:
    """Facts from a file, by extension: .jsonl, .json, .csv or .tsv (`mapping` applies to
    CSV/TSV only)."""
    extension = _extension(filename)
    if extension == ".jsonl":
        return parse_jsonl(data, filename)
    if extension == ".json":
        return parse_json(data, filename)
    if extension in (".csv", ".tsv"):
        return parse_csv(data, filename, mapping)
    if extension in DOCUMENT_EXTENSIONS:
        _fail(filename, "this is a document, not a fact file; use the document importer to "
                        "propose questions from it")
    _fail(filename, f"unsupported file type {_short(extension) or '(no extension)'}; "
                    f"supported: {', '.join(FACT_EXTENSIONS)} (and "
                    f"{', '.join(DOCUMENT_EXTENSIONS)} through the document importer)")
