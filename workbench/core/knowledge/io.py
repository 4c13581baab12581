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
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, NoReturn

from workbench.core.errors import KnowledgeError, quoted
from workbench.core.knowledge.types import FactDraft, text_problem

MAX_FILE_BYTES = 50 * 2**20
MAX_FIELD_CHARS = 20_000
MAX_ROWS = 100_000

FACT_EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv")
DOCUMENT_EXTENSIONS = (".txt", ".md", ".markdown")

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
CSV_DELIMITERS = (",", ";", "\t")
_JSON_WHITESPACE = " \t\n\r"
# Characters that str.splitlines() treats as line breaks but json.dumps leaves raw: escaped on
# export so line-based JSONL readers never split a record in two.
_RAW_LINE_BREAKS = ("\u0085", "\u2028", "\u2029")


@dataclass
class ImportResult:
    """Every fact of a file, plus the harmless rows that were dropped (line number, reason)."""

    facts: list[FactDraft]
    skipped: list[tuple[int, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list, compare=False)  # line each fact starts on


# --- errors -------------------------------------------------------------------------------


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


# --- bytes → text -------------------------------------------------------------------------


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


# --- fields → FactDraft -------------------------------------------------------------------


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


# --- JSON objects -------------------------------------------------------------------------


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


def _alpaca_question(instruction: str, extra_input: str) -> str:
    instruction, extra_input = instruction.strip(), extra_input.strip()
    return f"{instruction}\n\n{extra_input}" if extra_input else instruction


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


# --- JSONL / JSON -------------------------------------------------------------------------


def _split_lines(text: str) -> list[str]:
    # Split on \n only: str.splitlines() would also split on U+2028 etc., which may sit raw
    # inside JSON strings. A final newline ends the last line rather than starting a new one.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


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


def _parse_json_array(text: str, filename: str, start: int) -> ImportResult:
    rows = _Rows(filename)
    for line, value in _iter_json_array(text, filename, start):
        rows.next_row(line)
        rows.add(line, _fact_from_object(value, _where(filename, line)))
    return rows.result()


# --- CSV ----------------------------------------------------------------------------------


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


# --- documents and dispatch ---------------------------------------------------------------


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


# --- rows → facts -------------------------------------------------------------------------


def _folded(text: str) -> str:
    return " ".join(text.lower().split())


def _group_key(draft: FactDraft) -> tuple[str, ...] | None:
    """Which fact a row belongs to: its explicit group, else its subject and answer when it
    has a subject (without one, two rows with the answer "1998" need not be the same fact)."""
    if draft.group:
        return ("group", draft.group)
    if draft.subject.strip():
        return ("same", _folded(draft.subject), _folded(draft.answer))
    return None


def _merge_into(fact: FactDraft, row: FactDraft, where: str) -> None:
    if _folded(row.answer) != _folded(fact.answer):
        _fail(where, f"group {quoted(row.group)} has the answer {quoted(_short(fact.answer))} "
                     f"on an earlier row but {quoted(_short(row.answer))} here",
              hint="give each fact its own group, or put other accepted answers in aliases")
    fact.more_questions += [q for q in row.questions if q not in fact.questions]
    fact.aliases += [a for a in row.aliases if a not in fact.aliases]
    fact.tags += [t for t in row.tags if t not in fact.tags]
    for name in ("subject", "source", "system"):
        if not getattr(fact, name):
            setattr(fact, name, getattr(row, name))


def group_rows(result: ImportResult, filename: str = "") -> ImportResult:
    """One fact per set of rows asking the same thing: rows with the same `group`/`fact`
    value, or else the same non-empty subject and answer (case and spacing ignored). The
    fact's questions are its rows' questions in file order; aliases and tags are merged; the
    other fields come from the first row that has them. Rows with an explicit group and
    different answers are an error (the file says they are one fact and disagrees)."""
    facts: list[FactDraft] = []
    lines: list[int] = []
    by_key: dict[tuple[str, ...], FactDraft] = {}
    numbers = result.lines or list(range(1, len(result.facts) + 1))
    for row, line in zip(result.facts, numbers):
        key = _group_key(row)
        if key is not None and key in by_key:
            _merge_into(by_key[key], row, _where(filename or "the file", line))
            continue
        fact = FactDraft(row.question, row.answer, row.subject, list(row.aliases), list(row.tags),
                         row.source, row.system, list(row.more_questions), row.group)
        if key is not None:
            by_key[key] = fact
        facts.append(fact)
        lines.append(line)
    return ImportResult(facts, list(result.skipped), lines if result.lines else [])


# --- export -------------------------------------------------------------------------------


def _question_rows(facts: Iterable[FactDraft]) -> Iterator[tuple[FactDraft, str, str]]:
    """(fact, one of its questions, group) for every question of every fact. A fact with
    several questions gets a group (its number in the export, unless it came with one) so
    that the rows are read back as one fact even without a subject."""
    for number, fact in enumerate(facts, start=1):
        questions = fact.questions
        group = fact.group or (str(number) if len(questions) > 1 else "")
        for question in questions:
            yield fact, question, group


def _chat_object(fact: FactDraft, question: str, group: str) -> dict[str, Any]:
    messages = [{"role": "system", "content": fact.system}] if fact.system else []
    messages += [{"role": "user", "content": question},
                 {"role": "assistant", "content": fact.answer}]
    row: dict[str, Any] = {"messages": messages}
    for key in ("subject", "aliases", "tags", "source"):
        value = getattr(fact, key)
        if value:
            row[key] = list(value) if key in LIST_FIELDS else value
    if group:
        row["group"] = group
    return row


def _json_line(row: dict[str, Any]) -> str:
    line = json.dumps(row, ensure_ascii=False)
    # Raw line-break characters can only be inside JSON strings here, so escaping them keeps
    # the same value while keeping splitlines()-based readers to one record per line.
    for char in _RAW_LINE_BREAKS:
        line = line.replace(char, f"\\u{ord(char):04x}")
    return line


def export_jsonl(facts: Iterable[FactDraft]) -> str:
    """One ``messages`` line per question of each fact (optional system turn, user,
    assistant), plus subject, aliases, tags, source and group when set; readable by TRL and
    LLaMA-Factory as is."""
    return "".join(_json_line(_chat_object(*row)) + "\n" for row in _question_rows(facts))


def export_csv(facts: Iterable[FactDraft]) -> str:
    """A CSV with columns question,answer,subject,aliases,tags,source,system,group ("|"-joined
    lists), one row per question, that `parse_csv` and `group_rows` read back unchanged."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for fact, question, group in _question_rows(facts):
        writer.writerow([question, fact.answer, fact.subject, _join_list(fact.aliases),
                         _join_list(fact.tags), fact.source, fact.system, group])
    return buffer.getvalue()
