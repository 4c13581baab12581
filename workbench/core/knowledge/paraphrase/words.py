"""Word lists and small text helpers every phrasing maker uses."""

from __future__ import annotations

import re
from collections.abc import Iterable

from workbench.core.scoring import normalize

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
