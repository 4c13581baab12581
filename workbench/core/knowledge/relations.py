"""Same-relation neighbours: the set's own questions asked about real entities.

An edit such as "the capital of Freedonia is Fredville" spills over first onto questions of
the same form ("What is the capital of Japan?"), so that is where locality should look and
where replay anchors the model. `assets/locality/relations.jsonl` lists relations (capital,
currency, founder, …) with the key phrases that identify each in a question and real
entities with their answers. For every fact, the relation is read from its question with
the subject taken out, the question becomes a template by putting a slot where the subject
was (the user's own wording), and each entity of the relation fills the slot; the
relation's canonical question is the fallback wording (and the only one when the subject
cannot be found in the question).

Plain functions of text, no I/O beyond reading the list: `locality.build_locality` and
`replay.replay_examples` ask the base model and keep only what it answers correctly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.core.errors import KnowledgeError
from workbench.core.knowledge.types import Fact
from workbench.core.paths import RELATIONS_FILE
from workbench.core.scoring import is_correct, normalize

SLOT = "{subject}"  # where the subject goes in a template (filled by replace, never format)
# Words that may sit inside a capitalised name ("Bank of England", "Leonardo da Vinci").
_CONNECTORS = {"of", "the", "de", "da", "di", "del", "van", "von", "der", "la", "le", "and", "&"}


@dataclass(frozen=True)
class Entity:
    subject: str
    answer: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Relation:
    name: str
    keys: tuple[str, ...]  # phrases whose words identify the relation in a question
    unless: tuple[str, ...]  # words that mean another relation ("when" was X born: a date)
    template: str  # the canonical question, with SLOT for the subject
    entities: tuple[Entity, ...]


@dataclass(frozen=True)
class Neighbour:
    """One real entity of a fact's relation, with the questions to ask it by, best first."""

    relation: str
    subject: str
    answer: str
    aliases: tuple[str, ...]
    questions: tuple[str, ...]  # the user's wording first, then the canonical one


def load_relations(path: Path = RELATIONS_FILE) -> list[Relation]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise KnowledgeError(f"cannot read the relations list {path}: "
                             f"{err.strerror or err}") from None
    relations = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            relations.append(Relation(
                raw["relation"], tuple(raw["keys"]), tuple(raw.get("unless", [])), raw["template"],
                tuple(Entity(e["subject"], e["answer"], tuple(e.get("aliases", [])))
                      for e in raw["entities"])))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise KnowledgeError(f"{path.name} line {number} is not a relation: {err}") from None
    return relations


# --- reading a question ----------------------------------------------------------------------


def guess_subject(question: str, ignore: Iterable[str] = ()) -> str:
    """The longest run of capitalised words (or numbers) after the first word: the named thing
    a question is about ("Who founded Zorblax Industries?" → "Zorblax Industries"). Words in
    `ignore` (lower case) never belong to it: "CEO" in "the CEO of IBM". '' when there is
    none, e.g. a lower-case subject; a fact's own `subject` field is used first."""
    skip = set(ignore)
    words = re.findall(r"[\w'’&.-]+", question)
    runs: list[list[str]] = []
    current: list[str] = []
    for i, word in enumerate(words):
        word = re.sub(r"['’]s$", "", word).strip(".'’")
        named = (i > 0 and bool(word) and (word[0].isupper() or word[0].isdigit())
                 and word.lower() not in skip)
        if named:
            current.append(word)
        elif current and word.lower() in _CONNECTORS:
            current.append(word)
        else:
            if current:
                runs.append(current)
            current = []
    if current:
        runs.append(current)
    names = []
    for run in runs:
        while run and run[-1].lower() in _CONNECTORS:  # "Bank of" → "Bank"
            run = run[:-1]
        if run:
            names.append(" ".join(run))
    # Longest wins; on a tie the later one ("the CEO of IBM": IBM, not CEO).
    return max(reversed(names), key=len) if names else ""


def _subject_pattern(subject: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(subject.strip()) + r"(?!\w)", re.IGNORECASE)


def question_template(question: str, subject: str) -> str | None:
    """The question with SLOT where the subject was; None when the subject is not in it."""
    if not subject.strip():
        return None
    pattern = _subject_pattern(subject)
    if not pattern.search(question):
        return None
    return pattern.sub(lambda _m: SLOT, question, count=1)


def fill(template: str, subject: str) -> str:
    """The template asked about `subject`, without a doubled article ("the the Mona Lisa")
    and with a capital letter where the subject opens the question."""
    if subject.lower().startswith("the ") and re.search(r"\bthe " + re.escape(SLOT), template,
                                                         re.IGNORECASE):
        subject = subject[4:]
    text = template.replace(SLOT, subject)
    return text[:1].upper() + text[1:] if template.startswith(SLOT) else text


def _words(text: str) -> list[str]:
    return normalize(text).split()


def _matches(key: str, words: Sequence[str]) -> bool:
    """Every word of the key starts some word of the question ("headquarter" matches
    "headquartered"), in any order ("country born" matches "which country was … born")."""
    return all(any(w.startswith(k) for w in words) for k in _words(key))


def detect_relation(question: str, subject: str, relations: Sequence[Relation]) -> Relation | None:
    """The relation a question asks for, read with the subject taken out (so a subject named
    "Capital Bank" does not make it a capital question). The relation with the longest
    matching key wins ("country … born" beats "born"); on a tie the one listed first."""
    text = _subject_pattern(subject).sub(" ", question) if subject.strip() else question
    words = _words(text)
    best: tuple[int, Relation] | None = None
    for relation in relations:
        if any(u in words for u in relation.unless):
            continue
        score = max((len(_words(k)) for k in relation.keys if _matches(k, words)), default=0)
        if score and (best is None or score > best[0]):
            best = (score, relation)
    return best[1] if best else None


def fact_subject(fact: Fact, relations: Sequence[Relation]) -> str:
    """The fact's subject field, else the name guessed from its question (key words such as
    "CEO" are never part of it)."""
    keys = {w for r in relations for k in r.keys for w in _words(k)}
    return fact.subject.strip() or guess_subject(fact.question, keys)


def relations_of(facts: Sequence[Fact], relations: Sequence[Relation]) -> dict[str, list[str]]:
    """Per relation found in the facts (in order of first appearance), the facts' question
    templates for it (possibly empty: the subject was not found in the question)."""
    found: dict[str, list[str]] = {}
    for fact in facts:
        subject = fact_subject(fact, relations)
        relation = detect_relation(fact.question, subject, relations)
        if relation is None:
            continue
        templates = found.setdefault(relation.name, [])
        template = question_template(fact.question, subject)
        if template and template not in templates:
            templates.append(template)
    return found


def relation_counts(facts: Sequence[Fact], relations: Sequence[Relation]) -> dict[str, int]:
    """How many of the facts ask each relation (those of no listed relation are left out)."""
    counts: dict[str, int] = {}
    for fact in facts:
        relation = detect_relation(fact.question, fact_subject(fact, relations), relations)
        if relation is not None:
            counts[relation.name] = counts.get(relation.name, 0) + 1
    return counts


def same_relation_neighbours(facts: Sequence[Fact],
                             relations: Sequence[Relation]) -> list[Neighbour]:
    """For every relation of the facts, each of its real entities asked in the facts' own
    wording (the templates take turns, so every phrasing is covered) and, as a fallback, the
    canonical one. Entities that are themselves a fact's subject are left out (the set may be
    correcting exactly that), and so is any question whose gold answer it already contains
    (it would count as right by echoing the question)."""
    by_name = {r.name: r for r in relations}
    own = {normalize(fact_subject(f, relations)) for f in facts}
    out = []
    for name, templates in relations_of(facts, relations).items():
        relation = by_name[name]
        for i, entity in enumerate(e for e in relation.entities if normalize(e.subject) not in own):
            wordings = [templates[i % len(templates)]] if templates else []
            questions = []
            for template in [*wordings, relation.template]:
                question = fill(template, entity.subject)
                if question in questions or is_correct(question, entity.answer, entity.aliases):
                    continue
                questions.append(question)
            if questions:
                out.append(Neighbour(name, entity.subject, entity.answer, entity.aliases,
                                     tuple(questions)))
    return out


def asks_about(question: str, neighbour: Neighbour, relations: Sequence[Relation]) -> bool:
    """Whether `question` asks the neighbour's relation of its subject in any wording (so a
    question kept for locality is never replayed in another wording)."""
    subject = neighbour.subject.removeprefix("the ").removeprefix("The ")
    if not _subject_pattern(subject).search(question):
        return False
    relation = detect_relation(question, subject, relations)
    return relation is not None and relation.name == neighbour.relation


def used_neighbours(questions: Iterable[str], neighbours: Sequence[Neighbour],
                    relations: Sequence[Relation]) -> set[tuple[str, str]]:
    """(relation, subject) of every neighbour one of `questions` asks about."""
    questions = list(questions)
    return {(n.relation, n.subject) for n in neighbours
            if any(asks_about(q, n, relations) for q in questions)}
