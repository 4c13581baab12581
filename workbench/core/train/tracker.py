"""Live recall while a run trains, when it stops early, and which weights it keeps.

Every `probe_every` steps the worker asks a fixed sample of probes by free generation
(`probing.live_sample`): the facts' own questions (efficacy), held-out phrasings
(generalization) and locality probes (what the base model knew). Each round gets a combined
score, the mean of the three, and the adapter of the best round so far is kept in `best/`.

A run stops early when
- efficacy reaches `stop_at_efficacy` (trained facts are in; training on mostly raises
  hallucination, Gekhman et al. 2024),
- held-out recall has not improved for `early_stop_patience` rounds (new facts are learned
  slowly; past the plateau the model only memorises the trained wordings), or
- locality stays below `min_locality` for two rounds in a row (the model is forgetting what
  it knew; one low round is allowed, since locality dips at the start of training on new
  data and recovers under replay, the "stability gap" of continual learning).
At the end, if the best round scored better than the last one, the run's outputs are the best
round's weights (scored again in the final round), not the last ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.core.config import RunConfig
from workbench.core.data.names import SCORE_METRICS, ScoreMetric
from workbench.core.models import LoadedModel
from workbench.core.scoring import percent
from workbench.core.store import Store
from workbench.core.train import probing
from workbench.core.train.sharding import Ranks

log = logging.getLogger("workbench.train")
BEST_DIR = "best"
SCORED = SCORE_METRICS
# A best round must beat the last by this much to replace it: rounds on a 64-probe sample
# differ by a probe or two by chance.
KEEP_BEST_MARGIN = 0.02
LOW_ROUNDS = 2  # rounds in a row under the locality floor before the run stops
KEPT_ANSWERS = 8  # sets of weights whose answers are kept (`_ask`): the shrink search's shares
# The shrink search's probes: every fact once per metric (its own question, a held-out
# phrasing), up to this many in all. The bench set's 360 fact probes took 23-46 s a share on
# two CPU cores, most of it the prompts' prefill, and the search asks four sets of weights;
# one question per fact and metric judges where the facts go as well (efficacy and held-out
# fell together on every bench run) in half the time.
SEARCH_PROBES = 240


def trained_fingerprint(model: Any) -> tuple[float, ...]:
    """A sum per trained tensor: equal only for the same trained weights, in practice (any
    step, share or restored round changes them). A millisecond for a LoRA adapter."""
    import torch

    with torch.no_grad():
        return tuple(float(p.detach().sum(dtype=torch.float64)) for p in model.parameters()
                     if p.requires_grad)


def combined_score(scores: dict[str, Any]) -> float | None:
    """The mean of efficacy, generalization and locality, over those measured."""
    values = [float(scores[m]) for m in SCORED if scores.get(m) is not None]
    return sum(values) / len(values) if values else None


class Tracker:
    """Asks the probes, records answers, decides early stops and keeps the best adapter."""

    def __init__(self, store: Store, run_id: int, loaded: LoadedModel, model: Callable[[], Any],
                 out: Path, sid: int, *, adapter: bool, cfg: RunConfig,
                 should_stop: Callable[[], bool], state: dict[str, Any],
                 ranks: Ranks = Ranks()) -> None:
        # ranks: with a sharded model every rank runs each round (`sharding`); rank 0 alone
        # writes, and its scores are every rank's, so all decide alike.
        self.ranks = ranks
        self.store, self.run_id, self.loaded, self.model, self.out = store, run_id, loaded, model, out
        self.sid, self.adapter, self.cfg, self.should_stop = sid, adapter, cfg, should_stop
        self.best = float(state.get("best_score", -1.0))
        self.best_step = state.get("best_step")
        self.best_held = float(state.get("best_generalization", -1.0))
        self.flat_rounds = int(state.get("flat_rounds", 0))
        self.low_rounds = int(state.get("low_rounds", 0))
        self.last: float | None = state.get("last_score")
        self.stop_reason = ""
        items = probing.probe_items(store, sid, locality=True)
        self.live = probing.live_sample(items, cfg.training.probe_sample, seed=cfg.training.seed)
        # The shrink search asks fact probes only, one per fact and metric (`shrink`).
        facts = [item for item in items if item.metric != ScoreMetric.LOCALITY]
        per_fact = len({(item.fact_id, item.metric) for item in facts})
        self.facts = probing.live_sample(facts, min(per_fact, SEARCH_PROBES),
                                         seed=cfg.training.seed)
        # Answers per set of weights (`_ask`): after training, the closing round, the shrink
        # search's rounds and the final round ask many of the same probes of the same
        # weights, and greedy answers to them are the same; the final round's share was
        # asked one fact probe per fact and metric in the search, so only the rest is new.
        self._answers: dict[tuple[float, ...], dict[int, str]] = {}

    def probe(self, step: int, *, final: bool = False, closing: bool = False) -> dict[str, float]:
        """One round; raises `generate.Interrupted` on a Stop. Sets `stop_reason` when a live
        round says the run should stop early; a `closing` round (the last weights, after the
        last step) only competes for best."""
        items = self.live
        main = self.ranks.main
        if final:
            items = probing.probe_items(self.store, self.sid, locality=True)
            if main:  # a stop right after a live round
                probing.forget_step(self.store, self.run_id, step)
        if not items:
            return {}
        log.info("step %d: asking %d probes%s", step, len(items), " (final round)" if final else "")
        answers = self._ask(items)
        scores = self.ranks.shared(
            probing.record(self.store, self.run_id, step, items, answers) if main else None)
        log.info("step %d recall: %s", step, ", ".join(f"{k} {percent(v)}" for k, v in scores.items()))
        if final and (line := probing.form_line(probing.by_form(
                (item, probing.score(item, answer).correct) for item, answer in zip(items, answers)))):
            log.info("step %d %s", step, line)
        if not final:
            self._after_live_round(step, scores, decide=not closing)
        return scores

    def ask_facts(self) -> dict[str, float]:
        """Efficacy and held-out recall over the search's fact probes (`SEARCH_PROBES`) for the
        model as it is now, recorded nowhere (the shrink search compares weights that are not
        a step of the run)."""
        answers = self._ask(self.facts)
        return self.ranks.shared(probing.shares(probing.marks(self.facts, answers)))

    def _ask(self, items: list[probing.ProbeItem]) -> list[str]:
        """The answers of the model as it is now, asking only the probes these weights have
        not answered yet. A sharded model is always asked afresh: each rank holds other
        shards, so they could not agree on whether the weights changed; so is a model with
        nothing trained."""
        model = self.model()
        weights = () if self.ranks.lockstep else trained_fingerprint(model)
        if not weights:
            return probing.ask_items(self.loaded, model, items, should_stop=self.should_stop,
                                     ranks=self.ranks)
        known = self._answers.pop(weights, {})
        self._answers[weights] = known  # the latest last, so the oldest goes first
        while len(self._answers) > KEPT_ANSWERS:
            del self._answers[next(iter(self._answers))]
        todo = [item for item in items if item.probe_id not in known]
        if todo:
            answers = probing.ask_items(self.loaded, model, todo, should_stop=self.should_stop,
                                        ranks=self.ranks)
            known.update((item.probe_id, a) for item, a in zip(todo, answers))
        return [known[item.probe_id] for item in items]

    def _after_live_round(self, step: int, scores: dict[str, float], *, decide: bool) -> None:
        score = combined_score(scores)
        self.last = score
        if score is not None and score > self.best and self.adapter:
            self.best, self.best_step = score, step
            self.ranks.save_pretrained(self.model(), self.out / BEST_DIR)
            if self.ranks.main:
                probing.mark_best(self.store, self.run_id, step)
        locality, floor = scores.get(ScoreMetric.LOCALITY), self.cfg.training.min_locality
        if locality is not None:
            self.low_rounds = self.low_rounds + 1 if floor and locality < floor else 0
        held = scores.get(ScoreMetric.GENERALIZATION)
        if held is not None:
            if held > self.best_held:
                self.best_held, self.flat_rounds = held, 0
            else:
                self.flat_rounds += 1
        if not decide:
            return
        self.stop_reason = self._reason(scores)
        if self.stop_reason:
            log.info("stopping early at step %d: %s", step, self.stop_reason)

    def _reason(self, scores: dict[str, float]) -> str:
        t = self.cfg.training
        efficacy, locality = scores.get(ScoreMetric.EFFICACY), scores.get(ScoreMetric.LOCALITY)
        if t.stop_at_efficacy and efficacy is not None and efficacy >= t.stop_at_efficacy:
            return f"efficacy reached the target {percent(t.stop_at_efficacy)} ({percent(efficacy)})"
        if t.min_locality and locality is not None and self.low_rounds >= LOW_ROUNDS:
            return (f"locality fell to {percent(locality)}, below {percent(t.min_locality)} for "
                    f"{self.low_rounds} rounds: the model was forgetting what it knew")
        if t.early_stop_patience and self.flat_rounds >= t.early_stop_patience:
            return (f"held-out recall stopped improving (best {percent(self.best_held)}, "
                    f"{self.flat_rounds} rounds without gain)")
        return ""

    def restore_best(self, set_weights: Callable[[Path], None]) -> bool:
        """Put the best round's adapter back when it beat the last round; True if it did."""
        folder = self.out / BEST_DIR
        if not self.ranks.shared(self.adapter and self.best_step is not None and
                                 self.last is not None and self.best >= self.last + KEEP_BEST_MARGIN
                                 and folder.is_dir()):  # best/ is on rank 0's machine
            return False
        set_weights(folder)
        log.info("keeping the best round's weights (step %s, score %.2f) instead of the last "
                 "(%.2f)", self.best_step, self.best, self.last)
        return True

    def state(self, last_probe: int) -> dict[str, Any]:
        """What a checkpoint must carry for a resumed run to decide the same way."""
        return {"best_score": self.best, "best_step": self.best_step,
                "best_generalization": self.best_held, "flat_rounds": self.flat_rounds,
                "low_rounds": self.low_rounds,
                "last_score": self.last, "last_probe_step": last_probe}
