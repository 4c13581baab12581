"""Paraphrases written by a model: the prompt that asks for them and the clean-up of
whatever comes back (bullets, labels, quotes, lines that leak the answer)."""

from __future__ import annotations

import re
from collections.abc import Callable

from workbench.core.knowledge.paraphrase.parse import _lower_words
from workbench.core.knowledge.paraphrase.words import _AUXES, _WH, _cap, _clean, _contains, dedupe
from workbench.core.scoring import normalize


_BULLET = re.compile(r"^(?:[-*•·–—>]+|\(?\d{1,2}\s*[.):\]-]|\(?[a-hA-H][.)](?=\s))\s*")
_LABEL = re.compile(r"^(?:rewrite|paraphrase|question|version|option|variant|rephrased|q)"
                    r"\s*\d*\s*[:.)-]\s+", re.IGNORECASE)
_QUOTES = "\"'“”‘’`*_ "


def _prompt(question: str, n: int, have: list[str]) -> str:
    if have:
        avoid = "\n".join(f"- {h}" for h in have)
        return (f"Rewrite the following question in {n} more different ways with the same "
                f"meaning, using different words and sentence structure from these:\n{avoid}\n"
                "Do not answer it. Put each rewrite on its own line.\n"
                f"Question: {question}")
    return (f"Rewrite the following question in {n} different ways with the same meaning. "
            "Do not answer it. Put each rewrite on its own line.\n"
            f"Question: {question}")


def _strip_line(line: str) -> str:
    line = line.strip().strip(_QUOTES)
    for _ in range(3):  # "1. Rewrite: …", "- **Q:** …"
        stripped = _LABEL.sub("", _BULLET.sub("", line).strip(_QUOTES)).strip(_QUOTES)
        if stripped == line:
            break
        line = stripped
    return _clean(line)


def _candidates(reply: str) -> list[str]:
    """Question-like pieces of a reply: one per '?'-ended sentence, or a clear question line."""
    found: list[str] = []
    for raw in reply.splitlines():
        line = _strip_line(raw)
        if not line:
            continue
        if "?" in line:
            found += [_strip_line(q) for q in re.findall(r"[^?]*\?", line)]
        elif _lower_words(line)[:1] and _lower_words(line)[0] in _WH | _AUXES:
            found.append(line.rstrip(" .!;:") + "?")
    return [q for q in found if q != "?"]


def _leaks(line: str, question: str, answer: str) -> bool:
    """The answer, or any distinctive word of it the question does not already use ("Was it
    Shakespeare who wrote Hamlet?" for "William Shakespeare"): models leak answers partly."""
    if _contains(line, answer):
        return True
    asked = set(normalize(question).split())
    said = set(normalize(line).split())
    return any(len(w) >= 3 and w not in asked and w in said for w in normalize(answer).split())


def _usable(line: str, question: str, answer: str) -> bool:
    words = line.split()
    return (len(words) >= 3 and len(line) <= 3 * max(len(question), 1)
            and bool(re.search(r"[A-Za-z]", line)) and not _leaks(line, question, answer))


def model_paraphrases(question: str, answer: str, ask: Callable[[list[str]], list[str]],
                      n: int = 5, *, rounds: int = 2) -> list[str]:
    """Up to `n` rephrasings written by a model through `ask` (prompts → replies), cleaned:
    bullets and numbering stripped, non-questions, leaked answers, duplicates of each other or
    of the original, and too short or too long lines dropped. Garbage replies give fewer."""
    question = _clean(question)
    found: list[str] = []
    for _ in range(max(1, rounds)):
        if len(found) >= n:
            break
        replies = ask([_prompt(question, n - len(found) if found else n, found)])
        for reply in replies if isinstance(replies, (list, tuple)) else []:
            if not isinstance(reply, str):
                continue
            lines = [_cap(c) for c in _candidates(reply) if _usable(c, question, answer)]
            found = dedupe([*found, *lines], exclude=[question])
    return found[:n]
