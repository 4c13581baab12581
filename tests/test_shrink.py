"""The update shrunk toward the base after training (WiSE-FT): the share chosen keeps the
facts and most of what the model knew; the adapter's B matrices are scaled exactly."""

from __future__ import annotations

import pytest

from workbench.core.train.shrink import LoraShare, choose_share


def _scripted(table: dict[float, dict[str, float]]):
    state = {"share": 1.0}
    asked: list[float] = []

    def set_share(share: float) -> None:
        state["share"] = share

    def ask() -> dict[str, float]:
        asked.append(state["share"])
        return table[state["share"]]

    return ask, set_share, state, asked


# (efficacy, held-out, locality) per share. 0.7 loses a twentieth of the facts (its
# locality not kept); 0.8 and 0.75 keep them, so the cliff lies between 0.75 and 0.7.
BEST_BEFORE_THE_CLIFF = {1.0: (1.0, 1.0, 0.85), 0.85: (1.0, 0.98, 0.88), 0.8: (0.98, 0.98, 0.90),
                         0.75: (0.98, 0.99, 0.89), 0.7: (0.95, 0.97, 0.95),
                         0.65: (0.45, 0.5, 0.93)}
# 0.8 and 0.75 tie on locality: the larger share recalls the facts with more margin.
A_TIE = {1.0: (1.0, 1.0, 0.90), 0.85: (1.0, 1.0, 0.93), 0.8: (1.0, 0.99, 0.95),
         0.75: (1.0, 0.99, 0.95), 0.7: (0.93, 0.96, 0.96)}


@pytest.mark.parametrize("table,kept", [(BEST_BEFORE_THE_CLIFF, 0.8), (A_TIE, 0.8)])
def test_keeps_the_best_locality_before_the_facts_go(table: dict[float, tuple[float, ...]],
                                                      kept: float) -> None:
    ask, set_share, state, asked = _scripted(
        {share: dict(zip(("efficacy", "generalization", "locality"), row))
         for share, row in table.items()})
    share, scores = choose_share(ask, set_share)
    assert share == kept and state["share"] == kept and scores["locality"] == table[kept][2]
    # Bisection: 0.85 and 0.65 are never asked.
    assert asked == [1.0, 0.7, 0.8, 0.75]


def test_keeps_the_whole_update_when_shrinking_does_not_help() -> None:
    table = {1.0: {"efficacy": 1.0, "generalization": 0.9, "locality": 0.95},
             0.85: {"efficacy": 0.9, "generalization": 0.9, "locality": 0.97},
             0.8: {"efficacy": 0.8, "generalization": 0.8, "locality": 0.97},
             0.7: {"efficacy": 0.6, "generalization": 0.6, "locality": 0.96}}
    ask, set_share, state, asked = _scripted(table)
    share, _ = choose_share(ask, set_share)
    assert share == 1.0 and state["share"] == 1.0 and asked == [1.0, 0.7, 0.8, 0.85]


def test_without_a_cliff_three_rounds_reach_the_smallest_share() -> None:
    table = {s: {"efficacy": 1.0, "generalization": 1.0, "locality": 0.9 + (1 - s) / 10}
             for s in (1.0, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55)}
    ask, set_share, state, asked = _scripted(table)
    share, _ = choose_share(ask, set_share)
    assert share == 0.55 and asked == [1.0, 0.7, 0.6, 0.55]


def test_lora_share_scales_only_the_b_matrices(tiny_llama) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                           LoraConfig(r=4, target_modules=["down_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    share = LoraShare(model)
    assert share.weights
    share(0.7)
    for name, p in model.named_parameters():
        expected = before[name] * 0.7 if "lora_B" in name else before[name]
        assert torch.equal(p, expected) or torch.allclose(p, expected), name
    share(1.0)  # from the originals, not compounding
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_a_run_with_the_shrink_search_completes_and_logs_its_choice(bench) -> None:
    from workbench.core.train import jobs, run as run_module

    ws, store, config = bench
    cfg = config(**{"training.epochs": 3, "training.probe_every": 3,
                    "training.shrink_update": True})
    run_id = run_module.create_run(store, ws, cfg)
    summary = run_module.execute_run(store, ws, run_id)
    assert summary.status == "completed" and summary.scores
    log = (ws.run_dir(run_id) / jobs.LOG_FILE).read_text()
    assert "update shrunk to 0.70" in log  # bisection asks the middle share first
    # The search's rounds are recorded nowhere: the curve has the live and final rounds only.
    steps = sorted({r["step"] for r in store.db.query(
        "SELECT DISTINCT step FROM probe_results WHERE run_id = ?", [run_id])})
    assert steps == [s for s in range(3, summary.steps + 1, 3)] + \
        ([summary.steps] if summary.steps % 3 else [])
