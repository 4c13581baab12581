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


# (efficacy, held-out) per share: 0.7 loses a twentieth of the facts, 0.8 and 0.75 keep them,
# so the cliff lies between 0.75 and 0.7.
CLIFF = {1.0: (1.0, 1.0), 0.85: (1.0, 0.98), 0.8: (0.98, 0.98), 0.75: (0.98, 0.99),
         0.7: (0.95, 0.97), 0.65: (0.45, 0.5)}


def _table(rows: dict[float, tuple[float, float]]) -> dict[float, dict[str, float]]:
    return {share: {"efficacy": e, "generalization": g} for share, (e, g) in rows.items()}


def test_keeps_one_step_above_where_the_facts_go() -> None:
    ask, set_share, state, asked = _scripted(_table(CLIFF))
    share, scores = choose_share(ask, set_share)
    # Bisection: 0.7 loses them, 0.8 and 0.75 keep them; 0.8 is kept, a step of margin.
    assert asked == [1.0, 0.7, 0.8, 0.75]  # 0.85 and 0.65 are never asked
    assert share == 0.8 and state["share"] == 0.8 and scores == {"efficacy": 0.98,
                                                                 "generalization": 0.98}


def test_keeps_the_whole_update_when_no_share_keeps_the_facts(caplog) -> None:
    ask, set_share, state, asked = _scripted(_table(
        {1.0: (1.0, 0.9), 0.85: (0.9, 0.9), 0.8: (0.8, 0.8), 0.7: (0.6, 0.6)}))
    with caplog.at_level("INFO", logger="workbench.train"):
        share, _ = choose_share(ask, set_share)
    assert share == 1.0 and state["share"] == 1.0 and asked == [1.0, 0.7, 0.8, 0.85]
    # The log's last word is the choice, not the last share tried.
    assert caplog.messages[-1] == "keeping the whole learned update: the facts went at 0.85"


def test_the_margin_step_need_not_have_been_asked(caplog) -> None:
    # Only 0.85 keeps the facts: its step of margin is the whole update.
    ask, set_share, state, _ = _scripted(_table(
        {1.0: (1.0, 1.0), 0.85: (0.99, 0.99), 0.8: (0.9, 0.9), 0.7: (0.5, 0.5)}))
    with caplog.at_level("INFO", logger="workbench.train"):
        assert choose_share(ask, set_share) == (1.0, {"efficacy": 1.0, "generalization": 1.0})
    assert caplog.messages[-1].startswith("keeping the whole learned update: the facts held "
                                          "at 0.85")
    # The cliff below 0.6: 0.65 is kept, which bisection did not ask.
    rows = {s: (1.0, 1.0) for s in (1.0, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)} | {0.55: (0.5, 0.5)}
    ask, set_share, state, asked = _scripted(_table(rows))
    assert choose_share(ask, set_share) == (0.65, {}) and state["share"] == 0.65
    assert asked == [1.0, 0.7, 0.6, 0.55]


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
    assert "locality" not in log.split("update shrunk to 0.70")[1].splitlines()[0]  # facts only
    # The search's rounds are recorded nowhere: the curve has the live and final rounds only.
    steps = sorted({r["step"] for r in store.db.query(
        "SELECT DISTINCT step FROM probe_results WHERE run_id = ?", [run_id])})
    assert steps == [s for s in range(3, summary.steps + 1, 3)] + \
        ([summary.steps] if summary.steps % 3 else [])
