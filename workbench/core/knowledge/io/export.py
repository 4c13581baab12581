"""Facts → files: JSONL in the ``messages`` form TRL and LLaMA-Factory read, and CSV; both
write one row per question and are read back unchanged (see `group_rows`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from workbench.core.knowledge.io.fields import CSV_COLUMNS, LIST_FIELDS, _join_list
from workbench.core.knowledge.types import FactDraft

# Characters that str.splitlines() treats as line breaks but json.dumps leaves raw: escaped on
# export so line-based JSONL readers never split a record in two.
_RAW_LINE_BREAKS = ("\u0085", "\u2028", "\u2029")


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
