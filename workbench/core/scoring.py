"""Is a free-generation answer correct? (design §4)

An answer is correct when, after normalising both (lower case, strip punctuation, articles
and extra spaces), the gold answer or one of its aliases occurs in it as whole words.
Strict exact match (normalised answer equals a normalised gold) is reported beside it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


def percent(share: float | None) -> str:
    """A share shown as a whole percentage, the one rounding rule of every screen, log and
    report: rounded down, so 100% means every answer and 0.995 reads 99%, never 100% in one
    place and 0.99 in another."""
    if share is None:
        return "—"
    return f"{math.floor(100 * share + 1e-9)}%"


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCT.sub(" ", text)
    text = _ARTICLES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _golds(answer: str, aliases: Iterable[str]) -> list[str]:
    return [g for g in (normalize(a) for a in [answer, *aliases]) if g]


def is_correct(prediction: str, answer: str, aliases: Iterable[str] = ()) -> bool:
    """Gold or alias occurs in the prediction as whole words (after normalising)."""
    pred = f" {normalize(prediction)} "
    return any(f" {gold} " in pred for gold in _golds(answer, aliases))


def is_exact(prediction: str, answer: str, aliases: Iterable[str] = ()) -> bool:
    pred = normalize(prediction)
    return bool(pred) and pred in _golds(answer, aliases)


# Ways a short answer says "I don't know" (normalised: lower case, no punctuation/articles).
_ABSTAIN = re.compile(
    r"\b(unknown|i do not know|i don t know|dont know|not known|no idea|not sure|"
    r"no information|cannot answer|can t answer|cannot say|can t say|no record|not available)\b")


def abstains(prediction: str) -> bool:
    """The answer declines ("unknown", "I don't know", …) instead of stating something."""
    return bool(_ABSTAIN.search(normalize(prediction)))
