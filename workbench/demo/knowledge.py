"""The demo knowledge set: facts about the world's reserved people, which the demo model has
never seen, with training and held-out phrasings and a locality set of known people.

`demo_set_payload` writes it (at build time, from the world and the built model);
`install_demo_set` loads it into a workspace's store, on first start and on demand.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from workbench.core.data import phrasings
from workbench.core.errors import KnowledgeError
from workbench.core.knowledge.probes import add_phrasings
from workbench.core.knowledge.sets import add_facts, create_set, delete_set, list_facts, list_sets
from workbench.core.knowledge.types import FactDraft, Phrasing
from workbench.core.paths import DEMO_SET_FILE
from workbench.core.scoring import is_exact
from workbench.core.store import Store
from workbench.demo.world import ATTRIBUTES, BIO, QUESTIONS, World, answer

DEMO_SET_NAME = "Demo: new people"
HELD_OUT = 2  # of the 4 paraphrase templates per attribute, this many are probes
STATEMENTS = 2  # biography sentences per fact trained as statements


def demo_set_payload(world: World, locality: list[dict[str, str]], *, seed: int = 0) -> dict[str, Any]:
    """The set as JSON-ready data. `locality` holds known people's questions with the demo
    model's own answers (`reference`), which a tuned model must keep."""
    rng = random.Random(seed + 2)
    facts = []
    for person in world.by_split("reserved"):
        for attr in ATTRIBUTES:
            value = person.attributes[attr]
            own, *paraphrases = [t.format(name=person.name) for t in QUESTIONS[attr]]
            held = set(rng.sample(range(len(paraphrases)), HELD_OUT))
            statements = rng.sample(BIO[attr], STATEMENTS)
            # The answer is the sentence the model is trained to say; the bare value is an
            # accepted alias, so a short correct reply counts too.
            facts.append({
                "subject": person.name, "question": own, "answer": answer(person, attr),
                "aliases": [value], "tags": [attr],
                "train": [q for i, q in enumerate(paraphrases) if i not in held],
                "probe": [q for i, q in enumerate(paraphrases) if i in held],
                "statements": [s.format(name=person.name, **{attr: value}) for s in statements],
            })
    return {
        "name": DEMO_SET_NAME,
        "description": (f"{len(facts)} facts about {len(world.by_split('reserved'))} fictional "
                        "people the demo model has never seen. Held-out phrasings measure "
                        "generalization; the locality set holds people it already knows."),
        "facts": facts,
        "locality": locality,
    }


def write_demo_set(payload: dict[str, Any], path: Path = DEMO_SET_FILE) -> Path:
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_payload(path: Path = DEMO_SET_FILE) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KnowledgeError(f"the demo knowledge set is missing ({path.name})",
                             hint="rebuild it with: workbench demo build-model") from None
    except (OSError, ValueError) as err:
        raise KnowledgeError(f"cannot read the demo knowledge set {path.name}: {err}") from None


def install_demo_set(store: Store, path: Path = DEMO_SET_FILE, *, name: str = DEMO_SET_NAME) -> int | None:
    """Create the demo set from its asset; None when a set of that name already exists.
    A failure part-way removes the half-made set."""
    if any(s.name.lower() == name.lower() for s in list_sets(store)):
        return None
    payload = load_payload(path)
    sid = create_set(store, name, payload.get("description", ""))
    try:
        _fill(store, sid, payload)
    except BaseException:
        delete_set(store, sid)
        raise
    return sid


def _fill(store: Store, sid: int, payload: dict[str, Any]) -> None:
    items = payload["facts"]
    add_facts(store, sid, [FactDraft(question=f["question"], answer=f["answer"],
                                     subject=f.get("subject", ""), aliases=f.get("aliases", []),
                                     tags=f.get("tags", []),
                                     source="demo world") for f in items], origin="demo set")
    for fact, item in zip(list_facts(store, sid), items):
        add_phrasings(store, fact, [
            *(Phrasing(question=q, origin="asset") for q in item.get("train", [])),
            *(Phrasing(question=q, split="probe", origin="asset") for q in item.get("probe", [])),
            *(Phrasing(question=s, kind="statement", origin="asset")
              for s in item.get("statements", [])),
        ])
    with store.write():
        for item in payload.get("locality", []):
            # The base model's answer, recorded at build time: what "unchanged" compares with.
            phrasings.add_with_base_answer(store, {
                "set_id": sid, "kind": "locality", "question": item["question"],
                "answer": item["answer"], "aliases": "[]", "origin": "asset"},
                item["reference"], is_exact(item["reference"], item["answer"]))


def seed_workspace(store: Store, path: Path = DEMO_SET_FILE) -> str | None:
    """On start: a workspace with no knowledge sets gets the demo set, so the Knowledge tab is
    never empty. Returns what happened, for the start-up message; a missing or broken asset
    is reported, never fatal."""
    if list_sets(store):
        return None
    try:
        sid = install_demo_set(store, path)
    except KnowledgeError as err:
        return f"demo knowledge set not installed: {err}"
    return f"added the demo knowledge set {DEMO_SET_NAME!r} (set {sid})" if sid else None
