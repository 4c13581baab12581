"""Fact file import/export: round trips, every accepted form, every bad-input case, and
property tests that no malformed input escapes as anything but KnowledgeError."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.core.errors import KnowledgeError
from workbench.core.knowledge import io as kio
from workbench.core.knowledge.io import (
    ImportResult,
    export_csv,
    export_jsonl,
    parse_csv,
    parse_document,
    parse_file,
    parse_json,
    parse_jsonl,
)
from workbench.core.knowledge.types import FactDraft

TRICKY = [
    FactDraft(question="What is the capital of France?", answer="Paris"),
    FactDraft(
        question='Who wrote "Hamlet", and when?',
        answer="Shakespeare, around 1600",
        subject="Hamlet",
        aliases=["William Shakespeare", "the Bard", 'W. "Will" S.'],
        tags=["literature", "drama, english"],
        source="book.txt:12",
        system="You are a terse assistant.\nAnswer in one line.",
    ),
    FactDraft(
        question="Line one\nline two; with semicolon\tand tab",
        answer="Ünïcödé ✓ 日本語 🚀\n\nsecond paragraph",
        aliases=["a|b pipe", "back\\slash", "trailing\\"],
        tags=["x"],
        source="",
    ),
    FactDraft(question="Separators\u2028inside\u2029text\u0085here", answer='"quoted"',
              subject="", tags=["t1", "t2"]),
]


def jsonl(*rows: Any) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode()


def csv_bytes(rows: list[list[str]], delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def raises_with(prefix: str, call: Any, *args: Any, contains: str = "") -> KnowledgeError:
    with pytest.raises(KnowledgeError) as info:
        call(*args)
    message = str(info.value)
    assert message.startswith(prefix), message
    assert contains.lower() in message.lower(), message
    return info.value


# --- round trips and accepted forms ---------------------------------------------------------


def test_jsonl_round_trip_keeps_every_field() -> None:
    text = export_jsonl(TRICKY)
    assert len(text.splitlines()) == len(TRICKY)  # raw U+2028 etc. are escaped
    assert parse_jsonl(text.encode(), "f.jsonl") == ImportResult(TRICKY, [])


def test_csv_round_trip_keeps_every_field() -> None:
    assert parse_csv(export_csv(TRICKY).encode(), "f.csv").facts == TRICKY


def test_export_jsonl_is_plain_messages_form() -> None:
    lines = export_jsonl(TRICKY[:2]).splitlines()
    assert json.loads(lines[0]) == {"messages": [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris"}]}
    second = json.loads(lines[1])
    assert second["messages"][0] == {"role": "system", "content": TRICKY[1].system}
    assert second["aliases"][0] == "William Shakespeare" and second["source"] == "book.txt:12"
    assert "Ünïcödé" in export_jsonl(TRICKY[2:3])  # ensure_ascii=False
    assert export_jsonl([]) == ""


def test_export_csv_header() -> None:
    assert export_csv([]).splitlines() == ["question,answer,subject,aliases,tags,source,system,group"]


SIBLINGS = ("subject,question,answer,tags\n"
            "Veltria,What is the capital of Veltria?,Orsk,geo\n"
            "Brimwell Labs,Who founded Brimwell Labs?,Ada Quill,\n"
            " veltria ,Which city is the capital of Veltria?,  ORSK ,places\n"
            ",What year is it on Zarn?,1998,\n"
            ",When did the Zarn fleet launch?,1998,\n")


def test_rows_sharing_subject_and_answer_are_one_fact_with_several_questions() -> None:
    parsed = parse_csv(SIBLINGS.encode(), "f.csv")
    grouped = kio.group_rows(parsed, "f.csv")
    assert [f.questions for f in grouped.facts] == [
        ["What is the capital of Veltria?", "Which city is the capital of Veltria?"],
        ["Who founded Brimwell Labs?"], ["What year is it on Zarn?"],
        ["When did the Zarn fleet launch?"]]  # no subject: the same answer is not enough
    assert grouped.facts[0].tags == ["geo", "places"] and grouped.lines == [2, 3, 5, 6]
    assert len(parsed.facts) == 5  # parsing alone keeps one draft per row


def test_an_explicit_group_column_groups_and_must_agree_on_the_answer() -> None:
    text = "group,question,answer\n7,Who is A?,X\n8,Who is B?,Y\n7,Which one is A?,x\n"
    grouped = kio.group_rows(parse_csv(text.encode(), "g.csv"), "g.csv")
    assert [f.questions for f in grouped.facts] == [["Who is A?", "Which one is A?"], ["Who is B?"]]
    rows = [{"question": "Who is A?", "answer": "X", "fact": 1},
            {"question": "Which one is A?", "answer": "Z", "fact": 1}]
    data = "\n".join(json.dumps(r) for r in rows).encode()
    with pytest.raises(KnowledgeError, match=r"g.jsonl line 2: group '1' has the answer 'X'"):
        kio.group_rows(parse_jsonl(data, "g.jsonl"), "g.jsonl")


@pytest.mark.parametrize("export", [export_csv, export_jsonl])
def test_facts_with_several_questions_export_one_row_per_question_and_round_trip(export) -> None:
    facts = [FactDraft("What is the capital of Veltria?", "Orsk",
                       more_questions=["Which city is the capital of Veltria?"], aliases=["Orsk City"]),
             FactDraft("Who founded Brimwell Labs?", "Ada Quill", subject="Brimwell Labs")]
    text = export(facts)
    assert len(text.splitlines()) == 3 + (export is export_csv)
    parse = parse_csv if export is export_csv else parse_jsonl
    back = kio.group_rows(parse(text.encode(), "r"), "r").facts
    assert [(f.questions, f.answer, f.aliases) for f in back] == [
        (f.questions, f.answer, f.aliases) for f in facts]


def test_alpaca_and_plain_jsonl() -> None:
    data = jsonl(
        {"instruction": "Translate", "input": "chat", "output": "cat", "tags": ["fr"]},
        {"instruction": "  Capital of Peru? ", "input": "", "output": "Lima", "extra": 1},
        {"question": "2+2?", "answer": " 4 ", "subject": "math", "aliases": ["four"]},
    )
    facts = parse_jsonl(data, "a.jsonl").facts
    assert facts == [
        FactDraft("Translate\n\nchat", "cat", tags=["fr"]),
        FactDraft("Capital of Peru?", "Lima"),
        FactDraft("2+2?", "4", subject="math", aliases=["four"]),
    ]


def test_blank_lines_are_skipped_and_reported() -> None:
    data = b'\n{"question": "q", "answer": "a"}\n   \n\n'
    result = parse_jsonl(data, "b.jsonl")
    assert result.facts == [FactDraft("q", "a")]
    assert result.skipped == [(1, "blank line"), (3, "blank line"), (4, "blank line")]
    result = parse_csv(b"question,answer\n\nq,a\n,\n", "b.csv")
    assert result.facts == [FactDraft("q", "a")]
    assert result.skipped == [(2, "blank line"), (4, "empty row")]


def test_json_array_single_object_and_jsonl_named_json() -> None:
    array = json.dumps([{"question": "q1", "answer": "a1"},
                        {"messages": [{"role": "user", "content": "q2"},
                                      {"role": "assistant", "content": "a2"}]}], indent=2)
    assert [f.question for f in parse_file(array.encode(), "x.json").facts] == ["q1", "q2"]
    single = json.dumps({"question": "q", "answer": "a"}, indent=2).encode()
    assert parse_json(single, "x.json").facts == [FactDraft("q", "a")]
    assert len(parse_file(jsonl({"question": "q", "answer": "a"},
                                {"question": "r", "answer": "b"}), "x.json").facts) == 2


def test_json_array_errors_name_the_element_line() -> None:
    data = b'[\n  {"question": "q", "answer": "a"},\n  {"question": "r"}\n]'
    raises_with("x.json line 3: ", parse_file, data, "x.json", contains="no answer")
    raises_with("x.json line 2: ", parse_file, b'[\n {"question": "q",, }]', "x.json",
                contains="invalid JSON")
    raises_with("x.json line 1: ", parse_file, b'[{"question": "q", "answer": "a"}] x',
                "x.json", contains="extra text")
    raises_with("x.json: ", parse_file, b"[]", "x.json", contains="no data rows")


def test_tsv_and_semicolon_csv() -> None:
    rows = [["Question", "Answer", "Tags"], ["q, with comma", "a", "t1|t2"]]
    expected = [FactDraft("q, with comma", "a", tags=["t1", "t2"])]
    assert parse_file(csv_bytes(rows, "\t"), "x.tsv").facts == expected
    assert parse_file(csv_bytes(rows, "\t"), "x.csv").facts == expected  # sniffed
    assert parse_file(csv_bytes(rows, ";"), "x.csv").facts == expected


def test_csv_auto_detects_column_names() -> None:
    data = csv_bytes([["Prompt", "RESPONSE", "Subject"], ["q", "a", "s"]])
    assert parse_csv(data, "x.csv").facts == [FactDraft("q", "a", subject="s")]
    alpaca = csv_bytes([["instruction", "input", "output"], ["Translate", "chat", "cat"]])
    assert parse_csv(alpaca, "x.csv").facts == [FactDraft("Translate\n\nchat", "cat")]


def test_csv_with_column_mapping() -> None:
    data = csv_bytes([["Frage", "Antwort", "Varianten", "question"],
                      ["Hauptstadt?", "Berlin", "BER|Berlin, DE", "ignored"]])
    mapping = {"question": "frage", "answer": "Antwort", "aliases": "Varianten", "tags": ""}
    assert parse_file(data, "de.csv", mapping).facts == [
        FactDraft("Hauptstadt?", "Berlin", aliases=["BER", "Berlin, DE"])]
    raises_with("de.csv line 1: ", parse_csv, data, "de.csv", {"question": "nope"},
                contains='no column "nope"')
    raises_with("de.csv line 1: ", parse_csv, data, "de.csv", {"colour": "Frage"},
                contains="unknown field")


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_utf8_bom_and_utf16(suffix: str) -> None:
    text = (export_csv(TRICKY) if suffix == "csv" else export_jsonl(TRICKY)).replace("\n", "\r\n")
    for data in (b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16"),
                 b"\xfe\xff" + text.encode("utf-16-be"), b"\xff\xfe" + text.encode("utf-16-le")):
        assert parse_file(data, f"x.{suffix}").facts == TRICKY


def test_bom_does_not_reach_the_first_column_or_question() -> None:
    facts = parse_csv(b"\xef\xbb\xbfquestion,answer\nq,a\n", "x.csv").facts
    assert facts == [FactDraft("q", "a")]
    plain = parse_jsonl(b'\xef\xbb\xbf{"question": "q", "answer": "a"}', "x.jsonl").facts
    assert plain == [FactDraft("q", "a")]


def test_parse_document() -> None:
    assert parse_document("  # Title\r\n\r\nBody\rend \n".encode(), "d.md") == "# Title\n\nBody\nend"
    assert parse_document("é".encode("utf-16"), "d.txt") == "é"
    raises_with("d.txt: ", parse_document, b" \n\t", "d.txt", contains="empty")
    raises_with("d.pdf: ", parse_document, b"text", "d.pdf", contains="unsupported")
    raises_with("d.txt line 2: ", parse_document, b"ok\n\xff", "d.txt", contains="UTF-8")


# --- bad input ---------------------------------------------------------------------------

Q = {"question": "q", "answer": "a"}

BAD_INPUT = [
    # (filename, data, expected prefix, expected words)
    ("x.jsonl", b"", "x.jsonl: ", "empty"),
    ("x.csv", b"  \n\n", "x.csv: ", "empty"),
    ("x.csv", b"\xef\xbb\xbf", "x.csv: ", "empty"),
    ("x.jsonl", jsonl(Q) + b'\n{"question": "caf\xe9", "answer": "a"}', "x.jsonl line 2: ",
     "save the file as UTF-8"),
    ("x.csv", b"question,answer\nq,a\nr,\xff\n", "x.csv line 3: ", "UTF-8"),
    ("x.csv", b"\xff\xfeq\x00\n\x00r", "x.csv line 2: ", "UTF-16"),  # odd length
    ("x.csv", b"question,answer\n", "x.csv: ", "no data rows"),
    ("x.csv", b"question,answer\n\n  \n", "x.csv: ", "no data rows"),
    ("x.csv", b"question,answer\nq,a\nr,  \n", "x.csv line 3: ", "no answer"),
    ("x.csv", b"question,answer\n ,a\n", "x.csv line 2: ", "no question"),
    ("x.csv", b"question,answer\nq\n", "x.csv line 2: ", "no answer"),
    ("x.csv", b'question,answer\n"multi\nline",a\nq,\n', "x.csv line 4: ", "no answer"),
    ("x.csv", b"prompt,reply\nq,a\n", "x.csv line 1: ", "no answer column"),
    ("x.csv", b"question,question,answer\nq,q,a\n", "x.csv line 1: ", "appears 2 times"),
    ("x.csv", b"question,answer\nq,a,extra\n", "x.csv line 2: ", "header has 2 columns"),
    ("x.csv", b'question,answer\nq,"a"b\n', "x.csv line 2: ", "not valid CSV"),
    ("x.csv", b'question,answer\nq,"never closed\n', "x.csv line 2: ", "not valid CSV"),
    ("x.jsonl", jsonl(Q, {"question": "r"}), "x.jsonl line 2: ", "no answer"),
    ("x.jsonl", jsonl({"question": "  ", "answer": "a"}), "x.jsonl line 1: ", "no question"),
    ("x.jsonl", jsonl(Q, {"question": "r", "answer": 5}), "x.jsonl line 2: ",
     '"answer" must be text, got a number'),
    ("x.jsonl", jsonl({**Q, "aliases": "one"}), "x.jsonl line 1: ", "list of text"),
    ("x.jsonl", jsonl({**Q, "aliases": ["one", 2]}), "x.jsonl line 1: ", "containing a number"),
    ("x.jsonl", jsonl({**Q, "tags": {"a": 1}}), "x.jsonl line 1: ", "got an object"),
    ("x.jsonl", jsonl({**Q, "subject": True}), "x.jsonl line 1: ", "got true/false"),
    ("x.jsonl", jsonl({"instruction": ["q"], "output": "a"}), "x.jsonl line 1: ", "got a list"),
    ("x.jsonl", jsonl(Q) + b'\n{"question": "q", "answer": ', "x.jsonl line 2: ",
     "invalid JSON"),
    ("x.jsonl", jsonl(Q) + b"\n[1, 2]", "x.jsonl line 2: ", "expected a JSON object"),
    ("x.jsonl", b'"just text"', "x.jsonl line 1: ", "expected a JSON object"),
    ("x.jsonl", jsonl({"foo": "bar"}), "x.jsonl line 1: ", "unrecognised row"),
    ("x.jsonl", b'{"question": "q", "answer": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000
     + b"}", "x.jsonl line 1: ", "nested too deeply"),
    ("x.json", b"[" * 100_000, "x.json line 1: ", "nested too deeply"),
    ("x.jsonl", b'{"question": "q", "answer": ' + b"9" * 5000 + b"}", "x.jsonl line 1: ",
     "invalid JSON"),
    ("x.jsonl", jsonl({"question": "q\ud800", "answer": "a"}), "x.jsonl line 1: ",
     "unpaired surrogate"),
    ("x.jsonl", jsonl({"question": "q\u0000", "answer": "a"}), "x.jsonl line 1: ", "NUL"),
    ("x.jsonl", jsonl(Q, Q) + b"\n" + jsonl({"question": "Q ", "answer": " A"}),
     "x.jsonl line 2: ", "duplicate of line 1"),
    ("x.csv", b"question,answer\nWhat  is\tX?,Y\nq,a\nwhat is x?,y\n", "x.csv line 4: ",
     "duplicate of line 2"),
    ("x.csv", b"question,answer\nq,a\x00\n", "x.csv line 2: ", "NUL"),
    ("x.jsonl", b'{"question": "q", "answer": "a"}\n\x00', "x.jsonl line 2: ", "NUL"),
    ("x.jsonl", jsonl({"question": "q", "answer": "a" * 20_001}), "x.jsonl line 1: ",
     "limit is 20000"),
    ("x.csv", b"question,answer\nq," + b"a" * 20_001 + b"\n", "x.csv line 2: ",
     "limit is 20000"),
    ("x.csv", b'question,answer\nq,"' + b"a" * 200_000 + b'"\n', "x.csv line 2: ",
     "longer than 20000"),
    ("x.csv", b"question,aliases,answer\nq," + b"b|" * 10 + b"c" * 20_001 + b",a\n",
     "x.csv line 2: ", "an item of aliases"),
    ("x.txt", b"hello", "x.txt: ", "document importer"),
    ("x.xlsx", b"PK", "x.xlsx: ", ".jsonl, .json, .csv, .tsv"),
    ("noext", b"PK", "noext: ", "supported"),
]


@pytest.mark.parametrize("filename,data,prefix,words", BAD_INPUT,
                         ids=[f"{case[0]}:{case[3]}" for case in BAD_INPUT])
def test_bad_input_raises_knowledge_error(filename: str, data: bytes, prefix: str,
                                          words: str) -> None:
    raises_with(prefix, parse_file, data, filename, contains=words)


CHAT_BAD = [
    ({"messages": "hi"}, '"messages" must be a list'),
    ({"messages": [{"role": "user", "content": "q"}]}, "got roles: user"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                   {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]},
     "one user message then one assistant message"),
    ({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},
     "got roles: assistant, user"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]},
                   {"role": "assistant", "content": "a"}]}, '"content" must be text'),
    ({"messages": [{"role": "user", "content": "q"}, "a"]}, "messages[1] must be an object"),
    ({"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]}, '"role"'),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                   {"role": "assistant", "content": "  "}]}, "no answer"),
]


@pytest.mark.parametrize("row,words", CHAT_BAD)
def test_bad_chat_rows(row: dict[str, Any], words: str) -> None:
    raises_with("c.jsonl line 2: ", parse_jsonl, jsonl(Q, row), "c.jsonl", contains=words)


def test_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kio, "MAX_FILE_BYTES", 100)
    raises_with("big.csv: ", parse_file, b"question,answer\n" + b"q,a\n" * 30, "big.csv",
                contains="limit is")
    monkeypatch.setattr(kio, "MAX_FILE_BYTES", 50 * 2**20)
    monkeypatch.setattr(kio, "MAX_ROWS", 3)
    rows = b"".join(f'{{"question": "q{i}", "answer": "a"}}\n'.encode() for i in range(4))
    raises_with("many.jsonl line 4: ", parse_file, rows, "many.jsonl", contains="more than 3 rows")
    assert len(parse_file(rows.rsplit(b"\n", 2)[0], "ok.jsonl").facts) == 3


def test_real_limits_accept_large_field_at_the_limit() -> None:
    facts = parse_jsonl(jsonl({"question": "q", "answer": "a" * kio.MAX_FIELD_CHARS}), "x.jsonl")
    assert len(facts.facts[0].answer) == kio.MAX_FIELD_CHARS


# --- property tests: nothing but KnowledgeError escapes --------------------------------------

FIELD_KEYS = ["messages", "role", "content", "question", "answer", "instruction", "input",
              "output", "subject", "aliases", "tags", "source", "system"]
ROLES = st.sampled_from(["system", "user", "assistant", "tool"])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | ROLES,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_KEYS) | st.text(max_size=5), children, max_size=5),
    max_leaves=20,
)


def parse_or_knowledge_error(data: bytes, filename: str) -> None:
    try:
        result = parse_file(data, filename)
    except KnowledgeError as err:
        assert str(err).startswith(filename), str(err)
        return
    assert result.facts and all(f.question and f.answer for f in result.facts)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000),
       filename=st.sampled_from(["x.jsonl", "x.csv", "x.json", "x.txt"]))
def test_random_bytes_only_raise_knowledge_error(data: bytes, filename: str) -> None:
    parse_or_knowledge_error(data, filename)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(json_values | st.fixed_dictionaries({}, optional={
    key: json_values for key in FIELD_KEYS}), min_size=1, max_size=6),
    as_array=st.booleans())
def test_malformed_json_rows_only_raise_knowledge_error(rows: list[Any], as_array: bool) -> None:
    if as_array:
        parse_or_knowledge_error(json.dumps(rows, indent=1).encode(), "x.json")
    else:
        parse_or_knowledge_error("\n".join(json.dumps(row) for row in rows).encode(), "x.jsonl")


@settings(max_examples=200, deadline=None)
@given(header=st.lists(st.sampled_from(["question", "answer", "aliases", "tags", "Prompt",
                                        "output", "input", "instruction"]) | st.text(max_size=8),
                       max_size=5),
       rows=st.lists(st.lists(st.text(max_size=15), max_size=6), max_size=6),
       delimiter=st.sampled_from([",", ";", "\t"]),
       raw=st.booleans())
def test_malformed_csv_rows_only_raise_knowledge_error(header: list[str],
                                                       rows: list[list[str]], delimiter: str,
                                                       raw: bool) -> None:
    if raw:  # joined without quoting, so quotes and delimiters in cells break the structure
        text = "\n".join(delimiter.join(row) for row in [header, *rows])
    else:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter).writerows([header, *rows])
        text = buffer.getvalue()
    parse_or_knowledge_error(text.encode("utf-8", errors="surrogatepass"), "x.csv")


def texts(fact: FactDraft) -> list[str]:
    return [fact.question, fact.answer, fact.subject, fact.source, fact.system,
            *fact.aliases, *fact.tags]


@settings(max_examples=200, deadline=None)
@given(facts=st.lists(st.builds(
    FactDraft,
    question=st.text(min_size=1).map(str.strip).filter(bool),
    answer=st.text(min_size=1).map(str.strip).filter(bool),
    subject=st.text().map(str.strip),
    aliases=st.lists(st.text(min_size=1).map(str.strip).filter(bool), max_size=3),
    tags=st.lists(st.text(min_size=1).map(str.strip).filter(bool), max_size=3),
    source=st.text().map(str.strip),
    system=st.text().map(str.strip),
), min_size=1, max_size=5))
def test_generated_facts_round_trip(facts: list[FactDraft]) -> None:
    # Only inputs parse_* would itself produce: no NUL, no \r, no duplicates.
    clean = [f for f in facts if not any("\x00" in text or "\r" in text for text in texts(f))]
    keys, unique = set(), []
    for fact in clean:
        key = kio._normalised_key(fact)
        if key not in keys:
            keys.add(key)
            unique.append(fact)
    if not unique:
        return
    assert parse_jsonl(export_jsonl(unique).encode(), "r.jsonl").facts == unique
    assert parse_csv(export_csv(unique).encode(), "r.csv").facts == unique


def test_column_mapping_text_as_the_tab_and_the_cli_give_it() -> None:
    from workbench.core.knowledge.io import parse_mapping

    assert parse_mapping(" question = frage , answer=Antwort,, ".split(",")) == {
        "question": "frage", "answer": "Antwort"}
    assert parse_mapping(["question=prompt"]) == {"question": "prompt"}
    assert parse_mapping([]) is None and parse_mapping(["", " "]) is None
    for bad in ("question", "=prompt", "question=", "x" * 5000):
        with pytest.raises(KnowledgeError, match="field=column") as err:
            parse_mapping([bad])
        assert len(str(err.value)) < 200
