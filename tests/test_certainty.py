"""How sure the base model is of an answer: the smallest gap, at the answer's tokens up to
where it is complete, between its token's log-probability and the best other one's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.core.config import ModelConfig
from workbench.core.knowledge.certainty import answer_margins, smallest_gap
from workbench.core.models import load_model


def test_the_gap_is_the_smallest_over_the_answers_tokens() -> None:
    logp = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.1, 0.5]]))
    # Token 0 then 2: log(0.7/0.2) then log(0.5/0.4), the second the smaller.
    assert smallest_gap(logp, [0, 2]) == pytest.approx(float(torch.log(torch.tensor(0.5 / 0.4))))
    # An answer token that is not the model's first choice has a negative gap.
    assert smallest_gap(logp, [1]) == pytest.approx(float(torch.log(torch.tensor(0.2 / 0.7))))


def test_answer_margins_on_a_model(tiny_llama: Path) -> None:
    loaded = load_model(ModelConfig(name_or_path=str(tiny_llama), device="cpu"))
    loaded.model.train()
    question, answer = "Where was Ada born?", "in the old town of Tarvel by the sea"
    whole, early, empty = answer_margins(loaded, [
        (question, answer, "not in the answer", ()),  # never correct: every token counts
        (question, answer, "old town", ()),  # correct from "old town" on: fewer tokens count
        (question, "", "Tarvel", ()),
    ])
    assert torch.isfinite(torch.tensor([whole, early])).all()
    assert early >= whole  # the smallest over a prefix of the same tokens
    assert empty == 0.0
    assert loaded.model.training  # its mode is put back
    assert answer_margins(loaded, []) == []
    # Asked together (right-padded, in batches) as each would be alone.
    rows = [(question, answer[:n], "Tarvel", ()) for n in (3, 9, 20, 36)] * 5
    together = answer_margins(loaded, rows)
    assert together == pytest.approx([answer_margins(loaded, [r])[0] for r in rows], abs=1e-4)
    # The same answer after a system prompt is another context: another margin.
    (with_system,) = answer_margins(loaded, [(question, answer, "x", ())], system="Be brief.")
    assert with_system != whole
