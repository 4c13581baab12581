"""The tracker asks each probe once per set of weights: after training, the closing round,
the shrink search and the final round ask many of the same probes of the same weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workbench.core.config import RunConfig
from workbench.core.train import probing
from workbench.core.train.probing import ProbeItem
from workbench.core.train.shrink import LoraShare
from workbench.core.train.tracker import Tracker
from tests.test_head_loss import model_for


def test_each_probe_is_asked_once_per_set_of_weights(tiny_llama: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    items = [ProbeItem(i, i // 2, metric, f"question {i}?", "gold", ())
             for i, metric in enumerate(["efficacy", "generalization", "locality"] * 8)]
    monkeypatch.setattr(probing, "probe_items", lambda *a, **k: items)
    asked: list[list[int]] = []

    def ask(_loaded: Any, _model: Any, todo: list[ProbeItem], **_kw: Any) -> list[str]:
        asked.append([item.probe_id for item in todo])
        return ["gold"] * len(todo)

    monkeypatch.setattr(probing, "ask_items", ask)
    model = model_for(tiny_llama, "lora", target_modules=["down_proj"], lora_r=4)
    for layer_b in (p for n, p in model.named_parameters() if "lora_B" in n):
        torch.nn.init.normal_(layer_b)  # a trained update, so a share changes the weights
    cfg = RunConfig().with_values({"training.probe_sample": 3})
    tracker = Tracker(None, 1, None, lambda: model, tmp_path, 1, adapter=True,  # type: ignore[arg-type]
                      cfg=cfg, should_stop=lambda: False, state={})
    # One probe per fact and metric here, so the search asks every fact probe.
    assert len(tracker.live) == 3 and len(tracker.facts) == 16
    assert all(item.metric != "locality" for item in tracker.facts)
    tracker.ask_facts()
    tracker.ask_facts()
    assert [len(a) for a in asked] == [16]  # the same weights: answered already
    share = LoraShare(model)
    share(0.5)
    tracker.ask_facts()
    assert [len(a) for a in asked] == [16, 16]  # other weights: asked afresh
    share(1.0)  # back to weights asked before (the shrink search's kept share)
    assert tracker._ask(items) == ["gold"] * len(items)
    assert sorted(asked[-1]) == sorted(i.probe_id for i in items if i.metric == "locality")


def test_the_shrink_search_asks_one_question_per_fact_and_metric(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.core.train import tracker as tracker_module

    # 6 facts, each with two questions of its own and two held-out phrasings.
    items = [ProbeItem(i, i // 4, "efficacy" if i % 4 < 2 else "generalization",
                       f"question {i}?", "gold", ()) for i in range(24)]
    items.append(ProbeItem(99, None, "locality", "known?", "yes", ()))
    monkeypatch.setattr(probing, "probe_items", lambda *a, **k: items)
    cfg = RunConfig()
    tracker = Tracker(None, 1, None, lambda: None, tmp_path, 1, adapter=True,  # type: ignore[arg-type]
                      cfg=cfg, should_stop=lambda: False, state={})
    assert sorted((i.fact_id, i.metric) for i in tracker.facts) == sorted(
        {(f, m) for f in range(6) for m in ("efficacy", "generalization")})
    monkeypatch.setattr(tracker_module, "SEARCH_PROBES", 4)  # a large set: capped, both metrics
    tracker = Tracker(None, 1, None, lambda: None, tmp_path, 1, adapter=True,  # type: ignore[arg-type]
                      cfg=cfg, should_stop=lambda: False, state={})
    assert sorted(i.metric for i in tracker.facts) == ["efficacy"] * 2 + ["generalization"] * 2
    assert len({i.fact_id for i in tracker.facts if i.metric == "efficacy"}) == 2
