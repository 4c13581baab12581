"""The same run YAML sharded over two processes (`training.distributed: fsdp`, FSDP2 over gloo
on CPU) trains, probes, checkpoints and saves as one process does.

Two processes with micro-batch 4 make the same effective batch as one with 8, and the loss is
the mean over every token of the step, so the sharded run must see the same losses at every
step: that holds only when the gradients are reduce-scattered, clipped over the sharded
parameters and the optimizer steps each shard. Probe rounds run on both ranks in lockstep
(a sharded forward needs every rank), so their answers must equal the single process's too.
The demo model and recipe (LoRA with distribution replay) on five of the demo set's facts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, accelerate_command, run_cli
from workbench.core.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with "five": five demo facts and twelve locality probes."""
    from workbench.core.workspace import resolve_workspace
    from workbench.demo.knowledge import install_demo_set, load_payload, write_demo_set

    root = tmp_path_factory.mktemp("fsdp") / "ws"
    ws = resolve_workspace(root)
    payload = load_payload()
    path = write_demo_set({**payload, "facts": payload["facts"][:5],
                           "locality": payload["locality"][:12]}, root / "five.json")
    install_demo_set(Store(ws.db_path), path, name="five")
    return root


def config(tmp: Path, name: str, **values: Any) -> Path:
    from workbench.demo.bench import demo_run_config

    base = {"data.knowledge_set": "five", "model.device": "cpu", "training.epochs": 3,
            "training.stop_at_efficacy": 0.0, "training.probe_every": 4,
            "training.probe_sample": 0, "training.checkpoint_every": 3,
            "training.distributed": "fsdp", "name": name}
    return demo_run_config("cpu").with_values({**base, **values}).save(tmp / f"{name}.yaml")


def launch(ws: Path, yaml: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(accelerate_command("--workspace", str(ws), "train", str(yaml)),
                          capture_output=True, text=True, timeout=600, cwd=REPO, **kwargs)




def metrics(store: Store, run: int) -> list[dict[str, Any]]:
    return [dict(r) for r in store.db.query(
        "SELECT step, loss, grad_norm, examples, tokens, mem_peak FROM metrics "
        "WHERE run_id = ? ORDER BY step", [run])]


def answers(store: Store, run: int) -> list[tuple[int, int, str, int]]:
    return [(r["step"], r["probe_id"], r["answer"], r["correct"]) for r in store.db.query(
        "SELECT step, probe_id, answer, correct FROM probe_results WHERE run_id = ? "
        "ORDER BY step, probe_id", [run])]


def ask_outputs(ws: Path, run: int) -> list[str]:
    """The saved outputs loaded in this (one) process, asked the set's questions greedily."""
    from workbench.core.generate import ask_questions
    from workbench.core.knowledge import sets
    from workbench.core.train.outputs import load_outputs
    from workbench.core.train.probing import probe_items

    store = Store(ws / "workbench.db")
    loaded = load_outputs(ws / "runs" / str(run), device="cpu")
    items = probe_items(store, sets.set_id(store, "five"), locality=True)
    return ask_questions(loaded, [item.question for item in items])


# qlora: the 4-bit base stored in float32 so FSDP can shard it (bitsandbytes runs NF4 on CPU)
@pytest.mark.parametrize("method", ["lora", "qlora", "full"])
def test_fsdp_on_two_processes_trains_as_one_process_does(workspace: Path, tmp_path: Path,
                                                           method: str) -> None:
    values: dict[str, Any] = {"method.name": method}
    if method == "full":  # no adapter to switch off for distribution replay
        values.update({"data.replay_match": "answers", "training.learning_rate": 1e-4})
    two = config(tmp_path, f"{method}-two", **values, **{"training.micro_batch_size": 4})
    one = config(tmp_path, f"{method}-one", **values, **{"training.micro_batch_size": 8})
    launched = launch(workspace, two)
    assert launched.returncode == 0, launched.stderr[-3000:]
    store = Store(workspace / "workbench.db")
    sharded = newest(store)
    assert run_cli("--workspace", str(workspace), "train", str(one)).returncode == 0
    single = newest(store)
    statuses = {r["id"]: r["status"] for r in store.db.query("SELECT id, status FROM runs")}
    assert statuses[sharded] == statuses[single] == "completed"
    log = (workspace / "runs" / str(sharded) / "train.log").read_text()
    assert "2 process(es) sharded (FSDP2)" in log

    fsdp, plain = metrics(store, sharded), metrics(store, single)
    assert [m["step"] for m in fsdp] == [m["step"] for m in plain] and len(fsdp) >= 6
    assert [m["examples"] for m in fsdp] == [m["examples"] for m in plain]
    assert [m["loss"] for m in fsdp] == pytest.approx([m["loss"] for m in plain], rel=1e-4)
    # Clipping saw the sharded gradients (a norm of 0 would mean it saw none).
    assert [m["grad_norm"] for m in fsdp] == pytest.approx([m["grad_norm"] for m in plain],
                                                          rel=1e-3)
    assert all(m["mem_peak"] for m in fsdp)  # the larger process's, recorded by rank 0

    # Live rounds and the final round were asked by both ranks together and written once.
    asked = answers(store, sharded)
    assert len({step for step, *_ in asked}) >= 2  # a live round and the final one at least
    assert asked == answers(store, single)
    # The gathered outputs load in one process and answer as the single process's do.
    assert ask_outputs(workspace, sharded) == ask_outputs(workspace, single)


def rank_pids(launcher: int) -> dict[int, int]:
    """{rank: pid} of the worker processes an accelerate launcher started."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        rank = [v for v in environ if v.startswith(b"RANK=")]
        if parent == launcher and rank:
            found[int(rank[0][5:])] = int(entry.name)
    return found


def start(ws: Path, yaml: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(accelerate_command("--workspace", str(ws), "train", str(yaml)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO, start_new_session=True)


def wait_for_step(store: Store, after: int, step: int, proc: subprocess.Popen[str]) -> int:
    """The id of the first run newer than `after`, once it has trained `step` steps."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:] if proc.stdout else ""
        found = list(store.db.query("SELECT r.id, max(m.step) AS s FROM runs r JOIN metrics m "
                                    "ON m.run_id = r.id WHERE r.id > ? GROUP BY r.id", [after]))
        if found and (found[0]["s"] or 0) >= step:
            return int(found[0]["id"])
        time.sleep(0.2)
    raise AssertionError(f"no run reached step {step}")


def newest(store: Store) -> int:
    rows = list(store.db.query("SELECT max(id) AS id FROM runs"))
    return int(rows[0]["id"] or 0)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks' processes in /proc")
def test_stop_reaches_both_ranks_and_one_process_resumes_where_two_stopped(
        workspace: Path, tmp_path: Path) -> None:
    store = Store(workspace / "workbench.db")
    long = {"training.epochs": 40, "training.micro_batch_size": 4, "training.probe_every": 0,
            "training.checkpoint_every": 0}
    yaml = config(tmp_path, "stopped", **long)
    before = newest(store)
    proc = start(workspace, yaml)
    try:
        run = wait_for_step(store, before, 3, proc)
        ranks = rank_pids(proc.pid)
        assert sorted(ranks) == [0, 1]
        # Timed from the moment the Stop is delivered (the stop flag and SIGTERM sent).
        assert run_cli("--workspace", str(workspace), "runs", "stop", str(run)).returncode == 0
        asked = time.monotonic()
        while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)
                  for pid in ranks.values()):
            assert time.monotonic() - asked < 5, "a rank was still running 5 s after Stop"
            time.sleep(0.05)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    row = list(store.db.query("SELECT status, total_steps FROM runs WHERE id = ?", [run]))[0]
    assert row["status"] == "stopped"
    stopped_at = max(m["step"] for m in metrics(store, run))
    assert stopped_at < row["total_steps"]

    # The checkpoint two processes saved resumes in one, at the next step.
    resumed = run_cli("--workspace", str(workspace), "train", "--resume", str(run),
                      timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (workspace / "runs" / str(run) / "train.log").read_text()
    assert f"(step {stopped_at})" in log and "1 process(es)," in log
    after = metrics(store, run)
    assert [m["step"] for m in after] == list(range(1, row["total_steps"] + 1))
    # ... and trains on exactly as one process does from the start.
    alone = config(tmp_path, "alone", **{**long, "training.micro_batch_size": 8})
    assert run_cli("--workspace", str(workspace), "train", str(alone), timeout=600).returncode == 0
    reference = metrics(store, newest(store))
    assert [m["loss"] for m in after] == pytest.approx([m["loss"] for m in reference], rel=1e-4)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the ranks' processes in /proc")
def test_a_rank_that_dies_leaves_the_run_interrupted(workspace: Path, tmp_path: Path) -> None:
    from workbench.core.train import jobs

    store = Store(workspace / "workbench.db")
    yaml = config(tmp_path, "killed", **{"training.epochs": 40, "training.micro_batch_size": 4,
                                         "training.probe_every": 0})
    before = newest(store)
    proc = start(workspace, yaml)
    try:
        run = wait_for_step(store, before, 2, proc)
        os.kill(rank_pids(proc.pid)[1], signal.SIGKILL)
        proc.wait(timeout=120)  # the launcher ends the other rank; nothing hangs
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    jobs.reap(store)
    row = list(store.db.query("SELECT status, error FROM runs WHERE id = ?", [run]))[0]
    assert row["status"] == "interrupted", row["error"]
    assert "resume" in row["error"]


def test_two_machines_run_the_same_yaml(workspace: Path, tmp_path: Path) -> None:
    """README's two-machine command, both "machines" on this one (one process each)."""
    from conftest import free_port

    yaml = config(tmp_path, "machines", **{"training.micro_batch_size": 4, "training.epochs": 1})
    port = str(free_port())
    store = Store(workspace / "workbench.db")
    before = newest(store)

    def machine(rank: int) -> subprocess.Popen[str]:
        command = accelerate_command("--workspace", str(workspace), "train", str(yaml),
                                     processes=2)
        at = command.index("--num_machines")
        command[at:at + 2] = ["--num_machines", "2", "--machine_rank", str(rank),
                              "--main_process_ip", "127.0.0.1", "--main_process_port", port]
        return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    machines = [machine(0), machine(1)]
    outputs = [m.communicate(timeout=300)[1] for m in machines]
    assert [m.returncode for m in machines] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert newest(store) == before + 1  # one run, recorded by rank 0
    log = (workspace / "runs" / str(before + 1) / "train.log").read_text()
    assert "2 process(es) sharded (FSDP2)" in log
    status = list(store.db.query("SELECT status FROM runs WHERE id = ?", [before + 1]))
    assert status[0]["status"] == "completed"


@pytest.mark.real
def test_fsdp_on_the_real_model_matches_one_process(tmp_path: Path, smollm2_dir: Path) -> None:
    """SmolLM2-135M (GQA, a tied head, a chat template whose shared start the single process
    computes once per micro-batch): the sharded losses are the single process's."""
    from workbench.core.workspace import resolve_workspace
    from workbench.demo.knowledge import install_demo_set, load_payload, write_demo_set

    root = tmp_path / "ws"
    ws = resolve_workspace(root)
    payload = load_payload()
    path = write_demo_set({**payload, "facts": payload["facts"][:8],
                           "locality": payload["locality"][:4]}, root / "eight.json")
    install_demo_set(Store(ws.db_path), path, name="five")
    # fp32: on a CPU with fast bf16 matmuls "auto" would train under bf16 autocast, whose
    # rounding differs between a micro-batch of 4 and two of 2 by more than the tolerance.
    values = {"model.name_or_path": str(smollm2_dir), "training.max_steps": 4,
              "training.probe_every": 0, "training.checkpoint_every": 0,
              "data.replay_ratio": 0.0, "training.mixed_precision": "no"}
    two = config(tmp_path, "real-two", **values, **{"training.micro_batch_size": 2})
    one = config(tmp_path, "real-one", **values, **{"training.micro_batch_size": 4})
    launched = launch(root, two)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert run_cli("--workspace", str(root), "train", str(one), timeout=600).returncode == 0
    store = Store(root / "workbench.db")
    sharded, single = metrics(store, 1), metrics(store, 2)
    assert len(sharded) == len(single) == 4
    assert [m["loss"] for m in sharded] == pytest.approx([m["loss"] for m in single], rel=1e-3)


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_devices() < 2, reason="needs two CUDA GPUs")
def test_fsdp_on_two_gpus_matches_one_gpu(workspace: Path, tmp_path: Path) -> None:
    """The same comparison on GPUs (NCCL; bf16 autocast, so a looser tolerance). The figures
    beside it: `python bench/distributed.py`."""
    values = {"model.device": "cuda", "training.probe_every": 4}
    two = config(tmp_path, "gpu-two", **values, **{"training.micro_batch_size": 4})
    one = config(tmp_path, "gpu-one", **values, **{"training.micro_batch_size": 8})
    launched = launch(workspace, two)
    assert launched.returncode == 0, launched.stderr[-3000:]
    store = Store(workspace / "workbench.db")
    sharded = newest(store)
    assert run_cli("--workspace", str(workspace), "train", str(one)).returncode == 0
    fsdp, plain = metrics(store, sharded), metrics(store, newest(store))
    assert [m["loss"] for m in fsdp] == pytest.approx([m["loss"] for m in plain], rel=2e-2)
    assert max(m["mem_peak"] for m in fsdp) < max(m["mem_peak"] for m in plain)
