"""Locality probes: what the model already knows and must still know after injection.

Candidates are, first, same-relation neighbours (`relations.py`): the set's own questions
asked about real entities ("What is the capital of Freedonia?" → "What is the capital of
Japan?"), where an edit is most likely to spill over; then the general-knowledge questions
most similar in wording to the set's (a shipped list, or the model's own list when its folder
has one); then a random sample of that list. The base model answers every candidate; only
those it answers correctly are kept as locality probes, with its answer stored beside them so
the scorecard can tell a tuned answer that is still correct from one that is also unchanged,
and how sure of it the base was (`certainty.py`), so the verdict can tell a lost answer the
base was sure of from a coin flip.

Of the same-relation neighbours the base knows, every other one is left out of locality for
replay (`replay.py`) to train on: training then anchors the relation too, and locality is
never measured on a replayed question.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.data import phrasings
from workbench.core.errors import KnowledgeError
from workbench.core.knowledge.base_answers import ask_base
from workbench.core.knowledge.certainty import answer_margins
from workbench.core.generate import ask_questions
from workbench.core.knowledge.relations import (Neighbour, Relation, asks_about, load_relations,
                                                same_relation_neighbours)
from workbench.core.knowledge.sets import list_facts, set_id, touch
from workbench.core.knowledge.types import Fact
from workbench.core.models import LoadedModel
from workbench.core.paths import LOCALITY_FILE, MODEL_KNOWLEDGE_FILE, REPLAY_FILE
from workbench.core.scoring import is_correct, is_exact
from workbench.core.store import Store
from workbench.core.progress import Progress, no_progress

_STOP = set("a an the of in on at to for by is was were are be what who where when which how "
            "many much does do did has have had its it this that with from and or as".split())


def load_general_knowledge(path: Path = LOCALITY_FILE) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise KnowledgeError(f"cannot read the locality list {path}: {err.strerror or err}") from None
    return [json.loads(line) for line in lines if line.strip()]


def knowledge_pool(loaded: LoadedModel) -> list[dict[str, Any]]:
    """The general-knowledge questions for this model: its own list when its folder ships one
    (the demo model knows only its synthetic world), else the shipped list."""
    if _ships_own_knowledge(loaded):
        return load_general_knowledge(Path(loaded.source.location) / MODEL_KNOWLEDGE_FILE)
    return load_general_knowledge()


def replay_pool(loaded: LoadedModel) -> list[dict[str, Any]]:
    """The general questions replay may draw on: the model's own list when its folder ships
    one, else the shipped list and the replay-only list (`REPLAY_FILE`), which locality never
    asks, so replay's general anchors are many without taking questions from the probes."""
    if _ships_own_knowledge(loaded):
        return knowledge_pool(loaded)
    return load_general_knowledge() + load_general_knowledge(REPLAY_FILE)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 2}


def neighbours(facts: Sequence[Fact], pool: Sequence[dict[str, Any]],
               per_fact: int = 2) -> list[dict[str, Any]]:
    """For each fact, the pool questions sharing the most content words with it."""
    chosen: dict[str, dict[str, Any]] = {}
    for fact in facts:
        mine = _words(fact.question)
        scored = sorted(((len(mine & _words(item["question"])) / (len(mine | _words(item["question"])) or 1),
                          item["question"], item) for item in pool), key=lambda t: (-t[0], t[1]))
        for score, question, item in scored[:per_fact]:
            if score > 0:
                chosen.setdefault(question, item)
    return list(chosen.values())


LEFT_FOR_REPLAY = 2  # of the same-relation neighbours the base knows, every other one is replay's
MIN_ROUND = 8  # neighbours asked at least per relation and round, while it needs more


@dataclass(frozen=True)
class LocalityCounts:
    asked: int
    kept_general: int
    kept_neighbours: int  # same-relation and similar-wording neighbours
    by_relation: dict[str, int] = field(default_factory=dict)  # same-relation ones per relation
    fragile: int = 0  # answered right with no system prompt only: left out, not reliably known

    def message(self) -> str:
        same = sum(self.by_relation.values())
        parts = []
        if same:
            relations = ", ".join(f"{name.replace('_', ' ')} {n}"
                                  for name, n in self.by_relation.items())
            count = len(self.by_relation)
            parts.append(f"{same} neighbours for {count} relation{'' if count == 1 else 's'} "
                         f"({relations})")
        if self.kept_neighbours - same or not same:
            parts.append(f"{self.kept_neighbours - same} similar-wording neighbours")
        parts.append(f"{self.kept_general} general questions")
        left_out = (f" Left out {self.fragile} it answered right only without a system prompt "
                    "(not reliably known)." if self.fragile else "")
        return (f"Asked the base model {self.asked} questions; kept those it answers correctly: "
                f"{', '.join(parts[:-1])} and {parts[-1]}.{left_out}")


def _ships_own_knowledge(loaded: LoadedModel) -> bool:
    own = Path(loaded.source.location) / MODEL_KNOWLEDGE_FILE
    return loaded.source.kind == "local" and own.is_file()


def relations_for(loaded: LoadedModel) -> list[Relation]:
    """The shipped relations with real entities, or none for a model whose folder ships its
    own knowledge list (the demo model knows only its synthetic world, not Japan)."""
    return [] if _ships_own_knowledge(loaded) else load_relations()


# What "the model knows" means for locality: right under each of these system prompts as well
# as with none (SliCK's HighlyKnown, Gekhman et al. 2024: consistently right across prompts).
# On SmolLM2-135M the bench set's preparation leaves out 18 of 126 answers right with no system
# prompt as wrong under one of these: counting them would measure prompt sensitivity, not
# forgetting. It is no cure: on the set rebuilt this way the default still loses 3 of 48
# same-relation neighbours under one seed and 8 under another (bench/results/recipe.md).
ROBUST_SYSTEMS = ("You are a helpful assistant.", "Answer the question briefly and correctly.")


def _consistently_right(loaded: LoadedModel, items: Sequence[dict[str, Any]],
                        progress: Progress) -> list[bool]:
    ok = [True] * len(items)
    for k, system in enumerate(ROBUST_SYSTEMS):
        progress(k / len(ROBUST_SYSTEMS), f"asking {len(items)} again under another prompt")
        answers = ask_questions(loaded, [item["question"] for item in items], system=system)
        ok = [was and is_correct(answer, item["answer"], item.get("aliases", []))
              for was, answer, item in zip(ok, answers, items)]
    return ok


def _known_neighbours(store: Store, loaded: LoadedModel, same: Sequence[Neighbour],
                      per_relation: int, progress: Progress) -> tuple[dict[int, tuple[str, str]], int]:
    """Ask the neighbours in rounds, each relation only until it has enough known ones for
    `per_relation` probes after replay's share: a relation the model knows well stops early,
    one it knows poorly goes on down its list. A neighbour answered wrongly in the set's
    wording is asked once more in the canonical one. Returns ({neighbour index: (question it
    was answered in, base answer)}, questions asked)."""
    want = -(-per_relation * LEFT_FOR_REPLAY // (LEFT_FOR_REPLAY - 1))
    order: dict[str, list[int]] = {}
    for i, n in enumerate(same):
        order.setdefault(n.relation, []).append(i)
    known: dict[int, tuple[str, str]] = {}
    tried: set[int] = set()
    asked = 0
    while True:
        batch = []
        for indices in order.values():
            have = sum(i in known for i in indices)
            left = [i for i in indices if i not in tried]
            # At least a few more, so a relation the model hardly knows is not asked one by one.
            batch += left[:max(want - have, MIN_ROUND)] if have < want else []
        if not batch:
            return known, asked
        progress(len(tried) / max(1, len(same)), f"asking the base model {len(batch)} neighbours")
        tried.update(batch)
        retry = []
        for i, answer in zip(batch, ask_base(store, loaded, [same[i].questions[0] for i in batch],
                                                ask_questions)):
            if is_correct(answer, same[i].answer, same[i].aliases):
                known[i] = (same[i].questions[0], answer)
            elif len(same[i].questions) > 1:
                retry.append(i)
        again = (ask_base(store, loaded, [same[i].questions[1] for i in retry], ask_questions)
                 if retry else [])
        for i, answer in zip(retry, again):
            if is_correct(answer, same[i].answer, same[i].aliases):
                known[i] = (same[i].questions[1], answer)
        asked += len(batch) + len(retry)


def _for_locality(same: Sequence[Neighbour], known: dict[int, tuple[str, str]], per_relation: int,
                  ) -> tuple[list[tuple[dict[str, Any], str]], dict[str, int]]:
    """The known neighbours (index → question it was answered in, base answer) locality
    keeps: up to `per_relation` per relation, leaving every LEFT_FOR_REPLAY-th to replay (replay repeats its few known ones to weigh each relation as the facts do).
    Returns ([(probe item, base answer)], kept per relation)."""
    kept: list[tuple[dict[str, Any], str]] = []
    by_relation: dict[str, int] = {}
    seen: dict[str, int] = {}  # per relation, known neighbours so far
    for i in sorted(known):
        n = same[i]
        seen[n.relation] = seen.get(n.relation, 0) + 1
        full = by_relation.get(n.relation, 0) >= per_relation
        if seen[n.relation] % LEFT_FOR_REPLAY == 0 or full:
            continue
        by_relation[n.relation] = by_relation.get(n.relation, 0) + 1
        question, answer = known[i]
        item = {"question": question, "answer": n.answer, "aliases": list(n.aliases),
                "relation": n.relation}
        kept.append((item, answer))
    return kept, by_relation


def build_locality(store: Store, sid: int, loaded: LoadedModel, *, general: int = 120,
                   per_fact: int = 2, per_relation: int = 25, seed: int = 0,
                   consistent: bool = True, progress: Progress = no_progress) -> LocalityCounts:
    """Screen candidates with the base model and store the correct ones as locality probes
    (replacing earlier ones): up to `per_relation` same-relation neighbours per relation of
    the set's facts, `per_fact` similar-wording neighbours per fact and `general` general
    questions. Neighbours are asked only as far down each relation's list as needed. With
    `consistent`, a probe is kept only when the base is also right under ROBUST_SYSTEMS (not
    for a model that ships its own knowledge list: the demo model knows one prompt format)."""
    set_id(store, sid)
    facts = list_facts(store, sid)
    relations = relations_for(loaded)
    same = same_relation_neighbours(facts, relations)
    pool = knowledge_pool(loaded)
    # A pool question about a same-relation entity ("What is the capital of France?") would
    # measure the same thing twice: the neighbour stands for it.
    pool = [item for item in pool
            if not any(asks_about(item["question"], n, relations) for n in same)]
    near = neighbours(facts, pool, per_fact)
    near_q = {item["question"] for item in near}
    rest = [item for item in pool if item["question"] not in near_q]
    sample = random.Random(seed).sample(rest, min(general, len(rest)))
    candidates = [("neighbour", item) for item in near] + [("locality", item) for item in sample]
    progress(0.0, f"asking the base model {len(candidates)} general questions")
    answers = ask_base(store, loaded, [item["question"] for _, item in candidates], ask_questions,
                       progress=lambda f, m: progress(0.5 * f, m)) if candidates else []
    rows = [(kind, item, answer) for (kind, item), answer in zip(candidates, answers)
            if is_correct(answer, item["answer"], item.get("aliases", []))]
    known, asked = _known_neighbours(store, loaded, same, per_relation,
                                     lambda f, m: progress(0.5 + 0.45 * f, m))
    kept_same, by_relation = _for_locality(same, known, per_relation)
    rows = [("neighbour", item, answer) for item, answer in kept_same] + rows
    asked += len(candidates)
    fragile = 0
    if consistent and rows and not _ships_own_knowledge(loaded):
        steady = _consistently_right(loaded, [item for _, item, _ in rows],
                                     lambda f, m: progress(0.95 + 0.03 * f, m))
        asked += len(rows) * len(ROBUST_SYSTEMS)
        fragile = len(rows) - sum(steady)
        rows = [row for row, ok in zip(rows, steady) if ok]
        by_relation = {name: sum(item.get("relation") == name for _, item, _ in rows)
                       for name in by_relation}
    if rows:
        progress(0.98, f"measuring how sure the base model is of its {len(rows)} answers")
    margins = answer_margins(loaded, [(item["question"], answer, item["answer"],
                                       item.get("aliases", [])) for _, item, answer in rows])
    with store.write():
        phrasings.delete_kinds(store, sid, ("locality", "neighbour"))
        for (kind, item, answer), margin in zip(rows, margins, strict=True):
            aliases = item.get("aliases", [])
            # With the base model's own answer: what a tuned answer is "unchanged" from; and
            # how sure of it the base was, which the verdict reads when the answer is lost.
            phrasings.add_with_base_answer(store, {
                "set_id": sid, "kind": kind, "question": item["question"],
                "answer": item["answer"], "aliases": json.dumps(aliases, ensure_ascii=False),
                "origin": "screening", "base_margin": margin}, answer,
                is_exact(answer, item["answer"], aliases))
        touch(store, sid)
    progress(1.0, "done")
    return LocalityCounts(asked, sum(kind == "locality" for kind, _, _ in rows),
                          sum(kind == "neighbour" for kind, _, _ in rows), by_relation, fragile)
