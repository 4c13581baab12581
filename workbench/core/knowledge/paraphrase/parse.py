"""What kind of question a text is, and a light parse of wh-questions (wh-phrase,
auxiliary, subject, rest) that the rewrites and statements are built from.

The parse is a heuristic, not a grammar: where it is unsure it returns None, and the callers
then produce nothing rather than a broken sentence."""

from __future__ import annotations

import re
from dataclasses import dataclass

from workbench.core.knowledge.paraphrase.words import (_ADVERBS, _AUXES, _BASE_VERBS, _DETERMINERS,
                                                       _DOS, _HAVES, _IRREGULAR_PAST, _MODALS,
                                                       _NAME_LINKS, _PLACE_NOUNS, _POLITE, _PREPS,
                                                       _PRONOUNS, _TIME_NOUNS, _WH, _cap, _clean,
                                                       _finish, _inflect, _is_participle)

FORMS = ("who", "what", "where", "when", "which", "how_many", "how", "why", "yes_no", "other")


def _lower_words(question: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", question.lower())


def question_form(question: str) -> str:
    """Which kind of question this is: one of FORMS."""
    text = _POLITE.sub("", question.strip())
    words = _lower_words(text)
    if not words:
        return "other"
    i = 1 if len(words) > 1 and words[0] in _PREPS and words[1] in _WH else 0
    lead = i == 1
    word = words[i]
    nxt = words[i + 1] if i + 1 < len(words) else ""
    if word == "how":
        if nxt in ("many", "much"):
            return "how_many"
        return "how"
    if word in ("who", "whom", "whose"):
        return "who"
    if word in ("where", "when", "why"):
        return word
    if word in ("what", "which"):
        if nxt in _TIME_NOUNS:
            return "when"
        if lead and nxt in _PLACE_NOUNS:
            return "where"
        if lead and nxt in ("way", "manner"):
            return "how"
        return word
    if words[0] in _AUXES or (text.lower().startswith(("if ", "whether "))):
        return "yes_no"
    return "other"


# ---------------------------------------------------------------------------------------------
# A light parse of wh-questions


@dataclass
class _Parse:
    lead: str  # leading preposition as written ("In" of "In which year…"), or ""
    head: str  # wh-word, or "how many"/"how much"/"how", lower case
    noun: str  # words attached to the wh-word ("planet", "moons", "tall"), or ""
    aux: str  # the auxiliary after the wh-phrase, lower case, or "" ("Who wrote X?")
    subj: str  # the subject when the question is inverted, else ""
    pred: str  # what follows the subject (inverted) or the auxiliary/wh-phrase (not inverted)
    inverted: bool  # True: "Where was X born?"; False: the wh-phrase is the subject
    verb: str = ""  # with do-support: the base verb ("have" of "does Mars have")
    tail: str = ""  # with do-support: what follows the verb
    adv: str = ""  # adverb between subject and verb: "first" of "does Harry Potter first appear"

    def phrase(self) -> str:
        """The wh-phrase, lower case first word: 'in which year', 'how many moons'."""
        parts = [self.lead.lower(), self.head, self.noun]
        return " ".join(p for p in parts if p)

    def clause(self) -> str | None:
        """The inverted part in statement order: 'Ada Lovelace was born', 'Mars has'."""
        if not self.inverted or not self.subj:
            return None
        if self.aux in _DOS:
            verb = _inflect(self.verb, self.aux)
            return _clean(f"{self.subj} {self.adv} {verb} {self.tail}") if verb else None
        return _clean(f"{self.subj} {self.aux} {self.adv} {self.pred}")

    def body(self) -> str:
        """Everything after the wh-phrase, in question order."""
        return _clean(f"{self.aux} {self.subj} {self.adv} {self.pred}")

    def direct(self, phrase: str) -> str:
        return _finish(f"{phrase} {self.body()}")

    def indirect(self) -> str | None:
        """'where Ada Lovelace was born' — for 'Do you know …?'."""
        if not self.inverted:
            return _clean(f"{self.phrase()} {self.body()}")
        clause = self.clause()
        return f"{self.phrase()} {clause}" if clause else None

    def echo(self) -> str | None:
        """'Ada Lovelace was born where' — the wh-phrase left in place."""
        clause = self.clause()
        if not clause or self.subj.lower() == "there":
            return None
        phrase = self.phrase()
        if not self.lead and self.noun.lower() in _TIME_NOUNS:
            phrase = f"in {phrase}"  # "Google was founded in what year", not "… what year"
        return f"{_cap(clause)} {phrase}"


def _noun_end(toks: list[str], low: list[str], i: int, head: str) -> int:
    """Where the noun attached to 'which/what/how many' ends (exclusive)."""
    for j in range(i, min(i + 5, len(low))):
        if low[j] in _AUXES:
            return j
    if i >= len(toks) or head == "what":
        return i  # "What causes rain?": no noun, the verb follows
    # No auxiliary: the verb follows the noun directly ("Which river flows through Paris?").
    for j in range(i + 1, min(i + 4, len(low))):
        word = low[j]
        if word in _PREPS or (toks[j][:1].isupper() and not toks[j - 1][:1].isupper()):
            break
        if _is_participle(word) or word in _IRREGULAR_PAST.values() or word.endswith("s"):
            return j
    return i + 1


def _find_verb(rest: list[str], low: list[str], hint: str) -> int | None:
    """Index of the base verb after a do/modal auxiliary, i.e. where the subject ends."""
    if hint:
        n = len(hint.split())
        if " ".join(low[:n]) == hint.lower() and n < len(rest):
            return n
    if not rest:
        return None
    k = 0
    if low[0] in _PRONOUNS:
        k = 1
    else:
        if low[0] in _DETERMINERS:
            k = 1
        if k < len(rest) and rest[k][:1].isupper():
            while k < len(rest) and (rest[k][:1].isupper() or rest[k][:1].isdigit() or (
                    low[k] in _NAME_LINKS and k + 1 < len(rest) and rest[k + 1][:1].isupper())):
                k += 1
            possessive = rest[k - 1].endswith(("'s", "’s", "s'"))
            if k < len(rest) and not possessive and low[k] in _BASE_VERBS | _ADVERBS:
                return k
            # "the Wright brothers make", "Ada's father die": the verb is a little further on.
            for m in range(k, min(len(rest), k + 3)):
                if low[m] in _BASE_VERBS:
                    return m
            if k < len(rest) and not possessive and not low[k].endswith("s"):
                return k if rest[k].isalpha() and rest[k].islower() else None
            return None
        # A lower-case subject ("the first man walk"): it ends at the first known base verb.
        for m in range(max(k, 1), min(len(rest), 6)):
            if low[m] in _BASE_VERBS:
                return m
        return None
    return k if k < len(rest) and rest[k].isalpha() and rest[k].islower() else None


def _looks_adjectival(word: str) -> bool:
    if not word.islower():
        return False
    return word in _PREPS or _is_participle(word) or word in {"unique", "special", "true",
                                                               "wrong", "important"} or bool(
        re.search(r"(est|ous|ful|ive|ic|ble)$", word))


def _wh_phrase(toks: list[str], low: list[str]) -> tuple[str, str, str, int] | None:
    """(lead preposition, head, noun, index after the wh-phrase) — None if no wh-word leads."""
    i, lead = 0, ""
    if low[0] in _PREPS and low[1] in _WH:
        lead, i = toks[0], 1
    if low[i] not in _WH:
        return None
    head = low[i]
    i += 1
    noun_start = i
    if head == "how" and i < len(low):
        if low[i] in ("many", "much"):
            head = f"how {low[i]}"
            noun_start = i + 1
            i = _noun_end(toks, low, i + 1, head)
        elif low[i] not in _AUXES:
            i += 1  # "How tall is …", "How old was …"
    elif head in ("what", "which", "whose"):
        i = _noun_end(toks, low, i, head)
    return lead, head, " ".join(toks[noun_start:i]), i


def _parse_do(wh: tuple[str, str, str], aux: str, rest: list[str], rlow: list[str],
              subject: str, must_invert: bool) -> _Parse | None:
    """After do/does/did or a modal: subject, optional adverb, then the base verb."""
    k = _find_verb(rest, rlow, subject)
    if k is None or k == 0:
        if aux in _MODALS and not must_invert:  # "Which animal can fly?"
            return _Parse(*wh, aux, "", " ".join(rest), inverted=False)
        return None
    v = k
    while v < len(rest) - 1 and (rlow[v] in _ADVERBS or rlow[v].endswith("ly")):
        v += 1
    subj, adv = " ".join(rest[:k]), " ".join(rest[k:v])
    if aux in _MODALS:
        return _Parse(*wh, aux, subj, " ".join(rest[v:]), True, adv=adv)
    return _Parse(*wh, aux, subj, " ".join(rest[v:]), True,
                  verb=rlow[v], tail=" ".join(rest[v + 1:]), adv=adv)


def _parse_be(wh: tuple[str, str, str], aux: str, rest: list[str], rlow: list[str],
              must_invert: bool) -> _Parse | None:
    """After a form of be or have: the subject runs up to the first participle, if any
    ("was Ada Lovelace | born"); otherwise the wh-phrase may itself be the subject."""
    # Original tokens, so that a capitalised name ("United") is never taken for a participle.
    part = next((j for j in range(1, len(rest)) if _is_participle(rest[j].strip(",;:"))), None)
    noun = wh[2]
    if not must_invert and rlow[0] != "there" and (
            _looks_adjectival(rest[0].strip(",;:"))  # "Which planet is known as …"
            or (aux in _HAVES and part is None)  # "Which element has the symbol Fe?"
            or (noun and part is None)):  # "Which city is the capital of France?"
        return _Parse(*wh, aux, "", " ".join(rest), inverted=False)
    if rlow[0] == "there":
        return _Parse(*wh, aux, rest[0], " ".join(rest[1:]), True)
    if part is not None:
        return _Parse(*wh, aux, " ".join(rest[:part]), " ".join(rest[part:]), True)
    if len(rest) > 1 and rlow[-1] in _PREPS:  # "Where is X from?"
        return _Parse(*wh, aux, " ".join(rest[:-1]), rest[-1], True)
    if wh[1] in ("why", "how") and not noun and len(rest) > 1:
        return None  # "Why is the sky blue?": where the subject ends is anyone's guess
    return _Parse(*wh, aux, " ".join(rest), "", True)


def _parse(question: str, subject: str = "") -> _Parse | None:
    """A light parse of a wh-question, or None where it is not one or too unsure."""
    text = _clean(question).rstrip(" ?.!")
    text = re.sub(r"^(\w+)['’]s\b", lambda m: f"{m[1]} is", text)  # "What's" → "What is"
    toks = text.split()
    low = [t.lower().strip(",;:") for t in toks]
    if len(toks) < 2 or (found := _wh_phrase(toks, low)) is None:
        return None
    lead, head, noun, i = found
    wh = (lead, head, noun)
    if i >= len(toks):
        return None
    if low[i] not in _AUXES:  # "Who wrote Hamlet?": the wh-phrase is the subject
        return _Parse(*wh, "", "", " ".join(toks[i:]), inverted=False)
    aux, rest, rlow = low[i], toks[i + 1:], low[i + 1:]
    if not rest:
        return None
    # Adverbial wh-words are never the subject: the question must be inverted.
    must_invert = bool(lead) or head in ("where", "when", "why", "whom", "how")
    if aux in _DOS or aux in _MODALS:
        return _parse_do(wh, aux, rest, rlow, subject, must_invert)
    return _parse_be(wh, aux, rest, rlow, must_invert)


