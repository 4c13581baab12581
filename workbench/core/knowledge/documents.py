"""Documents → proposed question/answer pairs, for the user to review before they join a set.

A document is cut into chunks a small model can read at once (`chunk_document`); each chunk
gives proposals either from a model (`model_proposals`: it writes Q/A pairs, and only answers
that occur in the passage are kept, so hallucinations stay out) or without one
(`cloze_proposals`: natural questions for common sentence patterns such as "X was born in Y",
fill-in-the-blank questions otherwise). Nothing here is stored; proposals become `FactDraft`s
only when the user accepts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from workbench.core.knowledge.types import FactDraft
from workbench.core.scoring import normalize

Ask = Callable[[list[str]], list[str]]

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e",
                  "inc", "ltd", "co", "mt", "ft", "jan", "feb", "mar", "apr", "jun", "jul",
                  "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "approx", "ca", "fig",
                  "vol", "gen", "capt", "lt", "sgt", "rev", "hon", "dept"}
_MODEL_BATCH = 8  # chunks per `ask` call in propose_facts: one batched generation, bounded memory


# ---------------------------------------------------------------------------------------------
# Sentences and chunks


def _last_word(text: str, start: int, end: int) -> str:
    """The last whitespace-separated word of text[start:end], found by scanning back from
    `end`. Splitting the whole span instead re-reads it at every skipped sentence end, which
    is quadratic: a document of "a. a. a. …" took minutes."""
    while end > start and text[end - 1].isspace():
        end -= 1
    begin = end
    while begin > start and not text[begin - 1].isspace():
        begin -= 1
    return text[begin:end]


def split_sentences(text: str) -> list[str]:
    """Sentences of a passage; abbreviations ("Dr.", "e.g.") and initials ("J. R.") do not end
    one, and a sentence only ends where the next starts like one (capital, digit, quote)."""
    out: list[str] = []
    start = 0
    for m in re.finditer(r"[.!?]+[\"'”’)\]]*\s+", text):
        last = _last_word(text, start, m.start()).lower().rstrip(".")
        nxt = text[m.end():m.end() + 1]
        initial = len(last) == 1 and last.isalpha()
        if m.group().startswith(".") and (last in _ABBREVIATIONS or initial):
            continue
        if nxt and not (nxt.isupper() or nxt.isdigit() or nxt in "\"'“‘([*#-"):
            continue
        piece = text[start:m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _blocks(text: str) -> list[tuple[str, str]]:
    """('heading' | 'para', text) in document order; a heading line always ends a paragraph."""
    blocks: list[tuple[str, str]] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(("para", "\n".join(para).strip()))
            para.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            flush()
        elif _HEADING.match(line):
            flush()
            blocks.append(("heading", line.strip()))
        else:
            para.append(line.rstrip())
    flush()
    return blocks


def _pack(pieces: list[str], limit: int, sep: str) -> list[str]:
    """Greedily join pieces with `sep` into strings of at most `limit` characters (a single
    piece longer than that stays as it is)."""
    out: list[str] = []
    current = ""
    for piece in pieces:
        joined = f"{current}{sep}{piece}" if current else piece
        if current and len(joined) > limit:
            out.append(current)
            current = piece
        else:
            current = joined
    if current:
        out.append(current)
    return out


def _split_long(paragraph: str, limit: int) -> list[str]:
    """A paragraph cut into pieces of at most `limit` characters: at sentence boundaries, and
    where one sentence is too long, at whitespace (only a single longer word stays longer)."""
    if len(paragraph) <= limit:
        return [paragraph]
    pieces: list[str] = []
    for sentence in split_sentences(paragraph):
        if len(sentence) <= limit:
            pieces.append(sentence)
        else:
            pieces += _pack(sentence.split(), limit, " ")
    return _pack(pieces, limit, " ")


def chunk_document(text: str, max_chars: int = 800) -> list[str]:
    """Chunks of at most `max_chars` characters (only an unbreakable word can be longer).

    Paragraphs (blank-line separated) are merged while they fit; long ones are split at
    sentences, then at whitespace. A Markdown heading starts a new chunk and is repeated at the
    start of each chunk of its section, so every chunk keeps its context — unless the heading
    would take more than half the room, in which case it becomes a chunk of its own.
    """
    max_chars = max(1, max_chars)
    chunks: list[str] = []
    context = ""  # the current heading(s)
    shown = False  # whether `context` is already in some chunk
    body: list[str] = []  # paragraphs (or pieces of one) of the chunk being built

    def prefix() -> str:
        return context if context and len(context) + 2 <= max_chars // 2 else ""

    def joined(parts: list[str]) -> str:
        return "\n\n".join([prefix(), *parts] if prefix() else parts)

    def flush() -> None:
        nonlocal shown
        if body:
            chunks.append(joined(body))
            shown = shown or bool(prefix())
            body.clear()

    def show_context_alone() -> None:
        nonlocal shown
        if context and not shown:
            chunks.extend(_split_long(context, max_chars))
            shown = True

    for kind, block in _blocks(text):
        if kind == "heading":
            flush()
            if context and not shown and len(context) + 2 + len(block) <= max_chars // 2:
                context = f"{context}\n\n{block}"  # "# Part\n## Chapter": keep both as context
                continue
            show_context_alone()  # a heading with no text under it is still content
            context, shown = block, False
            continue
        if context and not prefix():
            show_context_alone()
        room = max_chars - (len(prefix()) + 2 if prefix() else 0)
        for piece in _split_long(block, room):
            if len(joined([*body, piece])) <= max_chars:
                body.append(piece)
                continue
            flush()
            if len(joined([piece])) <= max_chars:
                body.append(piece)
            else:
                chunks.append(piece)  # a word longer than the room left: on its own
    flush()
    show_context_alone()
    return chunks


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


def _text_sentences(chunk: str) -> list[str]:
    """The chunk's sentences, headings and list bullets left out."""
    units: list[str] = []  # paragraphs, with each list item a unit of its own
    for para in re.split(r"\n\s*\n", chunk):
        current: list[str] = []
        for line in para.splitlines():
            if not line.strip() or _HEADING.match(line):
                continue
            item = re.match(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$", line)
            if item:
                units.append(" ".join(current))
                current = [item[1]]
            else:
                current.append(line.strip())  # a wrapped line continues its sentence
        units.append(" ".join(current))
    return [s for unit in units if unit.strip() for s in split_sentences(unit)]


def cloze_proposals(chunk: str, chunk_index: int, max_per_chunk: int = 5) -> list[Proposal]:
    """Questions from a chunk without a model: natural questions for sentences that match a
    common pattern, fill-in-the-blank questions for the others. Every answer occurs in its
    sentence."""
    natural: list[Proposal] = []
    cloze: list[Proposal] = []
    headings = [_tidy(line.lstrip("# ")) for line in chunk.splitlines() if _HEADING.match(line)]
    heading = headings[0] if headings else ""
    # A heading like "# Ada Lovelace" names whom the first "she" refers to; "# Legacy" does not.
    last_name = heading if re.fullmatch(_NAME, heading or "-") and len(heading.split()) >= 2 else ""
    for sentence in _text_sentences(chunk):
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
    for sentence in _text_sentences(chunk):
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
