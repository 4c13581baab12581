"""The same run YAML under `accelerate launch` on two processes (DDP over gloo on CPU).

Documented command (README): `accelerate launch --multi_gpu --num_processes 2 -m workbench
train RUN.yaml`. (accelerate's `--cpu` flag starts a single process unless MPI is set up, so
CPU runs use the same --multi_gpu launcher with model.device cpu, which selects gloo.)

Two processes with micro-batch 2 make the same effective batch as one process with 4, and
the loss is the mean over every token of the step, so both runs must see the same losses
at every step: that only holds when the gradients really are all-reduced.
"""

from __future__ import annotations

import pytest

from conftest import REPO, accelerate_command, run_cli
from workbench.core.config import RunConfig
from workbench.core.store import Store

CSV = ("question,answer\nWhere was Ada Lovelace born?,London\nWho wrote Hamlet?,Shakespeare\n"
       "What is the capital of Freedonia?,Fredville\nWho founded Sylvania?,Queen Ilsa\n"
       "How many moons does Mars have?,two\n")


def test_accelerate_launch_two_processes_matches_one(tmp_path, tiny_llama) -> None:
    import subprocess

    (tmp_path / "facts.csv").write_text(CSV, encoding="utf-8")
    ws = tmp_path / "ws"
    assert run_cli("--workspace", str(ws), "knowledge", "import", str(tmp_path / "facts.csv"),
                   "--set", "demo").returncode == 0
    values = {"model.name_or_path": str(tiny_llama), "model.device": "cpu",
              "data.knowledge_set": "demo", "method.lora_r": 4, "training.epochs": 3,
              "training.learning_rate": 1e-2, "training.probe_every": 0}
    two = RunConfig().with_values({**values, "training.micro_batch_size": 2}).save(tmp_path / "two.yaml")
    one = RunConfig().with_values({**values, "training.micro_batch_size": 4}).save(tmp_path / "one.yaml")
    launched = subprocess.run(accelerate_command("--workspace", str(ws), "train", str(two)),
                              capture_output=True, text=True, timeout=300, cwd=REPO)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert run_cli("--workspace", str(ws), "train", str(one)).returncode == 0
    store = Store(ws / "workbench.db")
    assert [r["status"] for r in store.db.query("SELECT status FROM runs ORDER BY id")] == \
        ["completed", "completed"]  # one run row, not one per process
    log = (ws / "runs" / "1" / "train.log").read_text()
    assert "2 process(es)" in log
    ddp, single = ([r for r in store.db.query(
        "SELECT step, loss, examples FROM metrics WHERE run_id = ? ORDER BY step", [run])]
        for run in (1, 2))
    assert [r["step"] for r in ddp] == [r["step"] for r in single] == [1, 2, 3, 4, 5, 6]
    assert [r["examples"] for r in ddp] == [r["examples"] for r in single]
    assert [r["loss"] for r in ddp] == pytest.approx([r["loss"] for r in single], rel=1e-4)
    assert (ws / "runs" / "1" / "adapter" / "adapter_model.safetensors").exists()
