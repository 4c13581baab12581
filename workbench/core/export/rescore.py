"""Score an exported model again, fact by fact, against the run it came from.

A conversion can lose what training put in: merging at another precision, rounding to f16,
quantizing to q8_0. Each exported artifact is loaded back the way another tool would read it
(the merged folder with plain transformers, a GGUF through transformers' GGUF loader) and asked
every probe of the run's final round (efficacy, held-out, locality), greedily, as the run was
scored. The result is each metric's share beside the run's, and the probes that changed: "q8_0
lost 1 fact: …".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.data import runs
from workbench.core.data.names import ScoreMetric
from workbench.core.errors import WorkbenchError
from workbench.core.models import LoadedModel
from workbench.core.scoring import percent
from workbench.core.store import Store
from workbench.core.train import probing

MAX_DROP = 0.02  # a conversion losing more than 2 points of any metric is flagged
METRICS = (ScoreMetric.EFFICACY, ScoreMetric.GENERALIZATION, ScoreMetric.LOCALITY)
LABELS = {ScoreMetric.EFFICACY: "efficacy", ScoreMetric.GENERALIZATION: "held-out",
          ScoreMetric.LOCALITY: "locality"}


@dataclass(frozen=True)
class Change:
    metric: str
    question: str
    gold: str
    before: str  # the run's answer
    after: str  # the artifact's answer


@dataclass
class Rescore:
    artifact: str  # "merged", "model-q8_0.gguf"
    run: dict[str, float]  # the run's own shares on the same probes
    scores: dict[str, float]
    lost: list[Change] = field(default_factory=list)  # right in the run, wrong here
    gained: list[Change] = field(default_factory=list)

    def delta(self, metric: str) -> float:
        return self.scores.get(metric, 0.0) - self.run.get(metric, 0.0)

    def cell(self, metric: str) -> str:
        """ "85% (−2.8)": the share and its change from the run in points, to a tenth (the
        shares are rounded down, so their difference alone would hide part of it)."""
        points = 100 * self.delta(metric)
        change = "±0" if abs(points) < 0.05 else f"{points:+.1f}".replace("-", "−")
        return f"{percent(self.scores[metric])} ({change})"

    @property
    def flagged(self) -> bool:
        return any(self.delta(m) < -MAX_DROP for m in self.scores)

    def line(self) -> str:
        """ "model-q8_0.gguf: efficacy 100% (±0) · held-out 97% (−2.2) · locality 97% (±0);
        lost 1: What is …" """
        parts = [f"{LABELS[m]} {self.cell(m)}" for m in METRICS if m in self.scores]
        text = f"{self.artifact}: {' · '.join(parts)}"
        if self.lost:
            text += f"; lost {len(self.lost)}: " + "; ".join(
                f"{c.question!r} now {c.after[:60]!r}" for c in self.lost[:3])
        return text + (" — more than 2 points lost" if self.flagged else "")

    def as_json(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "scores": self.scores, "run_scores": self.run,
                "flagged": self.flagged,
                "lost": [vars(c) for c in self.lost], "gained": [vars(c) for c in self.gained]}


def run_round(store: Store, run_id: int, sid: int
              ) -> tuple[list[probing.ProbeItem], dict[int, tuple[str, bool]]]:
    """The probes of the run's final round and the run's answers to them."""
    step = runs.last_probed_step(store, run_id)
    answered = runs.answers_by_probe(store, run_id, step) if step is not None else {}
    items = [i for i in probing.probe_items(store, sid, locality=True) if i.probe_id in answered]
    if not items:
        raise WorkbenchError(f"run {run_id} has no scored round to compare the export with",
                             hint="resume the run to let it finish and score")
    return items, answered


def rescore(loaded: LoadedModel, artifact: str, items: Sequence[probing.ProbeItem],
            answered: dict[int, tuple[str, bool]]) -> Rescore:
    answers = probing.ask_items(loaded, loaded.model, items)
    marks = probing.marks(items, answers)
    before = [(i.metric, probing.AnswerMark(answered[i.probe_id][1], False, None))
              for i in items]  # the run's own marks, as stored
    result = Rescore(artifact, _of_metrics(probing.shares(before)),
                     _of_metrics(probing.shares(marks)))
    for item, answer, (_, mark) in zip(items, answers, marks):
        before, was_right = answered[item.probe_id]
        if was_right != mark.correct:
            change = Change(item.metric, item.question, item.answer, before, answer)
            (result.gained if mark.correct else result.lost).append(change)
    return result


def _of_metrics(shares: dict[str, float]) -> dict[str, float]:
    return {m: v for m, v in shares.items() if m in METRICS}


def load_gguf(path: Path, device: str) -> LoadedModel:
    """A GGUF file read back as another tool would: through transformers' GGUF loader,
    dequantized in memory (not into the import cache: this copy is thrown away)."""
    from workbench.core.device import pick_device, pick_dtype
    from workbench.core.gguf_import import read_gguf
    from workbench.core.models import ModelSource, padded

    device = pick_device(device)
    dtype = pick_dtype(device, "auto")
    model, tokenizer = read_gguf(path, dtype=dtype)
    model.to(device).eval()
    return LoadedModel(model=model, tokenizer=padded(tokenizer),
                       source=ModelSource("local", str(path.parent), gguf=str(path)),
                       device=device, dtype=dtype, quantization="none",
                       chat_template_fallback=False, load_seconds=0.0, memory_delta=0)
