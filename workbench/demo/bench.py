"""`workbench demo bench`: inject the demo knowledge set into the demo model with the default
method, in a fresh workspace, and report what went in (efficacy), what generalises to held-out
phrasings, what else survived (locality) and the wall time from start to scored result.

The wall time counts everything a user waits for after pressing Train: loading the model,
rendering the data, asking the replay questions, training, the live probes and the final
scoring by free generation.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from workbench.core.config import DataConfig, MethodConfig, ModelConfig, RunConfig, TrainingConfig
from workbench.core.paths import DEMO_MODEL, DEMO_SET_FILE
from workbench.core.store import Store
from workbench.core.workspace import resolve_workspace
from workbench.demo.build import machine_summary
from workbench.demo.knowledge import DEMO_SET_NAME, install_demo_set


def demo_run_config(device: str = "auto", **training: Any) -> RunConfig:
    """The default injection of the demo set.

    LoRA on the MLP projections only: MLPs are where a transformer stores facts, and leaving
    attention alone changes less of what the model already knows (the LocFT-BF finding that
    one well-chosen module edits well). Half of the examples replay questions about known
    people, neighbours of the new ones first (same first name or surname), with the model's
    own answers as targets: that is what keeps locality high. A high learning rate reaches
    full recall on a CPU in well under a minute, and the run stops as soon as every fact is
    recalled: training on past that only raises the risk of made-up answers (Gekhman et al.).
    """
    return RunConfig(
        name="demo injection",
        model=ModelConfig(name_or_path=DEMO_MODEL, device=device),
        data=DataConfig(knowledge_set=DEMO_SET_NAME, replay_ratio=0.5, max_seq_len=128),
        method=MethodConfig(name="lora", lora_r=16, lora_alpha=32.0,
                            target_modules=["gate_proj", "up_proj", "down_proj"]),
        training=TrainingConfig(**{"learning_rate": 3e-3, "epochs": 5, "micro_batch_size": 16,
                                   "probe_every": 35, "checkpoint_every": 0,
                                   "stop_at_efficacy": 1.0, **training}),
    )


@dataclass
class BenchResult:
    scores: dict[str, float]
    steps: int
    wall_seconds: float
    machine: str
    threads: int
    date: str
    config: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_bench(cfg: RunConfig | None = None, *, set_file: Path = DEMO_SET_FILE,
              workspace_dir: Path | None = None) -> BenchResult:
    import torch

    from workbench.core.train.run import create_run, execute_run

    cfg = cfg or demo_run_config("cpu")  # the figure the issue asks for: a plain CPU
    with tempfile.TemporaryDirectory(prefix="workbench-demo-bench-") as tmp:
        workspace = resolve_workspace(workspace_dir or tmp)
        store = Store(workspace.db_path)
        install_demo_set(store, set_file)
        run_id = create_run(store, workspace, cfg)
        started = time.perf_counter()
        summary = execute_run(store, workspace, run_id)
        wall = time.perf_counter() - started
    return BenchResult(scores=summary.scores, steps=summary.steps, wall_seconds=wall,
                       machine=machine_summary(cfg.model.device), threads=torch.get_num_threads(),
                       date=date.today().isoformat(), config=cfg.to_yaml())


def report(result: BenchResult) -> str:
    s = result.scores
    return (
        f"# Demo injection benchmark ({result.date})\n\n"
        f"Machine: {result.machine}, {result.threads} torch threads.\n\n"
        "Command: `workbench demo bench`\n\n"
        "| efficacy | held-out generalization | locality | steps | wall time |\n"
        "|---|---|---|---|---|\n"
        f"| {100 * s.get('efficacy', 0):.1f} % | {100 * s.get('generalization', 0):.1f} % | "
        f"{100 * s.get('locality', 0):.1f} % | {result.steps} | {result.wall_seconds:.1f} s |\n\n"
        "Scored by free generation (greedy, chat template). Efficacy: each fact's own "
        "question; generalization: phrasings held out from training; locality: questions about "
        "known people unrelated to the new ones (no shared first name or surname), which "
        "must still be answered correctly. Wall time: from starting the run to the "
        "final scores, model loading and probing included.\n\n"
        f"Run configuration:\n\n```yaml\n{result.config}```\n"
    )


def write_results(result: BenchResult, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo_injection.json").write_text(json.dumps(result.as_dict(), indent=1) + "\n",
                                                encoding="utf-8")
    path = folder / "demo_injection.md"
    path.write_text(report(result), encoding="utf-8")
    return path
