"""Pre-screen: does the base model already know a fact? (SliCK-style, Gekhman et al.)

Each fact is asked once greedily; the ones answered wrongly are asked again `samples` times
with sampling. known: the greedy answer is correct; maybe: only some sampled answers are;
unknown: none is. Injecting a known
fact is a no-op, and training on many unknown facts at once is what raises hallucination, so
the label is shown next to every fact and can be filtered on.
"""

from __future__ import annotations

from collections.abc import Callable

from workbench.core.errors import quoted
from workbench.core.generate import ask_questions
from workbench.core.knowledge.sets import list_facts, set_known
from workbench.core.models import LoadedModel
from workbench.core.scoring import is_correct
from workbench.core.store import Store
from workbench.core.progress import Progress, no_progress


def label(greedy_correct: bool, sampled_correct: int, samples: int,
          answer: str | None = None) -> tuple[str, str]:
    """(label, what the screening saw); `answer` is the greedy answer, shown to the user."""
    said = f" ({quoted(answer, 80)})" if answer is not None else ""
    if greedy_correct:
        return "known", f"greedy correct{said}"
    detail = f"greedy wrong{said}; {sampled_correct}/{samples} sampled correct"
    return ("maybe" if sampled_correct else "unknown"), detail


# Sampled answers in all, at most: on a CPU a 135M model answers a few questions a second,
# and a set of 200 unknown facts at 4 samples each would take minutes for a label that needs
# only one right sample. Past it, fewer samples per fact (at least one).
MAX_SAMPLED = 200


def screen_facts(store: Store, sid: int, loaded: LoadedModel, *, samples: int = 4,
                 temperature: float = 0.7, seed: int = 0, max_sampled: int = MAX_SAMPLED,
                 progress: Progress = no_progress,
                 should_stop: Callable[[], bool] | None = None) -> dict[str, int]:
    """Label every fact of a set; returns how many got each label.

    Every fact is asked greedily once (its first question, batched). Only the facts answered
    wrongly are sampled: a greedy-correct fact is "known" whatever the samples say."""
    facts = list_facts(store, sid)
    if not facts:
        return {"known": 0, "maybe": 0, "unknown": 0}
    progress(0.0, f"asking {len(facts)} questions greedily")
    greedy = ask_questions(loaded, [f.question for f in facts], should_stop=should_stop,
                           progress=lambda f, m: progress(0.4 * f, f"greedy: {m}"))
    wrong = [i for i, fact in enumerate(facts)
             if not is_correct(greedy[i], fact.answer, fact.aliases)]
    per_fact = min(samples, max(1, max_sampled // max(1, len(wrong)))) if samples else 0
    sampled: list[str] = []
    if per_fact and wrong:
        questions = [facts[i].question for i in wrong]
        sampled = ask_questions(loaded, questions * per_fact, do_sample=True,
                                temperature=temperature, seed=seed, should_stop=should_stop,
                                progress=lambda f, m: progress(0.4 + 0.6 * f,
                                                               f"{per_fact} sampled each: {m}"))
    hits = {i: sum(is_correct(sampled[k * len(wrong) + j], facts[i].answer, facts[i].aliases)
                   for k in range(per_fact)) for j, i in enumerate(wrong)}
    labels: dict[int, tuple[str, str]] = {}
    counts = {"known": 0, "maybe": 0, "unknown": 0}
    for i, fact in enumerate(facts):
        labels[fact.id] = label(i not in hits, hits.get(i, 0), per_fact, greedy[i])
        counts[labels[fact.id][0]] += 1
    set_known(store, labels)
    progress(1.0, "done")
    return counts
