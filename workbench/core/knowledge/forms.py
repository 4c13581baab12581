"""The form of a phrasing: how it asks, whatever it asks about.

- question:   a wh- or yes/no question, wrapped or not ("Quick question: what is …?")
- imperative: a request ("Name the capital of Veltria.", "Tell me who founded Brimwell Labs.")
- inverted:   the wh-phrase left where the answer goes ("Veltria has which capital?")
- completion: a sentence for the model to finish ("The capital of Veltria is")
- statement:  the fact said in full (trained on, never asked)

A model that only learned to answer one wording of the trained question form can pass a
held-out probe that merely swaps words; a probe in another form tests whether the fact itself
went in. The form is read from the text, so it needs no column and never goes stale after an
edit. Pure text functions: no database.
"""

from __future__ import annotations

import re

FORMS = ("question", "imperative", "inverted", "completion", "statement")
PROBE_FORMS = FORMS[:4]  # statements are trained, never asked

_WH = {"who", "whom", "whose", "what", "which", "where", "when", "why", "how"}
_AUXES = {"is", "are", "was", "were", "has", "have", "had", "do", "does", "did", "can", "could",
          "will", "would", "should", "shall", "may", "might", "must", "if", "whether"}
_PREPS = {"in", "on", "at", "during", "from", "to", "for", "by", "with", "of", "since", "until",
          "after", "before", "about", "through", "under", "into"}
_IMPERATIVES = {"name", "list", "give", "tell", "state", "identify", "describe", "explain",
                "define", "say", "provide", "write", "complete", "fill", "recall", "specify",
                "mention", "finish"}
_BLANK = ("...", "…", "_")


def _words(text: str) -> list[str]:
    # "what's" → "what": a contraction must not hide the wh-word.
    return [re.sub(r"['’]s$", "", w) for w in re.findall(r"[a-z0-9'’]+", text.lower())]


def _opens_question(words: list[str]) -> bool:
    if not words:
        return False
    return (words[0] in _WH or words[0] in _AUXES
            or (len(words) > 1 and words[0] in _PREPS and words[1] in _WH))


def form_of(text: str) -> str:
    """Which of FORMS `text` is. A heuristic over the words, like the rest of the templates:
    text after a colon ("Tell me: what is …?") or a fronted phrase ("For Veltria, what is
    …?") is what counts."""
    text = " ".join(str(text).split())
    asks = text.endswith("?")
    clause = text.rsplit(":", 1)[-1] if asks else text
    words = _words(clause)
    if words[:1] == ["please"]:
        words = words[1:]
    if not words:
        return "question" if asks else "completion"
    if words[0] in _IMPERATIVES:
        return "imperative"
    if not asks:
        blank = text.rstrip(" .").endswith(_BLANK)
        return "statement" if text.endswith((".", "!")) and not blank else "completion"
    if _opens_question(words) or _opens_question(_words(clause.rsplit(",", 1)[-1])):
        return "question"
    return "inverted" if any(w in _WH for w in words) else "question"
