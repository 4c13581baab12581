"""Bad input of any kind gets a clear message: never another exception, never a hang, never
half a write.

Every place a user's file or typed text enters the workbench is fed random bytes and text
(hypothesis) and a corpus of hand-made nasty files:

- fact files, as the Knowledge tab and `workbench knowledge import` take them
  (`knowledge_actions.import_upload`, `transfer.import_bytes`): CSV, TSV, JSON, JSONL, and
  the wrong kinds (documents, .pdf, .docx, no extension);
- documents turned into proposals (`transfer.propose_from_document`), the proposals accepted
  into a set, and whatever a model replies when it is asked to write them;
- typed knowledge: the fact form, set names, fact ids to delete, the CSV column mapping,
  abstention questions and phrasing edits;
- run configs: `RunConfig.from_yaml` (the API, stored runs) and `RunConfig.load` (the Method
  tab's YAML upload);
- chat: the Compare tab's question and system prompt through `chat.ask_panes` on a tiny
  model, and the turn saved with `chat.save_turn`.

The promise checked on every call: it either succeeds with sane content, or raises
`WorkbenchError` whose message is one short printable line with no traceback or Python
exception name in it; a refused call leaves every table's row count as it was
(`Store.counts`); and it answers within a time limit. Files that must be accepted (UTF-16
with a byte-order mark, a UTF-8 BOM, CR line ends) are checked to be, with the right facts.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import re
import signal
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from workbench.core.compare.chat import (MAX_QUESTION_CHARS, ask_panes, chat_log, clean_question,
                                         save_turn)
from workbench.core.compare.pool import BASE, ComparePool, Sampling
from workbench.core.config import SECTIONS, ModelConfig, RunConfig
from workbench.core.errors import WorkbenchError
from workbench.core.knowledge import documents, probes, sets, transfer
from workbench.core.knowledge.io import MAX_FIELD_CHARS, MAX_FILE_BYTES, MAX_ROWS
from workbench.core.knowledge.types import Fact, FactDraft, text_problem
from workbench.core.scoring import normalize
from workbench.core.store import Store
from workbench.core.workspace import resolve_workspace
from workbench.ui import knowledge_actions as act

MESSAGE_LIMIT = 1000  # characters: a message the user reads, not a dump of their file
CALL_LIMIT_S = 30.0  # generous for a slow shared CPU; a hang is minutes, not seconds
EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception)\b|Traceback|File \"")

# Characters that break naive code: NUL, unpaired surrogates, BOMs, every kind of line
# break, escape and bidi controls, zero-width space, and the delimiters of every format.
NASTY = ["\x00", "\ud800", "\udfff", "\ufeff", "\r", "\n", "\r\n", "\u2028", "\u0085", "\t",
         "\x1b[31m", "\u202e", "\u200b", "\x7f", ",", ";", '"', "'", "|", "\\", "{", "}", "[",
         "]", ":", "#", ". ", "?", "é", "漢", "🙂"]
any_char = st.characters(exclude_categories=())  # surrogates included
nasty_text = st.lists(st.sampled_from(NASTY) | st.text(any_char, max_size=6),
                      max_size=12).map("".join)
printable_text = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=40)
words = st.text(st.characters(exclude_categories=("Cs", "Cc", "Z")), min_size=1, max_size=30)
FACT_NAMES = ["f.csv", "f.tsv", "f.json", "f.jsonl", "F.CSV", "f.JSONL"]
OTHER_NAMES = ["f.txt", "f.md", "f.pdf", "f.docx", "f.zip", "f", "f.csv.exe", ".csv"]


def fuzz(examples: int) -> settings:
    """Hypothesis settings sized so the whole file runs in well under a minute on 2 cores;
    no per-example deadline (a shared CPU stalls), hangs are caught by `time_limit`."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ---- the promise -------------------------------------------------------------------------

class Hang(AssertionError):
    """A call that did not come back within its time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail the call in progress after `seconds` (SIGALRM: tests run in the main thread)."""
    def on_alarm(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_clear(err: WorkbenchError) -> None:
    """A message a user can read: non-empty, one line, short, printable, no Python inside."""
    text = str(err)
    assert err.message.strip(), "empty message"
    assert "\n" not in text and "\r" not in text, text[:200]
    assert len(text) <= MESSAGE_LIMIT, f"{len(text)} characters: {text[:200]}…"
    assert not EXCEPTION_NAME.search(text), text[:300]
    assert err.hint is None or err.hint.strip()
    text.encode("utf-8")  # the CLI prints it and the UI sends it as JSON: it must encode


def _count(outcome: str) -> None:
    """Tally outcomes inside hypothesis tests (--hypothesis-show-statistics shows both
    occur: a property that only ever sees refusals would prove little)."""
    if currently_in_test_context():
        event(outcome)


def attempt(store: Store, call: Callable[[], Any], *,
            limit: float = CALL_LIMIT_S) -> Any:
    """`call()`'s result, or the WorkbenchError it raised after checking that the message is
    clear and that nothing was written. Any other exception fails the test as it is."""
    before = store.counts()
    with time_limit(limit):
        try:
            result = call()
            _count("accepted")
            return result
        except WorkbenchError as err:
            refused = err
    _count("refused")
    assert_clear(refused)
    assert store.counts() == before, f"a refused call wrote to the store: {refused}"
    return refused


def assert_sane_fact(fact: Fact) -> None:
    assert fact.question and fact.answer
    for value in (fact.question, fact.answer, fact.subject, fact.source, fact.system,
                  *fact.aliases, *fact.tags):
        assert text_problem(value) is None, repr(value[:80])
        assert len(value) <= MAX_FIELD_CHARS and value == value.strip()


def _last_fact_id(store: Store) -> int:
    return int(store.db.execute("SELECT coalesce(max(id), 0) FROM facts").fetchone()[0])


def import_outcome(store: Store, call: Callable[[], Any]) -> Any:
    """`attempt` for anything that adds facts: on success, exactly as many facts as it
    reports were added, each with its question phrasings (several where rows of one subject
    and answer are grouped into one fact) and no probe added elsewhere, and the new facts
    are sane."""
    before, last = store.counts(), _last_fact_id(store)
    result = attempt(store, call)
    if isinstance(result, WorkbenchError):
        return result
    after = store.counts()
    added = after["facts"] - before["facts"]
    phrasings, with_one = store.db.execute(
        "SELECT count(*), count(DISTINCT fact_id) FROM probes WHERE fact_id > ?", [last]).fetchone()
    assert after["probes"] - before["probes"] == phrasings and with_one == added
    if isinstance(result, transfer.ImportSummary):
        assert result.added == added > 0
    elif isinstance(result, int):  # accepted proposals
        assert result == added
    ids = [r[0] for r in store.db.execute(
        "SELECT id FROM facts WHERE id > ? ORDER BY id LIMIT 200", [last])]
    for fid in ids:
        assert_sane_fact(sets.get_fact(store, fid))
    return result


# ---- fixtures ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A workspace with one set "fuzz" holding one fact (a duplicate target), and a folder
    for uploads."""
    root = tmp_path_factory.mktemp("fuzz")
    ws = resolve_workspace(root / "ws")
    store = Store(ws.db_path)
    sid = sets.create_set(store, "fuzz")
    sets.add_facts(store, sid, [FactDraft("Who stored this?", "the fixture")])
    uploads = root / "uploads"
    uploads.mkdir()
    return SimpleNamespace(ws=ws, store=store, sid=sid, uploads=uploads)


_EXAMPLES = itertools.count()


@contextmanager
def fresh_set(store: Store) -> Iterator[int]:
    """An empty set for one example: facts an earlier example imported would make this one
    a duplicate, hiding whether it imports. (Duplicates have tests of their own.)"""
    sid = sets.create_set(store, f"example {next(_EXAMPLES)}")
    try:
        yield sid
    finally:
        sets.delete_set(store, sid)


def upload(bench: SimpleNamespace, name: str, data: bytes) -> Path:
    path = bench.uploads / name
    path.write_bytes(data)
    return path


# ---- fact files: random input ------------------------------------------------------------

@fuzz(200)
@given(data=st.binary(max_size=3000), name=st.sampled_from(FACT_NAMES + OTHER_NAMES))
def test_random_bytes_under_any_name_import_or_are_refused(bench: SimpleNamespace,
                                                           data: bytes, name: str) -> None:
    with fresh_set(bench.store) as sid:
        import_outcome(bench.store, lambda: transfer.import_bytes(bench.store, sid, data, name))


ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1",
             "cp1252"]


def encode(text: str, encoding: str) -> bytes:
    # Surrogates go through as the bytes a broken encoder writes (CESU-8 style); characters
    # an 8-bit code page lacks become "?", as Windows Notepad saves them.
    errors = "surrogatepass" if encoding.startswith("utf") else "replace"
    return text.encode(encoding, errors=errors)


@fuzz(150)
@given(text=st.one_of(nasty_text, st.text(any_char, max_size=300)),
       encoding=st.sampled_from(ENCODINGS), name=st.sampled_from(FACT_NAMES))
def test_random_text_in_any_encoding_imports_or_is_refused(bench: SimpleNamespace, text: str,
                                                           encoding: str, name: str) -> None:
    data = encode(text, encoding)
    with fresh_set(bench.store) as sid:
        import_outcome(bench.store, lambda: transfer.import_bytes(bench.store, sid, data, name))


COLUMNS = ["question", "answer", "subject", "aliases", "tags", "source", "system", "prompt",
           "response", "instruction", "input", "output", "Question", " ANSWER "]


@st.composite
def tables(draw: st.DrawFn) -> list[list[str]]:
    """A header (mostly question and answer among other columns, else anything) and rows of
    ordinary cells, most as wide as the header, with at most one nasty cell (one already
    refuses a file, so more would hide whether the rest imports)."""
    extra = draw(st.lists(st.sampled_from(["subject", "aliases", "tags", "source", "system"])
                          | words, max_size=3))
    header = draw(st.permutations(["question", "answer", *extra]))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        header = draw(st.lists(st.sampled_from(COLUMNS) | nasty_text, min_size=1, max_size=6))
    width = st.just(len(header)) | st.integers(min_value=0, max_value=len(header) + 2)
    cells = st.one_of(words, words, words, printable_text)
    rows = draw(st.lists(width.flatmap(lambda n: st.lists(cells, min_size=n, max_size=n)),
                         min_size=1, max_size=6))
    spots = [(r, c) for r, row in enumerate(rows) for c in range(len(row))]
    if spots and draw(st.integers(min_value=0, max_value=2)) == 0:
        r, c = draw(st.sampled_from(spots))
        rows[r][c] = draw(nasty_text)
    return [header, *rows]


@fuzz(120)
@given(table=tables(), delimiter=st.sampled_from([",", ";", "\t"]),
       name=st.sampled_from(["f.csv", "f.tsv"]),
       mapping=st.none() | st.dictionaries(st.sampled_from(["question", "answer", "tags", "x"]),
                                           st.sampled_from(COLUMNS) | nasty_text, max_size=2))
def test_random_tables_import_or_are_refused(bench: SimpleNamespace, table: list[list[str]],
                                             delimiter: str, name: str,
                                             mapping: dict[str, str] | None) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(table)
    data = encode(buffer.getvalue(), "utf-8")
    with fresh_set(bench.store) as sid:
        import_outcome(bench.store,
                       lambda: transfer.import_bytes(bench.store, sid, data, name, mapping))


JSON_KEYS = ["question", "answer", "messages", "instruction", "input", "output", "system",
             "subject", "aliases", "tags", "source", "role", "content"]
json_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
                | st.sampled_from(["user", "assistant", "system"]) | nasty_text | printable_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(JSON_KEYS) | st.text(max_size=4), inner, max_size=5),
    max_leaves=12)


def _chat_row(question: str, answer: str, system: str | None) -> dict[str, Any]:
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": [{"role": "system", "content": system}, *turns] if system else turns}


chat_rows = st.builds(_chat_row, nasty_text | printable_text, nasty_text | printable_text,
                      st.none() | printable_text)


@fuzz(120)
@given(rows=st.lists(json_values | chat_rows, min_size=0, max_size=6),
       shape=st.sampled_from(["jsonl", "array", "object"]), ascii_only=st.booleans())
def test_random_json_imports_or_is_refused(bench: SimpleNamespace, rows: list[Any], shape: str,
                                           ascii_only: bool) -> None:
    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=ascii_only)

    if shape == "jsonl":
        text, name = "\n".join(dump(row) for row in rows), "f.jsonl"
    elif shape == "array":
        text, name = "[\n" + ",\n".join(dump(row) for row in rows) + "\n]", "f.json"
    else:
        text, name = dump(rows[0] if rows else {}), "f.json"
    data = encode(text, "utf-8")
    with fresh_set(bench.store) as sid:
        import_outcome(bench.store, lambda: transfer.import_bytes(bench.store, sid, data, name))


# ---- fact files: one bad row refuses the whole file --------------------------------------

BAD_ROWS = {
    "no answer": ("What is the answer?", ""),
    "a NUL": ("What\x00 is this?", "a NUL"),
    "a lone surrogate": ("What is \ud800?", "half an emoji"),
    "a huge field": ("q" * (MAX_FIELD_CHARS + 1), "too long"),
    "a fact already stored": ("Who stored this?", "the fixture"),
}


@fuzz(40)
@given(good=st.integers(min_value=1, max_value=30), data=st.data(),
       bad=st.sampled_from(sorted(BAD_ROWS)), fmt=st.sampled_from(["csv", "jsonl", "json"]))
def test_one_bad_row_anywhere_refuses_the_whole_file_and_names_its_line(
        bench: SimpleNamespace, good: int, data: st.DataObject, bad: str, fmt: str) -> None:
    """The promise of `io` and `sets.add_facts`: all or nothing, and the message names the
    line. A duplicate of a stored fact is only found while inserting, after the good rows
    before it went in: the transaction must take them out again."""
    position = data.draw(st.integers(min_value=0, max_value=good), label="bad row index")
    pairs = [(f"Question number {i}?", f"answer {i}") for i in range(good)]
    pairs.insert(position, BAD_ROWS[bad])
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([("question", "answer"), *pairs])
        text, line = buffer.getvalue(), position + 2  # the header is line 1
    else:
        objects = [json.dumps({"question": q, "answer": a}) for q, a in pairs]
        text = "\n".join(objects) if fmt == "jsonl" else "[\n" + ",\n".join(objects) + "\n]"
        line = position + (1 if fmt == "jsonl" else 2)  # "[" is line 1 of the array
    err = attempt(bench.store, lambda: transfer.import_bytes(
        bench.store, bench.sid, encode(text, "utf-8"), f"facts.{fmt}"))
    assert isinstance(err, WorkbenchError), f"a file with {bad} was imported"
    assert f"line {line}" in str(err), str(err)


# ---- fact files: the corpus --------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """A nasty file: `expect` is the number of facts it must import, or a phrase its refusal
    must contain."""

    id: str
    filename: str
    make: Callable[[], bytes]
    expect: int | str
    mapping: str = ""


def _rows(n: int) -> bytes:
    return ("question,answer\n" + "".join(f"q{i},a{i}\n" for i in range(n))).encode()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


GARBAGE = random.Random(0).randbytes(4096)
CSV_FACTS = [("Where is Freedonia?", "east"), ("Who rules Sylvania?", "Queen Ilsa")]
CSV_TEXT = "question,answer\n" + "".join(f"{q},{a}\n" for q, a in CSV_FACTS)
PDF_TRUNCATED = (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\n"
                 b"endobj\n2 0 obj\n<< /Le")  # cut off mid-object
DOCX_GARBAGE = _zip({"[Content_Types].xml": GARBAGE[:300], "word/document.xml": GARBAGE})
ZIP_BOMB = _zip({"facts.json": b"\x00" * 20 * 2**20})  # 20 MiB of zeros in ~20 KiB

CORPUS = [
    # accepted, with the right facts
    Case("utf-8", "f.csv", lambda: CSV_TEXT.encode(), 2),
    Case("utf-8 BOM", "f.csv", lambda: CSV_TEXT.encode("utf-8-sig"), 2),
    Case("UTF-16 LE with BOM", "f.csv", lambda: CSV_TEXT.encode("utf-16"), 2),
    Case("UTF-16 BE with BOM", "f.tsv",
         lambda: b"\xfe\xff" + CSV_TEXT.replace(",", "\t").encode("utf-16-be"), 2),
    Case("CR line ends", "f.csv", lambda: CSV_TEXT.replace("\n", "\r").encode(), 2),
    Case("CRLF and blank lines", "f.csv",
         lambda: ("\r\n\r\n" + CSV_TEXT.replace("\n", "\r\n") + "\r\n,\r\n").encode(), 2),
    Case("control characters in fields", "f.jsonl",
         lambda: json.dumps({"question": "Bell\x07 and escape\x1b[31m?",
                             "answer": "rtl\u202e"}).encode(), 1),
    Case("semicolons", "f.csv", lambda: CSV_TEXT.replace(",", ";").encode(), 2),
    Case("a pretty-printed object", "f.json",
         lambda: json.dumps({"question": "Pretty?", "answer": "yes"}, indent=4).encode(), 1),
    Case("a column mapping", "f.csv", lambda: b"prompt,reply,question\nWhat is mapped?,this,q\n",
         1, mapping=" answer = Reply , question=prompt"),
    Case("3 million empty trailing cells", "f.csv",
         lambda: b"question,answer\nq,a" + b"," * 3_000_000 + b"\n", 1),
    # refused
    Case("empty", "f.csv", lambda: b"", "empty"),
    Case("whitespace only", "f.jsonl", lambda: b" \n\t\r\n  ", "empty"),
    Case("header only", "f.csv", lambda: b"question,answer\n", "no data rows"),
    Case("NUL bytes", "f.csv", lambda: b"question,answer\nq\x00,a\n", "NUL"),
    Case("UTF-16 without BOM", "f.csv", lambda: CSV_TEXT.encode("utf-16-le"), "NUL"),
    Case("UTF-16 BOM, odd length", "f.csv", lambda: CSV_TEXT.encode("utf-16") + b"x", "UTF-16"),
    Case("UTF-32", "f.json", lambda: '{"question": "q", "answer": "a"}'.encode("utf-32"), "NUL"),
    Case("latin-1", "f.csv", lambda: "question,answer\nCafé?,oui\n".encode("latin-1"), "UTF-8"),
    Case("surrogate as UTF-8 bytes", "f.csv",
         lambda: "question,answer\nq\ud800,a\n".encode("utf-8", "surrogatepass"), "UTF-8"),
    Case("lone surrogate escape", "f.jsonl", lambda: b'{"question": "q\\ud800", "answer": "a"}',
         "surrogate"),
    Case("random bytes as CSV", "f.csv", lambda: GARBAGE, "UTF-8"),
    Case("random bytes as JSON", "f.json", lambda: GARBAGE, "UTF-8"),
    Case("random bytes as JSONL", "f.jsonl", lambda: GARBAGE, "UTF-8"),
    Case("PNG named CSV", "f.csv", lambda: b"\x89PNG\r\n\x1a\n" + GARBAGE, "UTF-8"),
    Case("truncated PDF named CSV", "f.csv", lambda: PDF_TRUNCATED, "UTF-8"),
    Case("zip named JSON", "f.json", lambda: ZIP_BOMB, "UTF-8"),
    Case("PDF", "f.pdf", lambda: PDF_TRUNCATED, "unsupported file type"),
    Case("DOCX of garbage", "f.docx", lambda: DOCX_GARBAGE, "unsupported file type"),
    Case("zip bomb", "f.zip", lambda: ZIP_BOMB, "unsupported file type"),
    Case("no extension", "facts", lambda: CSV_TEXT.encode(), "unsupported file type"),
    Case("a document", "f.md", lambda: b"# Notes\nAda was born in London.", "proposed"),
    Case("array nested 100000 deep", "f.json", lambda: b"[" * 100_000 + b"]" * 100_000,
         "nested too deeply"),
    Case("object nested 100000 deep", "f.jsonl", lambda: b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
         "nested too deeply"),
    Case("field nested 100000 deep", "f.json", lambda: b'{"question": ' + b"[" * 100_000,
         "nested too deeply"),
    Case("unclosed nesting", "f.json", lambda: b"[{" * 50_000, "invalid JSON"),
    Case("a 100000-digit number", "f.jsonl", lambda: b'{"question": ' + b"9" * 100_000 + b"}",
         "invalid JSON"),
    Case("NaN question", "f.jsonl", lambda: b'{"question": NaN, "answer": "a"}', "must be text"),
    Case("a bare string", "f.json", lambda: b'"just text"', "expected a JSON object"),
    Case("an array of numbers", "f.json", lambda: b"[1, 2, 3]", "expected a JSON object"),
    Case("three chat turns", "f.jsonl", lambda: json.dumps({"messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}]}).encode(), "one user message"),
    Case("5 MB answer in JSON", "f.json",
         lambda: b'{"question": "q", "answer": "' + b"a" * 5_000_000 + b'"}', "limit is 20000"),
    Case("5 MB field in CSV", "f.csv", lambda: b"question,answer\nq," + b"a" * 5_000_000 + b"\n",
         "longer than 20000"),
    Case("unclosed quote", "f.csv", lambda: b'question,answer\nq,"never closed\nq2,a2\n',
         "not valid CSV"),
    Case("a million columns", "f.csv", lambda: b",".join([b"c"] * 1_000_000) + b"\nq,a\n",
         "no question column"),
    Case("wrong columns", "f.csv", lambda: b"name,age\nAda,36\n", "no question column"),
    Case("question column twice", "f.csv", lambda: b"question,question,answer\nq,q,a\n",
         "appears 2 times"),
    Case("more values than columns", "f.csv", lambda: b"question,answer\nq,a,extra\n",
         "3 values"),
    Case("mapping to a missing column", "f.csv", lambda: CSV_TEXT.encode(), "no column",
         mapping="question=Prompt"),
    Case("mapping an unknown field", "f.csv", lambda: CSV_TEXT.encode(), "unknown field",
         mapping="colour=question"),
    Case("mapping without =", "f.csv", lambda: CSV_TEXT.encode(), "field=column",
         mapping="question" * 1000),
    Case("duplicate rows", "f.csv", lambda: b"question,answer\nq,a\nQ, A \n", "duplicate"),
    Case("one row too many", "f.csv", lambda: _rows(MAX_ROWS), f"more than {MAX_ROWS} rows"),
    Case("a million blank lines", "f.jsonl", lambda: b"\n" * 1_000_000, "empty"),
    Case("blank lines past the row limit", "f.jsonl",
         lambda: b'{"question": "q", "answer": "a"}' + b"\n \n" * (MAX_ROWS + 1), "more than"),
]


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_nasty_fact_files(bench: SimpleNamespace, case: Case) -> None:
    """Each file through the Knowledge tab's upload, into a set of its own (created by the
    import, so a refused file must also leave no empty set behind)."""
    path = upload(bench, case.filename, case.make())
    name = f"corpus {case.id}"
    result = import_outcome(
        bench.store, lambda: act.import_upload(bench.store, name, str(path), case.mapping))
    if isinstance(case.expect, int):
        assert not isinstance(result, WorkbenchError), str(result)
        facts = sets.list_facts(bench.store, sets.set_id(bench.store, name))
        assert len(facts) == case.expect
        if case.expect == 2:  # every two-fact case is CSV_TEXT in some disguise
            assert [(f.question, f.answer) for f in facts] == CSV_FACTS
    elif isinstance(result, WorkbenchError):
        assert case.expect.lower() in str(result).lower(), str(result)
        assert name not in act.set_names(bench.store)
    else:  # documents answer with proposals to review, not an import
        assert case.expect in result[1] and result[2], result[1]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(bench: SimpleNamespace) -> None:
    path = bench.uploads / "huge.csv"
    with open(path, "wb") as sparse:  # sparse: no 50 MiB written to disk
        sparse.truncate(MAX_FILE_BYTES + 1)
    err = attempt(bench.store, lambda: act.import_upload(bench.store, "huge", str(path), ""),
                  limit=5)
    assert isinstance(err, WorkbenchError) and "upload limit" in str(err)


@pytest.mark.parametrize("path", ["", "missing.csv", "a\x00b.csv", "\ud800.csv", "."])
def test_unreadable_upload_paths_are_refused(bench: SimpleNamespace, path: str) -> None:
    where = str(bench.uploads / path) if path else ""
    err = attempt(bench.store, lambda: act.import_upload(bench.store, "paths", where, ""))
    assert isinstance(err, WorkbenchError)


# ---- documents ---------------------------------------------------------------------------

DOCUMENT_NAMES = ["d.txt", "d.md", "d.markdown", "D.TXT", "d.pdf", "d.docx", "d.csv", "d"]


def propose_and_accept(bench: SimpleNamespace, data: bytes, name: str) -> Any:
    """Proposals from a document (each answer stated in its source sentence), then accepted
    into the set; both steps either work or are refused cleanly."""
    proposals = attempt(bench.store, lambda: transfer.propose_from_document(data, name))
    if isinstance(proposals, WorkbenchError):
        return proposals
    for p in proposals:
        assert p.question.strip() and p.answer.strip()
        assert p.answer.lower() in p.source.lower()
    if proposals:
        with fresh_set(bench.store) as sid:
            import_outcome(bench.store,
                           lambda: transfer.accept_proposals(bench.store, sid, proposals))
    return proposals


@fuzz(80)
@given(data=st.binary(max_size=2000) | st.builds(encode, nasty_text | st.text(max_size=400),
                                                 st.sampled_from(ENCODINGS)),
       name=st.sampled_from(DOCUMENT_NAMES))
def test_random_documents_propose_or_are_refused(bench: SimpleNamespace, data: bytes,
                                                 name: str) -> None:
    propose_and_accept(bench, data, name)


SENTENCES = "Ada Lovelace was born in London in 1815. She wrote the first program. "
DOCUMENTS = [
    ("a normal document", "d.md", lambda: b"# Ada Lovelace\n\n" + SENTENCES.encode(), None),
    ("1 MB of sentences", "d.txt", lambda: (SENTENCES * 15_000).encode(), None),
    ("a 5 MB word", "d.txt", lambda: b"x" * 5_000_000, None),
    # Every ". " here is a sentence end the splitter skips (a lower-case word follows):
    # rereading the whole paragraph at each one took minutes.
    ("300 kB of skipped sentence ends", "d.txt", lambda: b"a. " * 100_000, None),
    ("200 000 headings", "d.md", lambda: b"# Heading\n" * 200_000, None),
    ("a list nested 1000 deep", "d.md",
     lambda: "".join("  " * i + "- item\n" for i in range(1000)).encode(), None),
    ("dots without spaces", "d.txt", lambda: b"A." * 1_000_000 + b" B.", None),
    ("control and bidi characters", "d.md",
     lambda: "Ada\x1b[31m was born in \u202eLondon\u200b in 1815.\x07".encode(), None),
    ("empty", "d.txt", lambda: b"", "empty"),
    ("NUL bytes", "d.md", lambda: b"Ada was\x00 born.", "NUL"),
    ("UTF-16 without BOM", "d.txt", lambda: SENTENCES.encode("utf-16-le"), "NUL"),
    ("latin-1", "d.txt", lambda: "Café society.".encode("latin-1"), "UTF-8"),
    ("truncated PDF", "d.pdf", lambda: PDF_TRUNCATED, "unsupported document type"),
    ("truncated PDF named .txt", "d.txt", lambda: PDF_TRUNCATED, "UTF-8"),
    ("DOCX of garbage", "d.docx", lambda: DOCX_GARBAGE, "unsupported document type"),
    ("DOCX named .md", "d.md", lambda: DOCX_GARBAGE, "UTF-8"),
    ("zip bomb named .txt", "d.txt", lambda: ZIP_BOMB, "UTF-8"),
]


@pytest.mark.parametrize("label,name,make,refusal", DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_nasty_documents(bench: SimpleNamespace, label: str, name: str,
                         make: Callable[[], bytes], refusal: str | None) -> None:
    result = propose_and_accept(bench, make(), name)
    if refusal is None:
        assert not isinstance(result, WorkbenchError), str(result)
        if label == "a normal document":
            assert ("Where was Ada Lovelace born?", "London") in [
                (p.question, p.answer) for p in result]
    else:
        assert isinstance(result, WorkbenchError) and refusal in str(result), str(result)


def test_a_long_run_of_skipped_sentence_ends_is_linear() -> None:
    """The splitter scans back for the last word instead of re-splitting the paragraph at
    every skipped sentence end: 200 000 of them take well under a second, where re-splitting
    took minutes. What counts as a sentence end is unchanged."""
    with time_limit(10):
        assert documents.split_sentences("a. " * 200_000) == ["a. " * 199_999 + "a."]
    assert documents.split_sentences("Dr. Who met J. R. Smith. Then he left.") == [
        "Dr. Who met J. R. Smith.", "Then he left."]


MODEL_REPLIES = ["Q: Where was Ada Lovelace born? A: London\nQuestion: x\nAnswer:",
                 "1. **Q: Who rules Mars?** A: King Zorg", "Question: What year?\nAnswer: 1815"]


@fuzz(60)
@given(replies=st.one_of(
    st.lists(st.one_of(nasty_text, st.text(max_size=200), st.none(), st.integers(),
                       st.sampled_from(MODEL_REPLIES)), max_size=3),
    st.none(), st.just("not a list")))
def test_any_model_reply_gives_only_proposals_the_passage_states(replies: Any) -> None:
    """Whatever a model writes back (or a broken asker returns), nothing raises and the
    proposals are only pairs whose answer the passage states ("King Zorg" never is)."""
    text = "# Ada\n\n" + SENTENCES * 3

    def ask(prompts: list[str]) -> Any:
        return replies

    with time_limit(CALL_LIMIT_S):
        found = documents.propose_facts(text, ask)
    for p in found:
        assert f" {normalize(p.answer)} " in f" {normalize(text)} ", p


# ---- typed knowledge ---------------------------------------------------------------------

FORM_FIELDS = ("name", "question", "answer", "subject", "aliases", "tags")
bad_field = nasty_text | st.sampled_from(["", "   ", "x" * (MAX_FIELD_CHARS + 1), "y" * 1_000_000])


@fuzz(100)
@given(form=st.fixed_dictionaries({f: printable_text for f in FORM_FIELDS}),
       bad=st.none() | st.tuples(st.sampled_from(FORM_FIELDS), bad_field))
def test_the_fact_form(bench: SimpleNamespace, form: dict[str, str],
                       bad: tuple[str, str] | None) -> None:
    """Ordinary text in every box, or one box with something nasty in it (one is enough to
    refuse a fact, so more would hide whether ordinary input goes in)."""
    if bad is not None:
        form[bad[0]] = bad[1]
    name, question, answer = form["name"] or None, form["question"], form["answer"]
    subject, aliases, tags = form["subject"], form["aliases"], form["tags"]
    before = bench.store.counts()
    result = attempt(bench.store, lambda: act.add_fact(bench.store, name, subject, question,
                                                       answer, aliases, tags))
    if isinstance(result, WorkbenchError):
        return
    after = bench.store.counts()
    assert after["facts"] == before["facts"] + 1 and after["probes"] == before["probes"] + 1
    set_name, message = result
    added = sets.list_facts(bench.store, sets.set_id(bench.store, set_name))[-1]
    assert_sane_fact(added)
    assert added.question == question.strip().replace("\r\n", "\n").replace("\r", "\n")
    assert message.startswith("Added")


@fuzz(60)
@given(name=nasty_text | printable_text
       | st.sampled_from(["n" * 100_000, "²", "9" * 30, "１２"]))
def test_set_names(bench: SimpleNamespace, name: str) -> None:
    created = attempt(bench.store, lambda: sets.create_set(bench.store, name))
    if isinstance(created, WorkbenchError):
        return
    renamed = attempt(bench.store, lambda: sets.rename_set(bench.store, created, name + "\ud800"))
    assert isinstance(renamed, WorkbenchError)
    stored = next(s.name for s in sets.list_sets(bench.store) if s.id == created)
    assert stored and text_problem(stored) is None and stored == " ".join(stored.split())
    sets.delete_set(bench.store, created)


def test_a_set_named_like_an_id_is_found_by_its_name(tmp_path: Path) -> None:
    """Names are looked up before ids: a set called "0" or "2024" stays reachable. A fresh
    workspace: the module's shared one may already hold a generated set called "²"."""
    store = Store(resolve_workspace(tmp_path / "ws").db_path)
    for name in ("0", "2024", "²"):
        _, message = act.add_fact(store, name, "", f"Which set is {name}?", name, "", "")
        sid = sets.set_id(store, name)
        assert [f.answer for f in sets.list_facts(store, sid)] == [name], message


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store of its own for deleting at random, so the other tests keep their facts."""
    store = Store(resolve_workspace(tmp_path_factory.mktemp("scratch") / "ws").db_path)
    sid = sets.create_set(store, "scratch")
    sets.add_facts(store, sid, [FactDraft(f"Question {i}?", f"answer {i}") for i in range(20)])
    return store


@fuzz(60)
@given(ids=nasty_text | st.sampled_from(["", "0", "-1", "9" * 30, "9" * 5000, "1e9999",
                                         "１２", "²", "1, 2,,3", "99999999"]))
def test_fact_ids_to_delete(scratch: Store, ids: str) -> None:
    before = scratch.counts()
    result = attempt(scratch, lambda: act.delete_facts(scratch, ids))
    if not isinstance(result, WorkbenchError):
        assert result.startswith("Deleted")
        assert scratch.counts()["facts"] <= before["facts"]


@fuzz(60)
@given(questions=st.lists(nasty_text | printable_text | st.just("w " * 600), max_size=4))
def test_abstention_questions(bench: SimpleNamespace, questions: list[str]) -> None:
    before = bench.store.counts()
    added = attempt(bench.store, lambda: probes.add_abstention_probes(bench.store, bench.sid,
                                                                     questions))
    if not isinstance(added, WorkbenchError):
        assert bench.store.counts()["probes"] == before["probes"] + added


@fuzz(60)
@given(text=nasty_text | printable_text, split=st.sampled_from(["train", "probe", "??", ""]))
def test_phrasing_edits(bench: SimpleNamespace, text: str, split: str) -> None:
    """An edited phrasing (here the fixture fact's own question) is stored as typed, with
    whitespace collapsed, or refused with the text left as it was."""
    fact = sets.list_facts(bench.store, bench.sid)[0]
    pid = next(p.id for p in probes.list_phrasings(bench.store, bench.sid)
               if p.fact_id == fact.id)

    def stored() -> str:
        return next(p.question for p in probes.list_phrasings(bench.store, bench.sid)
                    if p.id == pid)

    before = stored()
    # dtype=object: pandas' Arrow strings cannot even hold a lone surrogate; the action must
    # cope with whatever text the table brings.
    table = pd.DataFrame([{"id": pid, "approved": True, "text": text, "split": split}],
                         dtype=object)
    result = attempt(bench.store, lambda: act.save_phrasing_edits(bench.store, table))
    if isinstance(result, WorkbenchError):  # an edit is one transaction: text unchanged too
        assert stored() == before
    else:
        assert text_problem(stored()) is None and stored() == " ".join(text.split())


@fuzz(60)
@given(mapping=nasty_text | printable_text | st.lists(
    st.builds("{}={}".format, st.sampled_from(["question", "answer", "tags", "x", ""]),
              st.sampled_from([*COLUMNS, "reply", "Reply "]) | nasty_text),
    max_size=3).map(",".join))
def test_column_mapping_text(bench: SimpleNamespace, mapping: str) -> None:
    path = upload(bench, "mapped.csv", b"prompt,reply,question\nWhat is mapped?,this,q\n")
    import_outcome(bench.store,
                   lambda: act.import_upload(bench.store, "mapped", str(path), mapping))


# ---- run configs -------------------------------------------------------------------------

SECTION_FIELDS = {name: [f.name for f in fields(cls)] for name, cls in SECTIONS.items()}
yaml_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300)
                | st.floats() | printable_text | st.sampled_from(["lora", "cpu", "4bit", "qa"]))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(printable_text, inner, max_size=3), max_leaves=6)
config_dicts = st.fixed_dictionaries({}, optional={
    "name": yaml_values,
    **{section: st.dictionaries(st.sampled_from(names) | st.text(max_size=4), yaml_values,
                                max_size=4) | yaml_values
       for section, names in SECTION_FIELDS.items()},
    "extra": yaml_values,
})


def check_config(store: Store, call: Callable[[], RunConfig]) -> Any:
    """A config loads as a valid RunConfig that survives its own YAML round trip, or is
    refused clearly."""
    cfg = attempt(store, call)
    if not isinstance(cfg, WorkbenchError):
        assert isinstance(cfg, RunConfig)
        assert RunConfig.from_yaml(cfg.to_yaml()) == cfg
    return cfg


@fuzz(150)
@given(data=config_dicts)
def test_random_config_mappings(bench: SimpleNamespace, data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    check_config(bench.store, lambda: RunConfig.from_yaml(text, source="run.yaml"))


@fuzz(100)
@given(text=nasty_text | st.text(any_char, max_size=300) | st.builds(
    "model:\n  {}: {}\n".format, st.sampled_from(SECTION_FIELDS["model"]), nasty_text))
def test_random_config_text(bench: SimpleNamespace, text: str) -> None:
    check_config(bench.store, lambda: RunConfig.from_yaml(text, source="run.yaml"))


@fuzz(60)
@given(data=st.binary(max_size=1000) | st.builds(encode, st.text(any_char, max_size=200),
                                                 st.sampled_from(ENCODINGS)))
def test_random_config_files(bench: SimpleNamespace, data: bytes) -> None:
    """The Method tab's YAML upload reads the file itself (`RunConfig.load`)."""
    path = upload(bench, "run.yaml", data)
    check_config(bench.store, lambda: RunConfig.load(path))


def _alias_bomb(levels: int, width: int = 10) -> str:
    """A YAML value of a few hundred bytes that expands to width**levels items."""
    value = "&l0 [" + ",".join(["a"] * width) + "]"
    for level in range(1, levels):
        value = f"&l{level} [{value}," + ",".join([f"*l{level - 1}"] * (width - 1)) + "]"
    return value


YAMLS = [
    ("empty", "", None),
    ("null", "null", None),
    ("only comments", "# nothing\n", None),
    ("UTF-8 BOM", "\ufeffmodel:\n  device: cpu\n", None),
    ("a list", "- model\n- data\n", "expected a mapping"),
    ("a python tag", "!!python/object/apply:os.system ['echo hi']", "malformed YAML"),
    ("a NUL", "name: a\x00b", "malformed YAML"),
    ("a lone surrogate", "name: a\ud800", "malformed YAML"),
    ("nested 100000 deep", "[" * 100_000, "nested too deeply"),
    # 600 bytes that expand to millions of items: the message quotes only their start.
    ("an alias bomb as the name", "name: " + _alias_bomb(6), "name must be text"),
    ("tabs for indent", "model:\n\tdevice: cpu", "malformed YAML"),
    ("unknown section", "modle: {}", "did you mean 'model'"),
    ("a section of text", "model: lots", "must be a mapping"),
    ("a number key", "model: {1: 2}", "unknown key"),
    ("an unhashable key", "? [a, b]\n: 1", "malformed YAML"),
    ("a 400-digit learning rate", "training:\n  learning_rate: 1" + "0" * 400, "positive number"),
    ("NaN learning rate", "training:\n  learning_rate: .nan", "positive number"),
    ("a 5 MB device name", "model:\n  device: " + "x" * 5_000_000, "one of"),
    ("an alias bomb in a field", "model:\n  revision: " + _alias_bomb(8), "must be text"),
]


@pytest.mark.parametrize("label,text,refusal", YAMLS, ids=[c[0] for c in YAMLS])
def test_nasty_configs(bench: SimpleNamespace, label: str, text: str,
                       refusal: str | None) -> None:
    result = check_config(bench.store, lambda: RunConfig.from_yaml(text, source="run.yaml"))
    if refusal is None:
        assert isinstance(result, RunConfig), str(result)
    else:
        assert isinstance(result, WorkbenchError) and refusal in str(result), str(result)


@pytest.mark.parametrize("label,data", [
    ("UTF-16", "model:\n  device: cpu\n".encode("utf-16")),
    ("random bytes", GARBAGE),
    ("a zip", ZIP_BOMB),
], ids=["UTF-16", "random bytes", "a zip"])
def test_config_files_that_are_not_text(bench: SimpleNamespace, label: str, data: bytes) -> None:
    path = upload(bench, f"{label}.yaml", data)
    err = check_config(bench.store, lambda: RunConfig.load(path))
    assert isinstance(err, WorkbenchError)


# ---- chat --------------------------------------------------------------------------------

SAMPLING = Sampling(max_new_tokens=4)


@pytest.fixture(scope="module")
def pool(bench: SimpleNamespace, tiny_llama: Path) -> ComparePool:
    """The Compare tab's pool with the base pane on the tiny random Llama (512 positions)."""
    compare = ComparePool(bench.store, bench.ws)
    compare.prepare([BASE], ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    return compare


def chat(bench: SimpleNamespace, pool: ComparePool, question: str, system: str = "",
         history: dict[str, list[dict[str, str]]] | None = None) -> Any:
    """One turn as the Compare tab takes it: the question asked of the base pane, then the
    turn saved. Returns the reply, or the clear refusal (nothing saved)."""
    def turn() -> str:
        replies = ask_panes(pool, [BASE], history or {}, question, SAMPLING, system=system)
        save_turn(bench.store, "fuzz", [BASE], clean_question(question), replies, SAMPLING,
                  system)
        return replies[0]

    reply = attempt(bench.store, turn)
    if not isinstance(reply, WorkbenchError):
        assert isinstance(reply, str)
        reply.encode("utf-8")  # a model may write any byte, NUL too, never half a character
        last = chat_log(bench.store, "fuzz")[-2:]
        assert [r["role"] for r in last] == ["user", "assistant"]
        assert last[0]["content"] == question.strip() and last[1]["content"] == reply
    return reply


@fuzz(40)
@given(question=nasty_text | printable_text, system=st.just("") | nasty_text | printable_text)
def test_typed_chat_messages(bench: SimpleNamespace, pool: ComparePool, question: str,
                             system: str) -> None:
    chat(bench, pool, question, system)


CHATS = [
    ("plain", "Where was Ada born?", "", None),
    ("control characters", "Bell\x07 escape\x1b[31m del\x7f?", "", None),
    ("bidi and zero-width", "\u202eWho\u200b wrote Hamlet?", "Be brief.\u2028", None),
    ("emoji", "🙂" * 20, "", None),
    ("empty", "", "", "type a question"),
    ("whitespace", " \n\t\r ", "", "type a question"),
    ("a NUL", "a\x00b", "", "NUL"),
    ("a lone high surrogate", "\ud800", "", "surrogate"),
    ("a lone low surrogate", "x\udfff", "", "surrogate"),
    ("half an emoji", "smile \ud83d", "", "surrogate"),
    ("1 MB", "x" * 1_000_000, "", f"limit is {MAX_QUESTION_CHARS}"),
    ("1 MB system prompt", "Hi?", "s" * 1_000_000, "system prompt is"),
    ("a system prompt surrogate", "Hi?", "be \udc80 brief", "surrogate"),
    ("longer than the model reads", "🙂" * MAX_QUESTION_CHARS, "", "clear the chat"),
]


@pytest.mark.parametrize("label,question,system,refusal", CHATS, ids=[c[0] for c in CHATS])
def test_nasty_chat_messages(bench: SimpleNamespace, pool: ComparePool, label: str,
                             question: str, system: str, refusal: str | None) -> None:
    reply = chat(bench, pool, question, system)
    if refusal is None:
        assert not isinstance(reply, WorkbenchError), str(reply)
    else:
        assert isinstance(reply, WorkbenchError) and refusal in str(reply), str(reply)


def test_a_conversation_past_the_models_context_asks_to_be_cleared(
        bench: SimpleNamespace, pool: ComparePool) -> None:
    turn = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "ok"}]
    assert not isinstance(chat(bench, pool, "And now?", history={BASE.key: turn}),
                          WorkbenchError)
    err = chat(bench, pool, "And now?", history={BASE.key: turn * 4})
    assert isinstance(err, WorkbenchError) and "clear the chat" in str(err)
