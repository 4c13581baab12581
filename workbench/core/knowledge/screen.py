"""Pre-screen: does the base model already know a fact? (SliCK-style, Gekhman et al.)

Each question is asked once greedily and `samples` times with sampling. known: the greedy
answer is correct; maybe: only some sampled answers are; unknown: none is. Injecting a known
fact is a no-op, and training on many unknown facts at once is what raises hallucination, so
the label is shown next to every fact and can be filtered on.
"""

from __future__ import annotations

from workbench.core.generate import ask_questions
from workbench.core.knowledge.sets import list_facts, set_known
from workbench.core.models import LoadedModel
from workbench.core.scoring import is_correct
from workbench.core.store import Store
from workbench.core.progress import Progress, no_progress



def label(greedy_correct: bool, sampled_correct: int, samples: int) -> tuple[str, str]:
    detail = (f"greedy {'correct' if greedy_correct else 'wrong'}; "
              f"{sampled_correct}/{samples} sampled correct")
    if greedy_correct:
        return "known", detail
    return ("maybe" if sampled_correct else "unknown"), detail


def screen_facts(store: Store, sid: int, loaded: LoadedModel, *, samples: int = 4,
                 temperature: float = 0.7, seed: int = 0,
                 progress: Progress = no_progress) -> dict[str, int]:
    """Label every fact of a set; returns how many got each label."""
    facts = list_facts(store, sid)
    if not facts:
        return {"known": 0, "maybe": 0, "unknown": 0}
    questions = [f.question for f in facts]
    progress(0.0, "asking greedily")
    greedy = ask_questions(loaded, questions)
    sampled: list[str] = []
    if samples:
        progress(0.3, f"asking {samples} sampled answers per fact")
        sampled = ask_questions(loaded, questions * samples, do_sample=True,
                                temperature=temperature, seed=seed)
    labels: dict[int, tuple[str, str]] = {}
    counts = {"known": 0, "maybe": 0, "unknown": 0}
    for i, fact in enumerate(facts):
        ok = is_correct(greedy[i], fact.answer, fact.aliases)
        hits = sum(is_correct(sampled[k * len(facts) + i], fact.answer, fact.aliases)
                   for k in range(samples))
        labels[fact.id] = label(ok, hits, samples)
        counts[labels[fact.id][0]] += 1
    set_known(store, labels)
    progress(1.0, "done")
    return counts
