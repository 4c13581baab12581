"""Template paraphrases of a question, and the question asked in other forms: both built
from the light parse, form by form."""

from __future__ import annotations

import re

from workbench.core.knowledge.paraphrase.parse import _Parse, _lower_words, _parse, question_form
from workbench.core.knowledge.paraphrase.declarative import statements
from workbench.core.knowledge.paraphrase.words import (_AGENTS, _COPULAS, _DETERMINERS, _DOS,
                                                       _EVENT_NOUNS, _IMPERATIVES, _POLITE, _PREPS,
                                                       _REQUESTS, _WRAPPERS, _answer_kind, _cap,
                                                       _clean, _contains, _embed, _finish,
                                                       _is_participle, _plural, _possessive, dedupe)
from workbench.core.scoring import normalize


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


