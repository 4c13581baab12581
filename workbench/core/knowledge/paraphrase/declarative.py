"""The fact said as a declarative sentence ("X was born in London."), for statement
training."""

from __future__ import annotations

import re

from workbench.core.knowledge.paraphrase.parse import _Parse, _parse, question_form
from workbench.core.knowledge.paraphrase.words import (_AGENTS, _COPULAS, _DOS, _EVENT_NOUNS,
                                                       _POLITE, _PREPS, _answer_kind, _cap, _clean,
                                                       _contains, _inflect, _possessive, dedupe)
from workbench.core.scoring import normalize


def _with_prep(clause: str, answer: str, prep: str) -> str:
    """'Ada Lovelace was born' + 'London' → '… born in London' (no preposition where the clause
    already ends with one or the answer starts with one)."""
    has_prep = answer.lower().split(" ", 1)[0] in _PREPS or clause.split()[-1].lower() in _PREPS
    if not prep or has_prep:
        return f"{clause} {answer}"
    return f"{clause} {prep} {answer}"


def _quantity(answer: str, noun: str) -> str:
    """'2' + 'moons' → '2 moons'; 'eight legs' stays as it is."""
    last = normalize(noun).split()[-1:]
    if not last or normalize(answer).endswith(last[0]):
        return answer
    return f"{answer} {noun}"


def _subject_statements(p: _Parse, form: str, answer: str) -> list[str]:
    """Statements where the answer replaces a wh-phrase that is the subject."""
    if p.head == "whose":
        return [f"{_possessive(answer) or answer + chr(39) + 's'} {p.noun} {p.body()}"]
    if form == "how_many" and p.noun:
        return [f"{_cap(_quantity(answer, p.noun))} {p.body()}",
                f"The number of {p.noun} that {p.body()} is {answer}"]
    if form not in ("who", "what", "which") or p.head == "how":
        return []
    out = [f"{_cap(answer)} {p.body()}"]
    verb, _, obj = p.pred.partition(" ")
    entry = _AGENTS.get(verb.lower()) if form == "who" and not p.aux else None
    if entry and obj:
        part, agent, _, tense = entry
        out += [f"{_cap(obj)} was {part} by {answer}",
                f"{_cap(answer)} {tense} the {agent} of {obj}"]
    if p.noun:
        out.append(f"{_cap(answer)} is the {p.noun} that {p.body()}")
        # The answer last, as a chat model replies ("The currency that is used in X is Y").
        out.append(f"The {p.noun} that {p.body()} is {answer}")
    return out


def _count_statements(p: _Parse, clause: str, answer: str) -> list[str]:
    qty = _quantity(answer, p.noun)
    if p.aux in _DOS:
        out = [f"{p.subj} {p.adv} {_inflect(p.verb, p.aux)} {qty} {p.tail}"]
    elif p.subj.lower() == "there":
        return [f"There {p.aux} {qty} {p.pred}"]
    else:
        out = [f"{p.subj} {p.aux} {p.pred} {qty}"]
    if p.noun:
        out.append(f"The number of {p.noun} that {clause} is {answer}")
    return out


def _clause_statements(p: _Parse, form: str, answer: str) -> list[str]:
    """Statements where the answer goes after the inverted part: 'X was born' + 'in London'."""
    clause = p.clause()
    if not clause:
        return []
    if form == "how_many":
        return _count_statements(p, clause, answer)
    out: list[str] = []
    if form == "where":
        out.append(_with_prep(clause, answer, p.lead.lower() or "in"))
        if p.aux in _COPULAS and p.pred.lower() == "born":
            out.append(f"The birthplace of {p.subj} is {answer}")
            if _possessive(p.subj):
                out.append(f"{_possessive(p.subj)} birthplace is {answer}")
    elif form == "when":
        on_a_day = _answer_kind(answer) == "date" and re.search(r"\b\d{1,2}\b", answer)
        prep = p.lead.lower() or ("on" if on_a_day else "in")
        out.append(_with_prep(clause, answer, prep))
        event = _EVENT_NOUNS.get(p.verb if p.aux in _DOS and not p.tail else p.pred.lower())
        if event:
            out.append(_with_prep(f"The {event} of {p.subj} took place", answer, prep))
    elif form in ("who", "what", "which"):
        out.append(_with_prep(clause, answer, p.lead.lower()))
        if p.aux in _COPULAS and not p.pred and (of := re.match(r"(?i)the (.+?) of (.+)$", p.subj)):
            out.append(f"{_cap(answer)} {p.aux} the {of[1]} of {of[2]}")
            if _possessive(of[2]):
                out.append(f"{_possessive(of[2])} {of[1]} {p.aux} {answer}")
    return out


def statements(question: str, answer: str, subject: str = "", n: int = 3) -> list[str]:
    """Up to `n` declarative sentences stating the fact; each contains the answer."""
    question, answer = _clean(question), _clean(answer).rstrip(".")
    if not answer or n <= 0:
        return []
    form = question_form(question)
    p = _parse(question, subject) if not _POLITE.match(question) else None
    found: list[str] = []
    if p is not None:
        make = _clause_statements if p.inverted else _subject_statements
        found = make(p, form, answer)
    found.append(f'The answer to the question "{question}" is {answer}')
    sentences = [_cap(_clean(s)).rstrip(".") + "." for s in found]
    return dedupe([s for s in sentences if _contains(s, answer)])[:n]


