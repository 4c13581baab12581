"""Replay: mix questions the base model already answers into training, with the base's own
answers as targets, so the update is anchored where it should change nothing.

Same-relation neighbours come first ("What is the capital of Japan?" for a set that teaches
the capital of a new country, `knowledge/relations.py`), taking the relations in turn: an edit
spills over onto questions of its own form, so that is where an anchor protects most. Then
the model's general-knowledge list (`knowledge_pool`): the questions sharing content words
with the facts (the same surname, the same relation), then a random sample. Every question
the set already uses as a probe is left out, and so is every neighbour a locality probe asks
about in any wording, so locality is never measured on replayed questions. The base model is
asked once at the start of the run (a batched generate, seconds on a GPU); only those it
answers correctly are kept.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from workbench.core.generate import ask_questions
from workbench.core.knowledge.locality import knowledge_pool, neighbours, relations_for
from workbench.core.knowledge.relations import (Neighbour, asks_about, same_relation_neighbours,
                                                used_neighbours)
from workbench.core.knowledge.sets import list_facts
from workbench.core.knowledge.render import Example
from workbench.core.models import LoadedModel
from workbench.core.scoring import is_correct, normalize
from workbench.core.store import Store


def replay_count(n_train: int, ratio: float) -> int:
    """Examples to add so that `ratio` of the mixed data is replay."""
    return round(n_train * ratio / (1 - ratio)) if ratio > 0 else 0


def replay_examples(store: Store, sid: int, loaded: LoadedModel, n: int, *,
                    seed: int = 0, should_stop: Callable[[], bool] | None = None) -> list[Example]:
    if n <= 0:
        return []
    probes = [r[0] for r in store.db.execute("SELECT question FROM probes WHERE set_id = ?", [sid])]
    used = {normalize(q) for q in probes}
    facts = list_facts(store, sid)
    relations = relations_for(loaded)
    same = same_relation_neighbours(facts, relations)
    taken = used_neighbours(probes, same, relations)
    free = [x for x in same if (x.relation, x.subject) not in taken
            and normalize(x.questions[0]) not in used]
    related = [{"question": x.questions[0], "answer": x.answer, "aliases": list(x.aliases)}
               for x in _in_turn(free)]
    pool = [item for item in knowledge_pool(loaded) if normalize(item["question"]) not in used
            and not any(asks_about(item["question"], x, relations) for x in same
                        if (x.relation, x.subject) in taken)]
    random.Random(seed).shuffle(pool)
    near = neighbours(facts, pool, per_fact=-(-n // max(1, len(facts))))
    near_q = {item["question"] for item in near}
    pool = related + near + [item for item in pool if item["question"] not in near_q]
    # Ask more than needed: a small model answers only part of them correctly.
    candidates = pool[:min(len(pool), 3 * n)]
    # Batches of 64: on the demo model 400 questions take 1.6 s instead of 2.6 s at 16, and
    # this wait sits between pressing Train and the first step.
    answers = ask_questions(loaded, [item["question"] for item in candidates], batch_size=64,
                            should_stop=should_stop)
    known = [Example("qa", item["question"], answer) for item, answer in zip(candidates, answers)
             if answer and is_correct(answer, item["answer"], item.get("aliases", []))]
    # Too few known questions: repeat them rather than train on wrong answers.
    return [known[i % len(known)] for i in range(n)] if known else []


def _in_turn(items: list[Neighbour]) -> list[Neighbour]:
    """One neighbour of each relation in turn, so a short replay still covers them all."""
    by_relation: dict[str, list[Neighbour]] = {}
    for item in items:
        by_relation.setdefault(item.relation, []).append(item)
    queues = list(by_relation.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
