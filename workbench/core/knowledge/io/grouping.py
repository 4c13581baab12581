"""Rows → facts: rows that ask the same thing become one fact with several questions."""

from __future__ import annotations

from workbench.core.errors import quoted
from workbench.core.knowledge.io.fields import ImportResult, _fail, _short, _where
from workbench.core.knowledge.types import FactDraft


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
