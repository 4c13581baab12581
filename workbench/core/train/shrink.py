"""After training, shrink the learned update toward the base model as far as the facts allow:
that keeps more of what the model knew without losing what it learned (WiSE-FT, Wortsman et al. 2022: weights
interpolated between the base and the fine-tuned model are more robust than either end).

For a LoRA adapter the interpolation is exact and free: W + s·BA for 0 < s ≤ 1 is the base's
W moved a share s of the way to the trained weights, and scaling B alone gives it. Shares are
judged on the facts alone (one question per fact and metric, `tracker.SEARCH_PROBES`;
unrecorded: the run's curve is not touched): a
share loses them when efficacy or held-out recall falls more than `KEEP_LEARNED` below the
unshrunk adapter's. Locality rises as the share falls, down to where the facts go (below);
judged on a sample of locality probes instead, the choice followed the sample's noise: a
192-probe sample held ~45 locality probes, a few points apart between shares, and on one
bench run it kept the whole update: 88% of known answers kept, where every probe scored 92% at
0.8 and 93% at 0.75, the facts 99% at both (`bench/shrink_curve.py --shares 0.75 0.8`).
So bisection finds the smallest share that keeps the facts, and the share one step (0.05)
above it is kept, for margin: next to the cliff an adapter's quantized export lost 2 of 16
held-out answers. Cost: 4 rounds of the facts' short answers (the unshrunk adapter and 3
shares; 180 probes on the bench set, ~12-23 s a round on two CPU cores); the final round then
asks the other fact probes and locality.
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
    """(the share kept, its scores: empty when it was not asked); the model is left at that
    share. `shares` (falling; defaults to SHARES as it is at the call, which the bench's
    variants set) are searched by bisection for the last one that keeps the facts: they are
    kept down to a cliff and lost past it, so ~log2(len(shares)) rounds find it (3 of
    SHARES' 7). The share one step above it is kept, or the whole update."""
    shares = SHARES if shares is None else shares
    asked = {1.0: ask()}
    full = asked[1.0]
    kept, lost = -1, len(shares)  # indices: shares[kept] keeps the facts, shares[lost] not
    while lost - kept > 1:
        middle = (kept + lost) // 2
        share = shares[middle]
        set_share(share)
        asked[share] = scores = ask()
        log.info("update shrunk to %.2f: %s", share,
                 ", ".join(f"{k} {percent(v)}" for k, v in scores.items()))
        if any(scores.get(m) is not None and scores[m] < full[m] - KEEP_LEARNED
               for m in (ScoreMetric.EFFICACY, ScoreMetric.GENERALIZATION)):
            lost = middle
        else:
            kept = middle
    best = shares[kept - 1] if kept > 0 else 1.0
    set_share(best)
    if best < 1.0:
        log.info("keeping %.2f of the learned update: the facts held down to %.2f%s", best,
                 shares[kept], f" and went at {shares[lost]:.2f}" if lost < len(shares) else "")
    else:  # said too, or the log ends on the last share tried as if that one were kept
        log.info("keeping the whole learned update: %s", f"the facts went at {shares[lost]:.2f}"
                 if kept < 0 else f"the facts held at {shares[kept]:.2f}, a step short of "
                                  "where they go, and the step above it is kept for margin")
    return best, asked.get(best, {})
