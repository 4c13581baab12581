"""Documents → proposed question/answer pairs, for the user to review before they join a set.

A document is cut into chunks a small model can read at once (`chunk_document`, in
`chunking.py`); each chunk gives proposals either from a model (`model_proposals`: it writes
Q/A pairs, and only answers that occur in the passage are kept, so hallucinations stay out)
or without one
(`cloze_proposals`: natural questions for common sentence patterns such as "X was born in Y",
fill-in-the-blank questions otherwise). Nothing here is stored; proposals become `FactDraft`s
only when the user accepts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# chunk_document and split_sentences are re-exported: callers read documents through here.
from workbench.core.knowledge.chunking import (HEADING, chunk_document, split_sentences,
                                               text_sentences)
from workbench.core.knowledge.types import FactDraft
from workbench.core.scoring import normalize

__all__ = ["Ask", "Proposal", "chunk_document", "cloze_proposals", "model_proposals",
           "propose_facts", "split_sentences"]

Ask = Callable[[list[str]], list[str]]

_MODEL_BATCH = 8  # chunks per `ask` call in propose_facts: one batched generation, bounded memory


# ---------------------------------------------------------------------------------------------
# Proposals


@dataclass
class Proposal:
    question: str
    answer: str
    source: str  # the sentence that states the fact (or the chunk, where none is found)
    chunk_index: int
    method: str  # "cloze" | "model"

    def to_draft(self) -> FactDraft:
        return FactDraft(question=self.question, answer=self.answer, source=self.source)


_LINKS = r"(?:of|de|da|di|von|van|der|del|la|le|the|and)"
# A proper name: capitalised words, possibly joined by "of", "de", … ("Leonardo da Vinci").
_NAME = rf"(?:[A-Z][\w'’.-]*)(?:,? (?:{_LINKS} )*[A-Z][\w'’.-]*)*"
_MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|"
          r"December)")
_DATE = rf"(?:\d{{1,2}} {_MONTH},? \d{{3,4}}|{_MONTH} \d{{1,2}},? \d{{3,4}}|{_MONTH} \d{{3,4}})"
_YEAR = r"\b(1\d{3}|20\d{2})\b"
_PRONOUNS = {"he", "she", "it"}
_SENTENCE_STARTERS = {"In", "On", "At", "After", "Before", "During", "Since", "From", "When",
                      "While", "Although", "However", "Later", "Then", "Her", "His", "Its",
                      "Their", "This", "That", "These", "Those", "As", "By", "For", "With", "A",
                      "An", "It", "He", "She", "They", "There", "Today", "Some", "Many"}
_EVENT_VERBS = {"founded": "founded", "established": "established", "built": "built",
                "completed": "completed", "opened": "opened", "published": "published",
                "released": "released", "invented": "invented", "discovered": "discovered",
                "signed": "signed", "created": "created", "formed": "formed",
                "launched": "launched", "constructed": "constructed", "written": "wrote",
                "painted": "painted", "composed": "composed", "designed": "designed",
                "directed": "directed", "developed": "developed"}
_AGENT_VERBS = ("wrote", "painted", "composed", "invented", "discovered", "founded", "designed",
                "directed", "built", "created", "developed", "established")
_PERSON_ROLES = {"founder", "author", "president", "ceo", "king", "queen", "leader", "director",
                 "son", "daughter", "wife", "husband", "father", "mother", "brother", "sister",
                 "inventor", "creator", "chairman", "head", "mayor", "governor", "captain",
                 "prime minister", "emperor", "composer", "painter", "designer", "architect"}


def _is_person_role(role: str) -> bool:
    role = role.lower()
    return role in _PERSON_ROLES or role.split()[-1] in _PERSON_ROLES


def _tidy(text: str) -> str:
    return " ".join(text.split()).strip(" ,;:")


def _clip(phrase: str) -> str:
    """A captured phrase up to the first clause break ("London, where she …" → "London")."""
    return _tidy(re.split(r",\s|;\s|\s\(|\s[-–—]\s| which | who | where | and then ",
                          phrase)[0])


def _subject_text(x: str, last_name: str) -> str | None:
    """The subject of a pattern as it can appear in a question: appositions dropped ("Ada, the
    poet's daughter, …" → "Ada"), he/she/it resolved to the last named subject, a leading
    article lower-cased."""
    x = _tidy(x.split(",")[0])
    if x.lower() in _PRONOUNS:
        return last_name or None
    if not x[:1].isupper() or len(x.split()) > 8:
        return None
    return re.sub(r"^(The|A|An) ", lambda m: m[1].lower() + " ", x)


def _place(tail: str) -> str | None:
    m = re.search(rf"\bin ({_NAME})", tail)
    if m and not re.match(_MONTH, m[1]) and not re.match(r"\d", m[1]):
        return _clip(m[1])
    return None


def _when(tail: str) -> str | None:
    m = re.search(rf"\b(?:on|in) ({_DATE})", tail) or re.search(rf"\bin ({_YEAR})", tail)
    return m[1] if m else None


# Birth and death sentences: (pattern, where-question, when-question).
_LIFE_EVENTS = (
    (r"^(?P<x>.+?),? (?:was|were) born (?P<tail>.+)$", "Where was {x} born?", "When was {x} born?"),
    (r"^(?P<x>.+?),? (?:died) (?P<tail>.+)$", "Where did {x} die?", "When did {x} die?"),
)


def _pattern_questions(core: str, last_name: str) -> list[tuple[str, str]]:
    """Natural questions for common statement patterns, as (question, answer)."""
    out: list[tuple[str, str]] = []
    for pattern, where, when_q in _LIFE_EVENTS:
        m = re.match(pattern, core)
        if m and (x := _subject_text(m["x"], last_name)):
            if place := _place(m["tail"]):
                out.append((where.format(x=x), place))
            if when := _when(m["tail"]):
                out.append((when_q.format(x=x), when))
            return out
    verbs = "|".join(_EVENT_VERBS)
    m = re.match(rf"^(?P<x>.+?),? (?P<aux>was|were|is|are) (?P<verb>{verbs}) (?P<tail>.+)$", core)
    if m and (x := _subject_text(m["x"], last_name)):
        aux, verb, tail = m["aux"], m["verb"], m["tail"]
        if when := _when(tail):
            out.append((f"When {aux} {x} {verb}?", when))
        if (place := _place(tail)) and verb not in ("written", "painted", "composed"):
            out.append((f"Where {aux} {x} {verb}?", place))
        if by := re.search(rf"\bby ((?:the )?{_NAME})", tail):
            out.append((f"Who {_EVENT_VERBS[verb]} {x}?", _clip(by[1])))
        return out
    m = re.match(rf"^(?P<x>{_NAME}) (?P<aux>is|was) the (?P<role>[\w -]+?) of (?P<y>.+)$", core)
    if m and m["x"].lower() not in _PRONOUNS and len(m["role"].split()) <= 3:
        word = "Who" if _is_person_role(m["role"]) else "What"
        y = _clip(re.split(r" and ", m["y"])[0])
        return [(f"{word} {m['aux']} the {m['role']} of {y}?", _tidy(m["x"]))]
    m = re.match(rf"^The (?P<role>[\w -]+?) of (?P<y>.+?) (?P<aux>is|was) (?P<x>{_NAME})$", core)
    if m and len(m["role"].split()) <= 3:
        word = "Who" if _is_person_role(m["role"]) else "What"
        return [(f"{word} {m['aux']} the {m['role']} of {m['y']}?", _clip(m["x"]))]
    agents = "|".join(_AGENT_VERBS)
    m = re.match(rf"^(?P<x>{_NAME}) (?P<verb>{agents}) (?P<y>.+)$", core)
    if m and m["x"].lower() not in _PRONOUNS and m["x"] not in _SENTENCE_STARTERS:
        y = _clip(m["y"])
        if len(y.split()) >= 1:
            return [(f"Who {m['verb']} {y}?", _tidy(m["x"]))]
    return out


def _cloze_span(sentence: str) -> str | None:
    """The answer for a fill-in-the-blank question: a year, else a number, else a multi-word
    name not at the sentence start, else the last capitalised word not at the start."""
    if m := re.search(_YEAR, sentence):
        return m[1]
    if m := re.search(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])", sentence):
        return m[0]
    multi_word = rf"\b[A-Z][\w'’-]*(?:\s+(?:{_LINKS}\s+)*[A-Z][\w'’-]*)+"
    names = [m for m in re.finditer(multi_word, sentence) if m.start() > 0]
    if names:
        return re.sub(r"['’]s$", "", names[0][0])
    words = [m for m in re.finditer(r"\b[A-Z][a-z][\w'’-]*", sentence) if m.start() > 0]
    if words:
        return re.sub(r"['’]s$", "", words[-1][0])
    return None


def _leading_name(sentence: str) -> str:
    """A sentence's leading proper name ("Ada Lovelace was …" → "Ada Lovelace"), for he/she."""
    m = re.match(rf"^({_NAME})\b", sentence)
    if not m or m[1].split()[0] in _SENTENCE_STARTERS:
        return ""
    name = _clip(m[1])
    if name.startswith("The ") and len(name.split()) < 3:
        return ""  # "The Ada programming language": not a name on its own
    return name


def cloze_proposals(chunk: str, chunk_index: int, max_per_chunk: int = 5) -> list[Proposal]:
    """Questions from a chunk without a model: natural questions for sentences that match a
    common pattern, fill-in-the-blank questions for the others. Every answer occurs in its
    sentence."""
    natural: list[Proposal] = []
    cloze: list[Proposal] = []
    headings = [_tidy(line.lstrip("# ")) for line in chunk.splitlines() if HEADING.match(line)]
    heading = headings[0] if headings else ""
    # A heading like "# Ada Lovelace" names whom the first "she" refers to; "# Legacy" does not.
    last_name = heading if re.fullmatch(_NAME, heading or "-") and len(heading.split()) >= 2 else ""
    for sentence in text_sentences(chunk):
        sentence = " ".join(sentence.split())
        core = sentence.rstrip(" .!;:")
        words = core.split()
        if sentence.endswith("?") or not 4 <= len(words) <= 60:
            continue
        pairs = [(q, a) for q, a in _pattern_questions(core, last_name) if a and a in sentence]
        natural += [Proposal(q, a, sentence, chunk_index, "cloze") for q, a in pairs]
        if not pairs and (span := _cloze_span(sentence)):
            blanked = sentence.replace(span, "___", 1)
            cloze.append(Proposal(f"Fill in the blank: {blanked}", span, sentence, chunk_index,
                                  "cloze"))
        last_name = _leading_name(sentence) or last_name
    return _unique([*natural, *cloze])[:max_per_chunk]


def _unique(proposals: list[Proposal]) -> list[Proposal]:
    seen: set[str] = set()
    out: list[Proposal] = []
    for p in proposals:
        key = normalize(p.question)
        if key and key not in seen:
            seen.add(key)
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Model proposals

_QA_INLINE = re.compile(r"^(?:Q|Question)\s*\d*\s*[:.)-]\s*(?P<q>.+?)\s*[-–|;,]?\s*"
                        r"\b(?:A|Answer)\s*\d*\s*:\s*(?P<a>.+)$", re.IGNORECASE)
_Q_LINE = re.compile(r"^(?:Q|Question)\s*\d*\s*[:.)-]\s*(?P<q>.+)$", re.IGNORECASE)
_A_LINE = re.compile(r"^(?:A|Answer)\s*\d*\s*[:.)-]\s*(?P<a>.+)$", re.IGNORECASE)
_LIST_MARK = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.)])\s*")


def _proposal_prompt(chunk: str, n: int) -> str:
    return (f"Read the passage and write up to {n} question-answer pairs about facts stated in "
            "it, one per line as 'Q: … A: …'. Each answer must be a short phrase copied from "
            f"the passage.\n\nPassage:\n{chunk}")


def _strip_marks(line: str) -> str:
    return _LIST_MARK.sub("", line.replace("**", "").replace("__", "")).strip()


def _qa_pairs(reply: str) -> list[tuple[str, str]]:
    """(question, answer) pairs from 'Q: … A: …' lines or 'Question:'/'Answer:' line pairs."""
    pairs: list[tuple[str, str]] = []
    pending = ""
    for raw in reply.splitlines():
        line = _strip_marks(raw)
        if m := _QA_INLINE.match(line):
            pairs.append((m["q"], m["a"]))
            pending = ""
        elif (m := _A_LINE.match(line)) and pending:
            pairs.append((pending, m["a"]))
            pending = ""
        elif m := _Q_LINE.match(line):
            pending = m["q"]
    return pairs


def _clean_pair(question: str, answer: str) -> tuple[str, str] | None:
    question = " ".join(question.split()).strip(" \"'“”")
    answer = " ".join(answer.split()).strip(" \"'“”").rstrip(".")
    if not question or not answer or len(question.split()) < 3 or len(answer.split()) > 15:
        return None
    if not question.endswith("?"):
        question = question.rstrip(" .:;") + "?"
    if f" {normalize(answer)} " in f" {normalize(question)} ":
        return None  # the question gives its own answer away
    return question, answer


def _supporting_sentence(chunk: str, answer: str) -> str:
    gold = f" {normalize(answer)} "
    for sentence in text_sentences(chunk):
        if gold in f" {normalize(sentence)} ":
            return " ".join(sentence.split())
    return chunk


def _parse_proposals(reply: object, chunk: str, chunk_index: int, n: int) -> list[Proposal]:
    if not isinstance(reply, str):
        return []
    text = f" {normalize(chunk)} "
    out: list[Proposal] = []
    for q, a in _qa_pairs(reply):
        pair = _clean_pair(q, a)
        # Only answers the passage states: that is what keeps invented facts out.
        if pair and normalize(pair[1]) and f" {normalize(pair[1])} " in text:
            out.append(Proposal(pair[0], pair[1], _supporting_sentence(chunk, pair[1]),
                                chunk_index, "model"))
    return _unique(out)[:n]


def model_proposals(chunk: str, chunk_index: int, ask: Ask,
                    max_per_chunk: int = 5) -> list[Proposal]:
    """Q/A pairs a model writes about the chunk, keeping only answers stated in the chunk."""
    replies = ask([_proposal_prompt(chunk, max_per_chunk)])
    reply = replies[0] if isinstance(replies, (list, tuple)) and replies else ""
    return _parse_proposals(reply, chunk, chunk_index, max_per_chunk)


def propose_facts(text: str, ask: Ask | None = None, max_per_chunk: int = 5,
                  max_chars: int = 800) -> list[Proposal]:
    """Proposals for a whole document: from the model where `ask` is given (cloze questions for
    chunks where it gave nothing usable), else cloze; no two with the same question."""
    chunks = chunk_document(text, max_chars)
    found: list[Proposal] = []
    for start in range(0, len(chunks), _MODEL_BATCH):
        batch = chunks[start:start + _MODEL_BATCH]
        replies: list[object] = []
        if ask is not None:
            got = ask([_proposal_prompt(c, max_per_chunk) for c in batch])
            replies = list(got) if isinstance(got, (list, tuple)) else []
        for offset, chunk in enumerate(batch):
            index = start + offset
            reply = replies[offset] if offset < len(replies) else ""
            props = _parse_proposals(reply, chunk, index, max_per_chunk)
            found += props or cloze_proposals(chunk, index, max_per_chunk)
    return _unique(found)
