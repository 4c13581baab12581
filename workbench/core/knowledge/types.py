"""Plain data shared by the knowledge modules; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field

KNOWN_LABELS = ("known", "maybe", "unknown")


def text_problem(text: str) -> str | None:
    """Why typed text cannot be used as it is, else None: a NUL character, or an unpaired
    surrogate (a JSON "\\ud800" escape, half of an emoji a browser split). SQLite and the
    tokenizers reject the latter with a UnicodeEncodeError or TypeError deep inside, so it is
    caught here, where the message can say which field."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an invalid character (an unpaired surrogate)"
    return None


@dataclass
class FactDraft:
    """A fact before it is stored: what importers, forms and document proposals produce."""

    question: str
    answer: str
    subject: str = ""
    aliases: list[str] = field(default_factory=list)  # accepted answer variants
    tags: list[str] = field(default_factory=list)
    source: str = ""  # free text: where it came from (file:line, a document passage, …)
    system: str = ""  # a system prompt that came with an imported chat, kept for round trips
    # Further questions asking the same fact (all trained, efficacy measured on each): sibling
    # rows of a file are one fact, so one's wording is never held out as a probe of another.
    more_questions: list[str] = field(default_factory=list)
    group: str = ""  # a file's `fact`/`group` column: rows with the same value are one fact

    @property
    def questions(self) -> list[str]:
        """Every question of the fact, its own (first) question first."""
        return [self.question, *self.more_questions]


@dataclass
class Fact(FactDraft):
    """A stored fact."""

    id: int = 0
    set_id: int = 0
    known: str = ""  # '' (not screened) | known | maybe | unknown
    known_detail: str = ""  # what the screening saw, e.g. "2/4 sampled answers correct"


@dataclass
class Phrasing:
    """One way of asking (or stating) a fact; split='probe' ones are never trained on."""

    question: str
    answer: str = ""
    kind: str = "paraphrase"  # question | paraphrase | statement | locality | neighbour | abstention
    split: str = "train"  # train | probe
    origin: str = "template"  # user | template | model | screening | asset
    fact_id: int | None = None
    aliases: list[str] = field(default_factory=list)
    approved: bool = True
    id: int = 0
