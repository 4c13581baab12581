"""What a set still needs before it can be trained and scored, as a checklist with counts:
shown after an import (CLI) and above the facts (Knowledge tab). A fresh import has facts
but no held-out probes and no locality probes; a run on it would train, but its scorecard
could say nothing about generalization or forgetting, and nothing told the user so."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from workbench.core.knowledge import probes, sets
from workbench.core.store import Store


@dataclass(frozen=True)
class Step:
    title: str  # "Generate phrasings and hold-out"
    done: bool
    counts: str  # "0 training phrasings, 0 held-out probes"
    ui: str  # where to do it in the app
    cli: str  # the command that does it


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def next_steps(store: Store, name: str) -> list[Step]:
    """The set's preparation steps in order, each done or not, with what it has now."""
    sid = sets.set_id(store, name)
    return steps_for(name, len(sets.list_facts(store, sid)), probes.split_counts(store, sid))


def steps_for(name: str, n_facts: int, counts: dict[str, int]) -> list[Step]:
    """The steps from counts a caller already has (`probes.split_counts`)."""
    quoted = shlex.quote(name)
    return [
        Step("Add facts", n_facts > 0, _count(n_facts, "fact"),
             "add a fact or upload a file",
             f"workbench knowledge import FILE --set {quoted}"),
        Step("Generate phrasings and hold-out", counts["probe"] > 0,
             f"{_count(counts['train'], 'training phrasing')}, "
             f"{_count(counts['probe'], 'held-out probe')}",
             "“Phrasings and held-out probes” → Generate phrasings",
             f"workbench knowledge paraphrase {quoted}"),
        Step("Build locality", counts["locality"] > 0,
             _count(counts["locality"], "locality probe"),
             "“What does the base model already know?” → Build locality probes",
             f"workbench knowledge locality {quoted} --model MODEL"),
        Step("Train", False, "", "the Method tab, then Train (or Inject for all of it)",
             f"workbench inject FILE --model MODEL, or workbench train RUN.yaml with "
             f"data.knowledge_set={quoted}"),
    ]


def next_step(steps: list[Step]) -> Step:
    """The first step not done (Train once the set is ready)."""
    return next(s for s in steps if not s.done)


def checklist_text(steps: list[Step]) -> str:
    """Plain lines for a terminal: `[x] Add facts (90 facts)`, then the next command."""
    lines = [f"[{'x' if s.done else ' '}] {s.title}" + (f" ({s.counts})" if s.counts else "")
             for s in steps]
    return "\n".join(["next steps:", *lines, f"next: {next_step(steps).cli}"])


def checklist_markdown(steps: list[Step]) -> str:
    """The Knowledge tab's checklist: ✓ for done steps, the next one in bold with where to do it."""
    following = next_step(steps)
    parts = []
    for s in steps:
        mark = "✓" if s.done else "○"
        text = f"{mark} {s.title}" + (f" ({s.counts})" if s.counts else "")
        parts.append(f"**{text} ← next: {s.ui}**" if s is following else text)
    return " → ".join(parts)
