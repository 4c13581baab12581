"""After training, shrink the learned update toward the base model when that keeps more of
what the model knew without losing what it learned (WiSE-FT, Wortsman et al. 2022: weights
interpolated between the base and the fine-tuned model are more robust than either end).

For a LoRA adapter the interpolation is exact and free: W + s·BA for 0 < s ≤ 1 is the base's
W moved a share s of the way to the trained weights, and scaling B alone gives it. Candidate
shares are scored on probes (unrecorded: the run's curve is not touched; three live samples'
worth, `Tracker.ask_wide`, since the candidates differ by a few points of locality); a share
loses the facts when efficacy or held-out recall falls more than `KEEP_LEARNED` below the
unshrunk adapter's. Bisection finds the smallest share that keeps them, and of the shares
asked that keep them the one with the best locality is kept (the largest of those tied).
Cost: 4 rounds of 192 probes (the unshrunk adapter and 3 shares; the shares tried one by
one from 0.85 down took 5 on the bench run, up to 8), less the answers the tracker already
has for the same weights: seconds on a GPU, ~3 min on two CPU cores.
The saved adapter is the shrunk one, so every consumer (Compare, export, the final scoring)
sees the same weights without knowing about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from workbench.core.data.names import ScoreMetric
from workbench.core.methods.lora import lora_layers
from workbench.core.scoring import percent
from workbench.core.train.runlog import log

# Searched for where the facts go. Steps of 0.05, since where they go is a cliff: on
# SmolLM2-135M's default run (90 facts; `bench/shrink_curve.py --run default --shares …`)
# every probe scored 100/99/89% (efficacy, held-out, locality) at 1.0, 100/99/91% at 0.85,
# 100/99/93% at 0.78, 98/99/94% at 0.74, 95/97/95% at 0.7 and 72/76/93% at 0.6; the earlier
# steps of 0.15 (0.85, 0.7, 0.55), judged on 64 probes, kept the whole update.
SHARES = (0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55)
KEEP_LEARNED = 0.03  # efficacy / held-out may fall this much below the unshrunk adapter's


class LoraShare:
    """Sets the share s of a peft LoRA model's learned update (its B matrices times s)."""

    def __init__(self, model: Any) -> None:
        self.weights = [b.weight for layer in lora_layers(model) for b in layer.lora_B.values()]
        self.original = [w.detach().clone() for w in self.weights]

    def __call__(self, share: float) -> None:
        import torch

        with torch.no_grad():
            for weight, original in zip(self.weights, self.original):
                weight.copy_(original * share)


def choose_share(ask: Callable[[], dict[str, float]], set_share: Callable[[float], None],
                 shares: Sequence[float] | None = None) -> tuple[float, dict[str, float]]:
    """(the share kept, its scores); the model is left at that share. `shares` (falling;
    defaults to SHARES as it is at the call, which the bench's variants set) are searched by
    bisection for the last one that keeps the facts: they are kept down to a cliff and lost
    past it, so ~log2(len(shares)) rounds find it (3 of SHARES' 7). Of the shares asked that
    keep the facts, the unshrunk one included, the one with the best locality is kept."""
    shares = SHARES if shares is None else shares
    full = ask()
    best, best_scores = 1.0, full
    kept, lost = -1, len(shares)  # indices: shares[kept] keeps the facts, shares[lost] not
    while lost - kept > 1:
        middle = (kept + lost) // 2
        share = shares[middle]
        set_share(share)
        scores = ask()
        log.info("update shrunk to %.2f: %s", share,
                 ", ".join(f"{k} {percent(v)}" for k, v in scores.items()))
        if any(scores.get(m) is not None and scores[m] < full[m] - KEEP_LEARNED
               for m in (ScoreMetric.EFFICACY, ScoreMetric.GENERALIZATION)):
            lost = middle
            continue
        kept = middle
        # Kept shares come in falling order, so a tie keeps the larger, earlier one: it recalls
        # the facts with more margin. Ties went to the smaller one for a while; on the
        # real-model inject test it kept 0.65 next to a cliff at 0.6 (0.7 scored the same), and
        # the q8_0 export of that adapter lost 2 of 16 held-out answers.
        if scores.get(ScoreMetric.LOCALITY, 0.0) > best_scores.get(ScoreMetric.LOCALITY, 0.0):
            best, best_scores = share, scores
    set_share(best)
    if best < 1.0:
        log.info("keeping %.2f of the learned update: locality %s instead of %s, the facts kept",
                 best, percent(best_scores.get(ScoreMetric.LOCALITY)),
                 percent(full.get(ScoreMetric.LOCALITY)))
    return best, best_scores
