"""Locality probes: what the model already knows and must still know after injection.

Candidates are (a) a general-knowledge list shipped in assets/, or the model's own list when
its folder has one, and (b) neighbours: the general-knowledge questions most similar in
wording to the set's own questions (same relation, e.g. "capital of", "born in"), where an
edit is most likely to spill over. The base
model answers every candidate; only those it answers correctly are kept as locality probes,
with its answer stored as the reference that a tuned model must reproduce.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.core.errors import KnowledgeError
from workbench.core.generate import ask_questions
from workbench.core.knowledge.sets import list_facts, set_id, touch
from workbench.core.knowledge.types import Fact
from workbench.core.models import LoadedModel
from workbench.core.paths import LOCALITY_FILE, MODEL_KNOWLEDGE_FILE
from workbench.core.scoring import is_correct, is_exact
from workbench.core.store import Store, now
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
    if loaded.source.kind == "local":
        own = Path(loaded.source.location) / MODEL_KNOWLEDGE_FILE
        if own.is_file():
            return load_general_knowledge(own)
    return load_general_knowledge()


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


def build_locality(store: Store, sid: int, loaded: LoadedModel, *, general: int = 120,
                   per_fact: int = 2, seed: int = 0,
                   progress: Progress = no_progress) -> dict[str, int]:
    """Screen candidates with the base model and store the correct ones as locality probes
    (replacing earlier ones). Returns counts of asked and kept."""
    set_id(store, sid)
    pool = knowledge_pool(loaded)
    near = neighbours(list_facts(store, sid), pool, per_fact)
    near_q = {item["question"] for item in near}
    rest = [item for item in pool if item["question"] not in near_q]
    sample = random.Random(seed).sample(rest, min(general, len(rest)))
    candidates = [("neighbour", item) for item in near] + [("locality", item) for item in sample]
    progress(0.0, f"asking the base model {len(candidates)} questions")
    answers = ask_questions(loaded, [item["question"] for _, item in candidates],
                            progress=lambda f, m: progress(0.95 * f, m))
    kept = {"locality": 0, "neighbour": 0}
    with store.write() as db:
        db.execute("DELETE FROM probes WHERE set_id = ? AND kind IN ('locality', 'neighbour')", [sid])
        for (kind, item), answer in zip(candidates, answers):
            aliases = item.get("aliases", [])
            if not is_correct(answer, item["answer"], aliases):
                continue
            pid = db["probes"].insert({
                "set_id": sid, "fact_id": None, "kind": kind, "split": "probe",
                "question": item["question"], "answer": item["answer"],
                "aliases": json.dumps(aliases, ensure_ascii=False), "origin": "screening",
                "approved": 1, "created_at": now(),
            }).last_pk
            # The base model's own answer: what a tuned answer is "unchanged" from.
            db["probe_results"].insert({
                "run_id": None, "probe_id": pid, "step": None, "answer": answer, "correct": 1,
                "exact": int(is_exact(answer, item["answer"], aliases)), "created_at": now(),
            })
            kept[kind] += 1
        touch(db, sid)
    progress(1.0, "done")
    return {"asked": len(candidates), "kept_general": kept["locality"],
            "kept_neighbours": kept["neighbour"]}
