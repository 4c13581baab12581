"""Cutting a document into sentences and into chunks a small model can read at once: the
first step of proposing facts from a document (`documents.py`), kept apart because it is plain
text handling with no notion of questions. A heading is repeated at the start of each chunk
of its section; a paragraph longer than a chunk is cut at sentences, then at whitespace.
"""

from __future__ import annotations

import re

HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "etc", "e.g", "i.e",
                  "inc", "ltd", "co", "mt", "ft", "jan", "feb", "mar", "apr", "jun", "jul",
                  "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "approx", "ca", "fig",
                  "vol", "gen", "capt", "lt", "sgt", "rev", "hon", "dept"}


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
        elif HEADING.match(line):
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


def text_sentences(chunk: str) -> list[str]:
    """The chunk's sentences, headings and list bullets left out."""
    units: list[str] = []  # paragraphs, with each list item a unit of its own
    for para in re.split(r"\n\s*\n", chunk):
        current: list[str] = []
        for line in para.splitlines():
            if not line.strip() or HEADING.match(line):
                continue
            item = re.match(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$", line)
            if item:
                units.append(" ".join(current))
                current = [item[1]]
            else:
                current.append(line.strip())  # a wrapped line continues its sentence
        units.append(" ".join(current))
    return [s for unit in units if unit.strip() for s in split_sentences(unit)]
