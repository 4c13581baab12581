"""The core's pre-flight (`estimate.preflight`): memory and time of a run config together,
with the knowledge set rendered once per set, model and rendering settings."""

from __future__ import annotations

from typing import Any

import pytest

from workbench.core.device import DeviceInfo
from workbench.core.estimate import check, preflight
from workbench.core.knowledge import sets
from workbench.core.knowledge.types import FactDraft

CPU = DeviceInfo("cpu", "test CPU", 16 * 2**30, cpu_cores=2)


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every rendering of a set the pre-flight asks for."""
    calls: list[Any] = []
    real = check.set_tokens

    def counted(store: Any, cfg: Any, tokenizer: Any) -> Any:
        calls.append(cfg.data.knowledge_set)
        return real(store, cfg, tokenizer)

    monkeypatch.setattr(check, "set_tokens", counted)
    check._set_tokens.clear()
    return calls


def test_without_a_set_memory_is_estimated_at_the_longest_allowed_length(bench) -> None:
    _, _, config = bench
    cfg = config(**{"data.knowledge_set": ""})
    checked = preflight(cfg, device=CPU)
    assert checked.memory.seq_len == cfg.data.max_seq_len
    assert checked.time is None and checked.tokens is None


def test_the_set_is_rendered_once_until_it_or_a_rendering_setting_changes(bench,
                                                                           renders) -> None:
    _, store, config = bench
    cfg = config()
    first = preflight(cfg, store, device=CPU)
    assert first.tokens is not None and first.time is not None
    assert first.memory.seq_len == first.tokens.longest < cfg.data.max_seq_len
    assert preflight(config(**{"training.epochs": 3}), store, device=CPU).tokens == first.tokens
    assert len(renders) == 1  # training settings do not change the rendered set
    preflight(config(**{"data.max_seq_len": 64}), store, device=CPU)
    assert len(renders) == 2
    sid = sets.set_id(store, "demo")
    sets.add_facts(store, sid, [FactDraft("Who painted the Mona Lisa?", "Leonardo")])
    again = preflight(cfg, store, device=CPU)
    assert len(renders) == 3 and again.tokens.examples > first.tokens.examples
