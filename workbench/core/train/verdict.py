"""A finished run's verdict: did the facts go in, and did the model keep what it knew?

"completed" says only that the steps ran. The verdict reads the final scoring (free
generation, design §4) and says it in one line, e.g. "Injected 96% · held-out 78% · kept 98%
of what it knew — good", or warns when locality fell, naming what the model now gets wrong
("now answers 'What is the capital of Japan?' with 'Senri City'") and what to try. A run that
broke the model is flagged wherever runs are listed. Where the screening measured how sure the
base was of each answer (`knowledge/certainty.py`), the answers it was sure of are named
first, and a line counts those apart from the ones it barely knew.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.core.data.names import RunStatus, ScoreMetric
from workbench.core.knowledge.certainty import SURE, UNSURE
from workbench.core.sections import RECIPE_REPLAY_RATIO
from workbench.core.scoring import percent

if TYPE_CHECKING:
    from workbench.core.store import Store

# What "good" means: the goals the recommended recipe is measured against (README).
GOOD_EFFICACY = 0.9
GOOD_LOCALITY = 0.95
BROKEN_LOCALITY = 0.7  # below this the model lost much of what it knew
WEAK_GENERALIZATION = 0.5


@dataclass(frozen=True)
class Forgotten:
    question: str
    gold: str
    answer: str  # the tuned model's answer
    # How sure the base was of its own answer (`knowledge/certainty.py`, nats); None for
    # probes screened before it was measured.
    base_margin: float | None = None

    @property
    def sure(self) -> bool:
        return self.base_margin is not None and self.base_margin >= SURE

    @property
    def barely_known(self) -> bool:
        return self.base_margin is not None and self.base_margin < UNSURE

    def said(self) -> str:
        how = (", and the base was sure of it" if self.sure else
               ", which the base barely knew" if self.barely_known else "")
        return f"now answers {self.question!r} with {self.answer!r} (was {self.gold!r}{how})"


@dataclass(frozen=True)
class Verdict:
    level: str  # good | warning | broken
    headline: str
    details: tuple[str, ...] = field(default_factory=tuple)
    advice: str = ""

    @property
    def flag(self) -> str:
        """A short mark for lists of runs."""
        return {"good": "good", "warning": "check", "broken": "broke the model"}[self.level]


@dataclass(frozen=True)
class Replay:
    """How the run replayed known answers: the advice for lost ones depends on it."""

    ratio: float
    match: str  # answers | distribution
    # Whether the method trains an adapter: matching in distribution needs one to disable
    # (full and located train the base's own weights, and their config refuses it).
    adapter: bool = True


def verdict(scores: dict[str, float], forgotten: list[Forgotten] | None = None, *,
            stopped_early: str = "", replay: Replay | None = None,
            sure: tuple[int, int] = (0, 0)) -> Verdict | None:
    """The verdict from a run's final scores (share correct per metric); None when it was
    not scored (a run stopped by hand). `replay`, where known, shapes the advice when known
    answers were lost; `sure` is (still correct, asked) over the locality probes the base was
    sure of, (0, 0) where their margins were not measured."""
    efficacy, held = scores.get(ScoreMetric.EFFICACY), scores.get(ScoreMetric.GENERALIZATION)
    kept = scores.get(ScoreMetric.LOCALITY)
    if efficacy is None:
        return None
    parts = [f"Injected {percent(efficacy)}"]
    if held is not None:
        parts.append(f"held-out {percent(held)}")
    if kept is not None:
        parts.append(f"kept {percent(kept)} of what it knew")
    details: list[str] = []
    if stopped_early:
        details.append(f"Stopped early: {stopped_early}.")
    # The answers the base was sure of first: those the run damaged, where a coin flip the
    # base barely knew may turn under any update of this size (`certainty.py`).
    lost = sorted(forgotten or [], key=lambda f: 0 if f.sure else 2 if f.barely_known else 1)
    examples = [f.said() for f in lost[:3]]
    if kept is not None and kept < BROKEN_LOCALITY:
        level, word = "broken", "it broke what the model knew"
        advice = ("Use the recommended recipe (replay 0.5 matched in distribution, a locality "
                  "floor), or lower training.learning_rate; a higher training.min_locality "
                  "stops the run sooner, keeping more of what it knew for fewer facts learned.")
    elif kept is not None and kept < GOOD_LOCALITY:
        level, word = "warning", "it forgot some of what it knew"
        advice = _forgetting_advice(replay)
    elif efficacy < GOOD_EFFICACY:
        level, word = "warning", "not every fact went in"
        advice = ("Train longer or at a higher training.learning_rate, or add phrasings per "
                  "fact (Knowledge tab); check the facts the scorecard marks wrong.")
    elif held is not None and held < WEAK_GENERALIZATION:
        level, word = "warning", "the facts were learned as worded, not as knowledge"
        advice = ("Add more varied phrasings and statements per fact; diverse wordings "
                  "generalise, repetition does not.")
    else:
        level, word, advice = "good", "good", ""
    if level != "good" and examples and kept is not None and kept < GOOD_LOCALITY:
        details.append("It " + "; ".join(examples) + ".")
        details += _how_sure(lost, sure)
    return Verdict(level, " · ".join(parts) + f" — {word}", tuple(details), advice)


def _how_sure(lost: list[Forgotten], sure_kept: tuple[int, int] = (0, 0)) -> list[str]:
    """How sure the base was of the answers lost, and what the run kept of the ones it was
    sure of, where that was measured. The second is the steadier figure on a small model: on
    SmolLM2-135M 40% of the known answers are near coin flips, and the recipe kept 94%, 90%,
    87% and 90% of all of them under four seeds but 45, 45, 43 and 45 of the 46 the base was
    sure of (bench/results/recipe.md)."""
    measured = [f for f in lost if f.base_margin is not None]
    sure, barely = sum(f.sure for f in measured), sum(f.barely_known for f in measured)
    parts = [f"{barely} the base barely knew (any update of this size turns some of those)"
             ] if barely else []
    parts += [f"{sure} it was sure of (what this run damaged)"] if sure else []
    lines = [f"Of the {len(measured)} answers lost, " + " and ".join(parts) + "."] if parts else []
    kept, asked = sure_kept
    if asked:
        lines.append(f"It kept {kept} of the {asked} answers the base was sure of "
                     f"({percent(kept / asked)}).")
    return lines


def _forgetting_advice(replay: Replay | None) -> str:
    """What to try when some known answers were lost. Where replay is already at the
    recommended share and matched in distribution, more of it is not advised: on
    SmolLM2-135M 0.7 kept 87% and 96% under two seeds, 0.5 90% and 93% (bench/recipe.py).
    An answer that must survive is better added as a fact: replay matches the base's
    distribution, which barely resists a near tie turning, so the bench's 108 locality
    probes replayed themselves were kept at 92% and 87% (two seeds), where trained as facts
    on the base's own answers 99% and 97% were (`probes-*` in bench/results/recipe.md)."""
    floor = ("a higher training.min_locality stops the run sooner, keeping more of what it "
             "knew for fewer facts learned")
    if replay is not None and replay.ratio >= RECIPE_REPLAY_RATIO and \
            replay.match == "distribution":
        return (f"Replay is on at {replay.ratio:g} of the examples, matched in distribution: "
                "more replay kept no more on average on a 135M model. Check whether the "
                "answers above matter (Compare); add one that must survive to the set as a "
                "fact (its question and right answer), which training holds as it holds the "
                f"new ones; {floor}.")
    match = ("set data.replay_match distribution" if replay is None or replay.adapter else
             "train an adapter method instead (lora), whose replay can be matched in "
             "distribution")
    return (f"Raise data.replay_ratio (the recipe's {RECIPE_REPLAY_RATIO:g}), {match}, or "
            f"{floor}; same-relation neighbours in replay protect the facts most like the new "
            "ones.")


def run_verdict(store: Store, run: dict[str, Any]) -> Verdict | None:
    """The verdict of a finished run from its stored final round; None while it trains, or
    when it ended without one."""
    from workbench.core.data import runs
    from workbench.core.train import probing

    if run.get("status") != RunStatus.COMPLETED:
        return None
    scores = runs.last_scores(store, run_id=run["id"]).get(run["id"], {})
    step = runs.last_probed_step(store, run["id"])
    if not scores or step is None:
        return None
    forgotten = [Forgotten(q, gold, answer, margin)
                 for q, gold, answer, margin in probing.wrong_locality(store, run["id"], step)]
    return verdict(scores, forgotten, stopped_early=run.get("stop_reason") or "",
                   replay=_replay(run), sure=probing.kept_of_sure(store, run["id"], step))


def _replay(run: dict[str, Any]) -> Replay | None:
    """The run's replay settings, or None where its stored config no longer parses."""
    return _replay_of(run.get("config_yaml"))


@functools.lru_cache(maxsize=64)
def _replay_of(config_yaml: str | None) -> Replay | None:
    """Parsed once per stored config: the Train and Runs tabs ask on every status poll."""
    from workbench.core.config import RunConfig
    from workbench.core.errors import WorkbenchError
    from workbench.core.methods.registry import get_method

    if config_yaml is None:
        return None
    try:
        cfg = RunConfig.from_yaml(config_yaml, source="the run's stored config")
        adapter = get_method(cfg.method.name).adapter
    except WorkbenchError:
        return None
    return Replay(cfg.data.replay_ratio, cfg.data.replay_match, adapter)
