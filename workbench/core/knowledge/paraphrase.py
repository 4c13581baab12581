"""Question phrasings and declarative statements for a fact.

Facts go in far better when training sees many differently worded questions per fact, and a
held-out share of phrasings is what measures generalisation rather than recall of one string.
This module makes those phrasings three ways:

* `template_paraphrases` — deterministic rewrites: a light parse of the question (wh-phrase,
  auxiliary, subject, rest) drives form-specific rewrites ("Where was X born?" → "What is X's
  birthplace?"), indirect questions with the right word order ("Do you know where X was born?"),
  echo questions ("X was born where?") and generic wrappers ("Quick question: …").
* `form_variants` — the question asked in other forms (see `forms`): a request ("Tell me where
  X was born."), the wh-phrase left in place ("X was born where?") and a sentence to complete
  ("X was born in"), so held-out probes can differ from the trained question in form.
* `statements` — the fact said as a sentence ("X was born in London."), for statement training.
* `model_paraphrases` — asks a model to rephrase and cleans up whatever comes back.

The parse is a heuristic, not a grammar: where it is unsure it produces nothing rather than a
broken sentence, and the generic wrappers still give enough phrasings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from workbench.core.knowledge.forms import form_of  # noqa: F401 - the form of a phrasing
from workbench.core.scoring import normalize

FORMS = ("who", "what", "where", "when", "which", "how_many", "how", "why", "yes_no", "other")

_WH = {"who", "whom", "whose", "what", "which", "where", "when", "why", "how"}
_COPULAS = {"is", "are", "was", "were"}
_HAVES = {"has", "have", "had"}
_DOS = {"do", "does", "did"}
_MODALS = {"can", "could", "will", "would", "should", "shall", "may", "might", "must"}
_AUXES = _COPULAS | _HAVES | _DOS | _MODALS
_PREPS = {"in", "on", "at", "during", "from", "to", "for", "by", "with", "of", "since", "until",
          "under", "into", "after", "before", "about", "through", "near", "between", "among"}
_PLACE_NOUNS = {"city", "country", "town", "state", "continent", "region", "province", "village",
                "place", "location", "county", "island", "nation", "district", "area", "capital",
                "part", "hospital", "building", "university", "street", "ocean", "sea", "river"}
_TIME_NOUNS = {"year", "years", "date", "day", "month", "century", "decade", "era", "period",
               "time", "season"}
_DETERMINERS = {"the", "a", "an", "his", "her", "its", "their", "this", "that", "these", "those",
                "our", "my", "your"}
_PRONOUNS = {"i", "you", "he", "she", "it", "we", "they", "people", "one", "someone"}
_ADVERBS = {"first", "last", "ever", "never", "still", "also", "originally", "finally", "once",
            "later", "actually", "really", "usually", "initially", "eventually", "mainly"}
_NAME_LINKS = {"of", "de", "da", "di", "von", "van", "der", "del", "la", "le", "and", "the", "&"}
# Words that look like participles by their -ed ending but are not.
_NOT_PARTICIPLES = {"hundred", "sacred", "naked", "wicked", "beloved", "kindred", "hatred",
                    "shred", "red", "bed", "wed", "fed", "led", "shed", "sled", "bred"}
_IRREGULAR_PARTICIPLES = {
    "born", "built", "written", "known", "made", "done", "given", "taken", "seen", "held", "won",
    "sung", "drawn", "shown", "grown", "thrown", "sold", "told", "bought", "brought", "thought",
    "taught", "caught", "fought", "sent", "spent", "begun", "become", "shot", "struck", "stolen",
    "spoken", "chosen", "frozen", "broken", "worn", "torn", "sworn", "hidden", "driven", "ridden",
    "risen", "eaten", "fallen", "beaten", "forgotten", "gotten", "kept", "lost", "meant", "met",
    "paid", "said", "understood", "found", "put", "set", "run", "led", "read", "hit", "cut",
    "laid", "lit", "left", "flown", "slain", "bitten", "woven", "sunk", "swum", "drunk", "rung",
}
# Past tense of irregular verbs, for turning "did X write" into "X wrote".
_IRREGULAR_PAST = {
    "be": "was", "have": "had", "do": "did", "go": "went", "make": "made", "take": "took",
    "get": "got", "give": "gave", "write": "wrote", "win": "won", "find": "found", "lead": "led",
    "build": "built", "become": "became", "begin": "began", "come": "came", "say": "said",
    "see": "saw", "know": "knew", "run": "ran", "speak": "spoke", "teach": "taught",
    "leave": "left", "hold": "held", "sing": "sang", "fight": "fought", "buy": "bought",
    "bring": "brought", "think": "thought", "fly": "flew", "grow": "grew", "draw": "drew",
    "ride": "rode", "rise": "rose", "sell": "sold", "send": "sent", "set": "set", "sit": "sat",
    "stand": "stood", "tell": "told", "throw": "threw", "wear": "wore", "eat": "ate",
    "fall": "fell", "feel": "felt", "lose": "lost", "meet": "met", "pay": "paid", "keep": "kept",
    "mean": "meant", "spend": "spent", "hear": "heard", "read": "read", "drive": "drove",
    "break": "broke", "choose": "chose", "forget": "forgot", "hide": "hid", "shoot": "shot",
    "sleep": "slept", "swim": "swam", "understand": "understood", "put": "put", "cost": "cost",
    "hit": "hit", "cut": "cut", "let": "let", "lay": "laid", "light": "lit", "sink": "sank",
    "steal": "stole", "strike": "struck", "swear": "swore", "tear": "tore", "wake": "woke",
    "bear": "bore", "beat": "beat", "bite": "bit", "blow": "blew", "dig": "dug", "feed": "fed",
    "freeze": "froze", "hang": "hung", "shine": "shone", "sting": "stung", "weave": "wove",
}
# Short verbs whose final consonant doubles in the past tense (stop → stopped).
_DOUBLING = {"stop", "plan", "ban", "drop", "ship", "admit", "commit", "occur", "refer", "prefer",
             "permit", "control", "rob", "grab", "step", "tap", "hop", "chop", "trip", "beg",
             "hug", "jog", "nod", "rub", "scan", "skip", "slip", "spot", "star", "tag", "wrap"}
# Base verbs, to find where a "did/does"-question's subject ends ("did the first man walk").
_BASE_VERBS = set(_IRREGULAR_PAST) | set(_DOUBLING) | {
    "live", "work", "study", "play", "invent", "discover", "marry", "join", "use", "contain",
    "weigh", "represent", "produce", "create", "design", "paint", "compose", "direct", "start",
    "end", "own", "need", "require", "orbit", "cover", "border", "flow", "belong", "originate",
    "happen", "occur", "release", "publish", "visit", "receive", "earn", "score", "call", "name",
    "like", "move", "serve", "rule", "reign", "retire", "graduate", "attend", "measure", "last",
    "die", "found", "establish", "sign", "open", "close", "form", "rank", "host", "house",
    "replace", "succeed", "precede", "follow", "influence", "inspire", "portray", "voice",
    "feature", "include", "launch", "land", "reach", "cross", "travel", "arrive", "return",
    "appear", "debut", "premiere", "develop", "record", "win", "stand", "lie", "sit", "consist",
    "refer", "mean", "cause", "help", "call", "believe", "want", "try", "look", "seem",
}

# "Who VERBed X?" verbs: (participle, agent noun, gerund, tense of "the agent of X" question).
_AGENTS = {
    "wrote": ("written", "author", "writing", "is"),
    "painted": ("painted", "painter", "painting", "is"),
    "composed": ("composed", "composer", "composing", "is"),
    "invented": ("invented", "inventor", "inventing", "was"),
    "discovered": ("discovered", "discoverer", "discovering", "was"),
    "founded": ("founded", "founder", "founding", "was"),
    "directed": ("directed", "director", "directing", "is"),
    "designed": ("designed", "designer", "designing", "was"),
    "created": ("created", "creator", "creating", "is"),
    "developed": ("developed", "developer", "developing", "was"),
    "built": ("built", "builder", "building", "was"),
    "sculpted": ("sculpted", "sculptor", "sculpting", "was"),
    "produced": ("produced", "producer", "producing", "was"),
    "published": ("published", "publisher", "publishing", "was"),
    "won": ("won", "winner", "winning", "was"),
    "sang": ("sung", "singer", "singing", "was"),
    "established": ("established", "founder", "establishing", "was"),
    "assassinated": ("assassinated", "assassin", "assassinating", "was"),
}
# Event nouns for "When was X <participle>?" → "When did the <noun> of X take place?".
_EVENT_NOUNS = {
    "born": "birth", "founded": "founding", "completed": "completion", "built": "construction",
    "constructed": "construction", "established": "establishment", "published": "publication",
    "released": "release", "invented": "invention", "discovered": "discovery",
    "signed": "signing", "opened": "opening", "launched": "launch", "created": "creation",
    "elected": "election", "crowned": "coronation", "formed": "formation", "die": "death",
    "died": "death", "written": "writing", "painted": "painting",
    "composed": "composition", "assassinated": "assassination", "married": "marriage",
    "marry": "marriage", "abolished": "abolition", "introduced": "introduction",
    "demolished": "demolition", "inaugurated": "inauguration",
}
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_POLITE = re.compile(
    r"^(?:(?:can|could|would) you (?:please )?tell me|do you know|please tell me|tell me|"
    r"i(?:'d| would) like to know|i want to know|i wonder|quick question:?)[\s:,]+(?=\w)",
    re.IGNORECASE)
_REQUESTS = ("Can you", "Could you", "Would you", "Are you able to", "Quick question: can you")
_IMPERATIVES = {"name", "list", "give", "tell", "state", "identify", "describe", "explain",
                "define", "say", "provide", "write", "complete", "fill"}
# Generic wrappers: valid around any question, so every form gets enough phrasings.
_WRAPPERS = ("Quick question: {q}", "I'd like to know: {q}", "Please answer: {q}", "Tell me: {q}",
             "Here is a question for you: {q}")


# ---------------------------------------------------------------------------------------------
# Small text helpers


def _clean(text: str) -> str:
    return " ".join(text.split())


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _embed(question: str) -> str:
    """A question as it reads after a prefix: lower-case its first word unless it is a name."""
    first = re.sub(r"['’]s$", "", question.split(" ", 1)[0].lower()).strip(",:")
    if first in _WH | _AUXES | _DETERMINERS | _PREPS | {"name", "tell"}:
        return question[:1].lower() + question[1:]
    return question


def _finish(text: str) -> str:
    """One clean question: single spaces, capitalised, exactly one trailing '?'."""
    text = _clean(text).rstrip(" ?.!")
    return _cap(text) + "?" if text else ""


def _contains(text: str, answer: str) -> bool:
    """Whether `answer` occurs in `text` as whole words, after normalising both."""
    gold = normalize(answer)
    return bool(gold) and f" {gold} " in f" {normalize(text)} "


def _possessive(noun_phrase: str) -> str | None:
    """'Australia' → "Australia's"; None where it would read badly (long or nested phrases)."""
    words = noun_phrase.split()
    if (not words or len(words) > 4 or noun_phrase.endswith(("'s", "’s"))
            or any(w.lower() in _PREPS for w in words)):
        return None
    return noun_phrase + ("'" if noun_phrase.endswith("s") else "'s")


def _plural(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    irregular = {"person": "people", "man": "men", "woman": "women", "child": "children"}
    if last.lower() in irregular:
        last = irregular[last.lower()]
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    elif re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}".strip()


def _is_participle(word: str) -> bool:
    if not word or not word.islower():
        return False
    if word in _IRREGULAR_PARTICIPLES:
        return True
    return (len(word) >= 5 and word.endswith("ed") and not word.endswith("eed")
            and word not in _NOT_PARTICIPLES)


def _inflect(verb: str, aux: str) -> str | None:
    """The verb as it reads without do-support: ('have', 'does') → 'has', ('write', 'did') →
    'wrote'. None where a regular rule could easily be wrong."""
    if aux == "do":
        return verb
    if aux == "does":
        special = {"have": "has", "do": "does", "go": "goes", "be": "is"}
        if verb in special:
            return special[verb]
        if re.search(r"[^aeiou]y$", verb):
            return verb[:-1] + "ies"
        if re.search(r"(s|x|z|ch|sh|o)$", verb):
            return verb + "es"
        return verb + "s"
    if verb in _IRREGULAR_PAST:
        return _IRREGULAR_PAST[verb]
    if verb in _DOUBLING:
        return verb + verb[-1] + "ed"
    if verb.endswith("e"):
        return verb + "d"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ied"
    if re.search(r"[^aeiou][aeiou][bdgmnpt]$", verb) and len(verb) <= 4:
        return None  # probably doubles (or not): better no phrasing than "stoped"
    return verb + "ed"


def _answer_kind(answer: str) -> str:
    """'date' (has a month or day), 'year' (has a 3-4 digit number) or 'other'."""
    low = answer.lower()
    if any(m in low for m in _MONTHS) or re.search(r"\b\d{1,2}(st|nd|rd|th)\b", low):
        return "date"
    return "year" if re.search(r"\b\d{3,4}\b", low) else "other"


# ---------------------------------------------------------------------------------------------
# Classification


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


# ---------------------------------------------------------------------------------------------
# Form-specific rewrites


def _who_rewrites(p: _Parse) -> list[str]:
    out: list[str] = []
    if not p.inverted:
        verb, _, obj = p.pred.partition(" ")
        entry = _AGENTS.get(verb.lower()) if not p.aux else None
        if entry and obj:
            part, agent, gerund, tense = entry
            out += [f"Who {tense} the {agent} of {obj}?", f"Who was {obj} {part} by?",
                    f"By whom was {obj} {part}?", f"{_cap(obj)} was {part} by whom?",
                    f"Who is credited with {gerund} {obj}?"]
        out.append(f"Which person's {p.noun} {p.body()}?" if p.head == "whose"
                   else f"Which person {p.body()}?")
        return out
    if p.head == "whose":
        return out
    if p.aux in _COPULAS and not p.pred and p.subj.lower().startswith("the "):
        of = re.match(r"(?i)the (.+?) of (.+)$", p.subj)
        poss = _possessive(of[2]) if of else None
        if of and poss:
            out.append(f"Who {p.aux} {poss} {of[1]}?")
        out += [f"Which person {p.aux} {p.subj}?", f"What {p.aux} the name of {p.subj}?"]
    elif p.aux not in _COPULAS or p.pred:  # "Who did X marry?", "Who was X written by?"
        out.append(f"Which person {p.body()}?")
    return out


def _what_rewrites(p: _Parse) -> list[str]:
    out: list[str] = []
    if p.noun:
        out.append(p.direct(f"which {p.noun}"))
    if not (p.inverted and p.aux in _COPULAS and not p.pred):
        return out
    of = re.match(r"(?i)the (.+?) of (.+)$", p.subj)
    owned = re.match(r"(.+?)['’]s (.+)$", p.subj)
    if of:
        thing, owner = of[1], of[2]
        poss = _possessive(owner)
        if poss:
            out.append(f"What {p.aux} {poss} {thing}?")
        out.append(f"For {owner}, what {p.aux} the {thing}?")
        if len(thing.split()) == 1:
            out.append(f"What {thing} {'does' if p.aux == 'is' else 'did'} {owner} have?")
        if p.aux == "is":
            out.append(f"What's the {thing} of {owner}?")
    elif owned:
        owner, thing = owned[1], owned[2]
        out += [f"What {p.aux} the {thing} of {owner}?", f"For {owner}, what {p.aux} the {thing}?"]
    return out


def _where_rewrites(p: _Parse) -> list[str]:
    if not p.inverted:
        return []
    subj, aux, pred = p.subj, p.aux, p.pred.lower()
    poss = _possessive(subj)
    out: list[str] = []
    if aux in _COPULAS and pred == "born":
        if poss:
            out += [f"What is {poss} birthplace?", f"What was {poss} place of birth?"]
        out += [f"What is the birthplace of {subj}?", f"Where is {subj} from originally?",
                f"In what place was {subj} born?"]
    elif aux in _DOS and p.verb == "die" and not p.tail:
        if poss:
            out.append(f"What was {poss} place of death?")
        out += [f"Where did {subj} pass away?", f"In what place did {subj} die?"]
    elif aux in _COPULAS and pred in ("", "located", "situated"):
        other = "situated" if pred == "located" else "located"
        out += [f"What is the location of {subj}?", f"Where can {subj} be found?",
                f"Where {aux} {subj} {other}?", f"In what place {aux} {subj} {p.pred}?"]
    elif aux in _COPULAS and pred == "from":
        come = "does" if aux in ("is", "are") else "did"
        out += [f"Where {come} {subj} come from?", f"{subj} {aux} from which place?"]
        if poss:
            out.append(f"What is {poss} place of origin?")
    elif pred.split()[-1:] and pred.split()[-1] in _PREPS:
        return out  # "Where was X sent to?": a rewrite would need the preposition moved
    else:
        out += [f"In what place {p.body()}?", f"At what location {p.body()}?"]
    return out


def _when_rewrites(p: _Parse, answer: str) -> list[str]:
    if not p.inverted:
        return []
    kind = _answer_kind(answer)
    phrases = {"year": ["in which year", "in what year", "what year"],
               "date": ["on which date", "on what date", "what date"],
               "other": ["at what time", "at what point in time"]}[kind]
    mine = normalize(p.phrase())
    out = [p.direct(ph) for ph in ["when", *phrases] if normalize(ph) != mine]
    subj, pred = p.subj, p.pred.lower()
    event = _EVENT_NOUNS.get(p.verb if p.aux in _DOS and not p.tail else pred)
    if event == "birth" and _possessive(subj):
        unit = "date" if kind == "date" else "year"
        out.insert(0, f"What is {_possessive(subj)} {unit} of birth?")
    elif event:
        of_subj = f"the {event} of {subj}"
        if kind in ("year", "date"):
            out.insert(0, f"What was the {kind} of {of_subj}?")
        out.insert(1, f"When did {of_subj} take place?")
    return out


def _which_rewrites(p: _Parse) -> list[str]:
    if not p.noun:
        return []
    swap = "what" if p.head == "which" else "which"
    out = [p.direct(_clean(f"{p.lead.lower()} {swap} {p.noun}"))]
    if not p.inverted:
        rest = p.body()
        out += [f"What is the name of the {p.noun} that {rest}?",
                f"Can you name the {p.noun} that {rest}?"]
        if len(p.noun.split()) <= 2 and not p.noun[:1].isupper():
            out.append(f"Which of the {_plural(p.noun)} {rest}?")
        return out
    clause = p.clause()
    if clause:
        link = f"{p.lead.lower()} which" if p.lead else "that"
        out += [f"What is the name of the {p.noun} {link} {clause}?",
                f"Can you name the {p.noun} {link} {clause}?"]
    return out


def _how_many_rewrites(p: _Parse, question: str) -> list[str]:
    if not p.noun:
        return []
    what = "what number of" if p.head == "how many" else "what amount of"
    out = [p.direct(f"{what} {p.noun}")]
    if not p.inverted:
        out.append(f"What is the number of {p.noun} that {p.body()}?")
    elif p.subj.lower() == "there":
        if p.pred:
            out.append(f"What is the number of {p.noun} {p.pred}?")
    elif p.clause():
        out.append(f"What is the number of {p.noun} that {p.clause()}?")
    if not question.rstrip(" ?").lower().endswith("total"):
        out.append(f"{question.rstrip(' ?')} in total?")
    return out


def _specific(p: _Parse, form: str, question: str, answer: str) -> list[str]:
    if form == "who":
        return _who_rewrites(p)
    if form == "what":
        return _what_rewrites(p)
    if form == "where":
        return _where_rewrites(p)
    if form == "when":
        return _when_rewrites(p, answer)
    if form == "which":
        return _which_rewrites(p)
    if form == "how_many":
        return _how_many_rewrites(p, question)
    return []


def template_paraphrases(question: str, answer: str, subject: str = "", n: int = 8) -> list[str]:
    """Up to `n` rule-based rephrasings of `question`: never the question itself, never one
    that gives the answer away, each ending with '?'."""
    question = _clean(question)
    if not question or n <= 0:
        return []
    form = question_form(question)
    p = _parse(question, subject) if not _POLITE.match(question) else None
    candidates: list[str] = []
    if p is not None:
        candidates += _specific(p, form, question, answer)
        indirect = p.indirect()
        if indirect:
            candidates += [f"Can you tell me {indirect}?", f"Do you know {indirect}?"]
        echo = p.echo()
        if echo:
            candidates.append(echo)
    if form == "other" and _lower_words(question)[:1] and _lower_words(question)[0] in _IMPERATIVES:
        # "Name the largest ocean." reads as a request: ask it politely instead of wrapping it.
        request = question.rstrip(" ?.!")
        request = request[:1].lower() + request[1:]
        candidates += [f"{lead} {request}?" for lead in _REQUESTS]
    else:
        embedded = _embed(question.rstrip(" ?.!") + "?")
        candidates += [w.format(q=embedded) for w in _WRAPPERS]
    finished = [_finish(c) for c in candidates]
    kept = [c for c in finished if c and not _contains(c, answer)]
    return dedupe(kept, exclude=[question])[:n]


def _imperatives(p: _Parse, form: str) -> list[str]:
    out: list[str] = []
    if form == "who" and not p.inverted and p.head != "whose":
        out.append(f"Name the person who {p.body()}.")
    elif form in ("what", "which") and not p.inverted and p.noun:
        out.append(f"Name the {p.noun} that {p.body()}.")
    elif (form in ("what", "who") and p.inverted and p.aux in _COPULAS and not p.pred
          and p.subj.lower().startswith("the ")):
        out.append(f"Name {p.subj[:1].lower()}{p.subj[1:]}.")  # "Name the capital of X."
    indirect = p.indirect()
    if indirect:
        out.append(f"Tell me {indirect}.")
    return out


def _stem(p: _Parse) -> tuple[str, str] | None:
    """(what the answer is said of, the wh-phrase to leave in place) for a question whose
    wh-phrase is the subject of a copula: 'The capital of X' and 'which city' of "Which city
    is the capital of X?"; 'The currency used in X' and 'what' of "What currency is used in
    X?"."""
    if p.inverted or p.aux not in _COPULAS or not p.pred:
        return None
    first = p.pred.split(" ", 1)[0]
    if (first.lower() in _DETERMINERS or first[:1].isupper()) and len(p.pred.split()) >= 3:
        return _cap(p.pred), p.phrase()  # not "The largest is which planet?"
    if p.noun and (_is_participle(first) or first.endswith("ed")):
        return f"The {p.noun} {p.pred}", "what"
    return None


def _inverted(p: _Parse) -> list[str]:
    if p.inverted:
        echo = p.echo()
        return [f"{echo}?"] if echo else []
    verb, _, obj = p.pred.partition(" ")
    entry = _AGENTS.get(verb.lower()) if p.head == "who" and not p.aux else None
    if entry and obj:
        return [f"{_cap(obj)} was {entry[0]} by whom?"]  # "X was founded by whom?"
    stem = _stem(p)
    return [f"{stem[0]} {p.aux} {stem[1]}?"] if stem else []  # "The capital of X is which city?"


def _named_completions(p: _Parse, form: str, answer: str) -> list[str]:
    """Sentences naming what is asked for, to be finished with the answer: "The person who
    founded X is". Unlike a statement cut short, none is the start of a trained statement."""
    clause = p.clause()
    if form == "who" and not p.inverted and p.head != "whose":
        return [f"The person who {p.body()} is"]
    if form in ("what", "which") and p.noun:
        if not p.inverted:
            return [f"The {p.noun} that {p.body()} is"]
        return [f"The {p.noun} {clause} is"] if clause else []  # "The currency X uses is"
    role = p.subj.lower().startswith("the ") or re.search(r"['’]s? \w+$", p.subj)
    if form in ("what", "who") and p.inverted and p.aux in _COPULAS and not p.pred and role:
        # "the capital of X", "X's capital": a role to name, not a name ("Who was Ada?")
        subj = p.subj[:1].lower() + p.subj[1:] if p.subj.lower().startswith("the ") else p.subj
        return [f"The name of {subj} is"]
    if form == "where" and clause:
        return [f"The place where {clause} is"]
    if form == "when" and clause:
        unit = {"year": "year", "date": "date"}.get(_answer_kind(answer), "time")
        return [f"The {unit} when {clause} is"]
    if form == "how_many" and clause and p.noun:
        return [f"The number of {p.noun} {clause} is"]
    return []


def _completions(question: str, answer: str, subject: str) -> list[str]:
    """Statements that end with the answer, cut before it: "X was born in London." → "X was
    born in". The generic "The answer to … is" is skipped: it repeats the trained question."""
    out = []
    for sentence in statements(question, answer, subject, n=5):
        body = sentence.rstrip(".")
        if body.startswith("The answer to the question") or not body.endswith(answer):
            continue
        stem = body[: -len(answer)].rstrip(" ,")
        if len(stem.split()) >= 2:
            out.append(stem)
    return out


def form_variants(question: str, answer: str, subject: str = "", per_form: int = 2) -> list[str]:
    """Up to `per_form` phrasings of `question` in each form other than a plain question:
    imperative, inverted, completion. Never one that gives the answer away; nothing where
    the parse is unsure."""
    question = _clean(question)
    if not question or per_form <= 0 or _POLITE.match(question):
        return []
    p = _parse(question, subject)
    groups = [_completions(question, _clean(answer).rstrip("."), subject)]
    if p is not None:
        stem = _stem(p)
        if stem:
            groups[0].append(f"{stem[0]} {p.aux}")  # "The capital of X is"
        form = question_form(question)
        groups[0][:0] = _named_completions(p, form, answer)
        groups = [_imperatives(p, form), _inverted(p), *groups]
    out: list[str] = []
    for group in groups:
        kept = [_clean(t) for t in group if t and not _contains(t, answer)]
        out += dedupe(kept, exclude=[question, *out])[:per_form]
    return out


# ---------------------------------------------------------------------------------------------
# Statements


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


# ---------------------------------------------------------------------------------------------
# Model paraphrases

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


def dedupe(phrasings: Iterable[str], *, exclude: Iterable[str] = ()) -> list[str]:
    """Phrasings in order, dropping any whose normalised form was seen earlier or is excluded
    (and empty ones)."""
    seen = {normalize(e) for e in exclude}
    out: list[str] = []
    for text in phrasings:
        key = normalize(text)
        if key and key not in seen:
            seen.add(key)
            out.append(text)
    return out
