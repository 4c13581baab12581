"""A batch whose prompts share a start (the chat template's system turn) computes it once and
generates the same greedy answers as computing it in every row."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.core import generate
from workbench.core.config import ModelConfig
from workbench.core.models import load_model

SYSTEM = "You are a careful assistant who answers questions about geography in one short line."
QUESTIONS = ["What is the capital of France?", "Name the longest river in Africa, please.",
             "Which ocean is the largest?", "Where is Mount Kilimanjaro?"]


def test_the_shared_start_is_the_common_prefix_leaving_each_row_a_token() -> None:
    assert generate.shared_start([list(range(20)), list(range(12)) + [99, 98]]) == 12
    assert generate.shared_start([list(range(10)), list(range(10))]) == 9
    assert generate.shared_start([list(range(5)) + [1], list(range(5)) + [2]]) == 0  # too short
    assert generate.shared_start([list(range(20))]) == 0


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_qwen2"])
def test_answers_are_the_same_with_the_start_computed_once(fixture: str, request: pytest.FixtureRequest,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder: Path = request.getfixturevalue(fixture)
    loaded = load_model(ModelConfig(name_or_path=str(folder), device="cpu"))
    prompts = [generate.prompt_ids(loaded.tokenizer, [{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": q}])
               for q in QUESTIONS]
    assert generate.shared_start(prompts) >= generate.MIN_SHARED_START
    calls: list[int] = []
    start_cache = generate._start_cache
    monkeypatch.setattr(generate, "_start_cache",
                        lambda *a: calls.append(len(a[1])) or start_cache(*a))
    once = generate.generate_ids(loaded, prompts, max_new_tokens=8)
    assert calls == [generate.shared_start(prompts)]
    monkeypatch.setattr(generate, "MIN_SHARED_START", 10**6)
    every_row = generate.generate_ids(loaded, prompts, max_new_tokens=8)
    assert len(calls) == 1 and once == every_row and all(once)
