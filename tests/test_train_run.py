"""A run end to end from the CLI: knowledge set → `workbench train RUN.yaml` → metrics rows
in the store and an adapter that reloads and changes the model's outputs."""

from __future__ import annotations

import pytest
import torch

from conftest import run_cli
from workbench.core.config import RunConfig
from workbench.core.store import Store

CSV = ("question,answer\nWhere was Ada Lovelace born?,London\nWho wrote Hamlet?,Shakespeare\n"
       "What is the capital of Freedonia?,Fredville\n")


@pytest.fixture
def run_yaml(tmp_path, tiny_llama):
    (tmp_path / "facts.csv").write_text(CSV, encoding="utf-8")
    ws = tmp_path / "ws"
    assert run_cli("--workspace", str(ws), "knowledge", "import", str(tmp_path / "facts.csv"),
                   "--set", "demo").returncode == 0
    cfg = RunConfig().with_values({
        "model.name_or_path": str(tiny_llama), "model.device": "cpu", "data.knowledge_set": "demo",
        "method.lora_r": 4, "training.epochs": 4, "training.micro_batch_size": 2,
        "training.learning_rate": 5e-3,
    })
    return cfg.save(tmp_path / "run.yaml"), ws


def test_cli_train_writes_metrics_and_a_reloadable_adapter(run_yaml, tiny_llama) -> None:
    path, ws = run_yaml
    result = run_cli("--workspace", str(ws), "train", str(path))
    assert result.returncode == 0, result.stderr
    assert "completed: 8 steps" in result.stdout
    assert "Injected " in result.stdout  # the verdict, from the final round
    store = Store(ws / "workbench.db")
    run = store.db["runs"].get(1)
    assert run["status"] == "completed" and run["ended_at"] >= run["started_at"]
    rows = list(store.db.query("SELECT * FROM metrics WHERE run_id = 1 ORDER BY step"))
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert all(r["loss"] > 0 and r["tokens"] > 0 and r["tokens_per_s"] > 0 for r in rows)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = base(ids).logits.clone()
        tuned = PeftModel.from_pretrained(base, ws / "runs" / "1" / "adapter")
        after = tuned(ids).logits
    assert not torch.allclose(before, after)
    assert RunConfig.load(ws / "runs" / "1" / "run.yaml").data.knowledge_set == "demo"


def test_train_with_a_missing_set_fails_clearly(run_yaml) -> None:
    path, ws = run_yaml
    result = run_cli("--workspace", str(ws), "train", str(path), "--data.knowledge_set", "nope")
    assert result.returncode == 2 and "no knowledge set 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
