"""The slow paths of a real model on a CPU, before and after: screening a set, a live probe
round, the final round, and how long a Stop takes when it arrives in the middle of a round.

The model is SmolLM2-135M-Instruct (the `real` test tier's model, from its PyPI wheel, through
our GGUF import); the set is 90 fictional facts with two questions each (180 rows, three
relations: `workbench.testing.fictional_facts`), given the defaults' phrasings (5 per fact,
statements) and 2 held-out phrasings per fact.

"Before" is the source at another commit (default: the last one before this benchmark
existed), unpacked with `git archive` and imported in a process of its own; "after" is this
tree. Both run the same steps through the same public functions, one after the other on the
same machine; each step's wall time and the number of questions it asked are recorded.

    python bench/real_model.py [--before COMMIT]   # writes bench/results/real_model.*
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "a7cf3db"  # the source before the real-model work
STOP_TIMEOUT_S = 600


def child(csv: Path, model_dir: Path, out: Path) -> None:
    """Runs under whichever source tree PYTHONPATH points at."""
    from workbench.core.config import ModelConfig, RunConfig
    from workbench.core.knowledge import probes, sets, transfer
    from workbench.core.knowledge.screen import screen_facts
    from workbench.core.models import load_model
    from workbench.core.store import Store
    from workbench.core.train import control, probing
    from workbench.core.workspace import resolve_workspace

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = resolve_workspace(Path(tmp) / "ws")
        store = Store(ws.db_path)
        sid = sets.create_set(store, "fictional")
        transfer.import_path(store, sid, csv)
        probes.generate_template_phrasings(store, sid, n=5)
        probes.split_probes(store, sid, holdout=2)
        result["facts"] = len(sets.list_facts(store, sid))
        loaded = load_model(ModelConfig(name_or_path=str(model_dir), device="cpu"))

        started = time.perf_counter()
        labels = screen_facts(store, sid, loaded)
        result["screening_s"] = time.perf_counter() - started
        result["screening_labels"] = labels

        items = probing.probe_items(store, sid)
        live = (probing.live_sample(items, RunConfig().training.probe_sample)
                if hasattr(probing, "live_sample") else items)
        for name, chosen in (("live_round", live), ("final_round", items)):
            started = time.perf_counter()
            probing.ask_items(loaded, loaded.model, chosen)
            result[f"{name}_s"] = time.perf_counter() - started
            result[f"{name}_questions"] = len(chosen)
        del loaded

        # A Stop two seconds into the first live round (it follows step 1's metrics row).
        values = {"model.name_or_path": str(model_dir), "model.device": "cpu",
                  "data.knowledge_set": "fictional", "training.probe_every": 1,
                  "training.checkpoint_every": 0}
        run_id = control.start_run(store, ws, RunConfig().with_values(values))
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not store.db.execute("SELECT 1 FROM metrics WHERE run_id = ? AND step = 1",
                                   [run_id]).fetchone():
            if time.monotonic() > deadline:
                raise RuntimeError("no first step")
            time.sleep(0.05)
        time.sleep(2.0)
        asked = time.perf_counter()
        control.stop_run(store, run_id)
        try:
            control.wait(run_id, timeout=STOP_TIMEOUT_S)
            result["stop_s"] = time.perf_counter() - asked
        except subprocess.TimeoutExpired:
            result["stop_s"] = None  # still not stopped after the limit
        result["stop_status"] = store.db.execute("SELECT status FROM runs WHERE id = ?",
                                                 [run_id]).fetchone()[0]
    out.write_text(json.dumps(result), encoding="utf-8")


def measure(source: Path, csv: Path, model_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1"}
        subprocess.run([sys.executable, __file__, "--child", str(csv), str(model_dir), str(out)],
                       check=True, env=env, cwd=source)
        return json.loads(out.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="commit to measure as before")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*(Path(p) for p in args.child))
        return

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from results_io import write_results
    from workbench.demo.build import machine_summary
    from workbench.realmodel import smollm2_folder
    from workbench.testing import fictional_facts, write_facts_csv

    model_dir = smollm2_folder()
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_facts_csv(Path(tmp) / "facts.csv", fictional_facts())
        old = Path(tmp) / "before"
        old.mkdir()
        archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        results = {"before": measure(old, csv, model_dir), "after": measure(ROOT, csv, model_dir)}
    results.update(date=str(date.today()), machine=machine_summary("cpu"), before_commit=args.before,
                   model="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32)")
    write_results("real_model", results, markdown(results))


def _s(value: float | None) -> str:
    return "did not stop" if value is None else f"{value:.1f} s"


def markdown(r: dict[str, Any]) -> str:
    b, a = r["before"], r["after"]
    rows = [
        ("facts in the set (180 rows)", b["facts"], a["facts"]),
        ("screening the set", _s(b["screening_s"]), _s(a["screening_s"])),
        ("live probe round", f"{_s(b['live_round_s'])} ({b['live_round_questions']} questions)",
         f"{_s(a['live_round_s'])} ({a['live_round_questions']} questions)"),
        ("final probe round", f"{_s(b['final_round_s'])} ({b['final_round_questions']} questions)",
         f"{_s(a['final_round_s'])} ({a['final_round_questions']} questions)"),
        ("Stop during a live round → worker exited", f"{_s(b['stop_s'])} ({b['stop_status']})",
         f"{_s(a['stop_s'])} ({a['stop_status']})"),
    ]
    lines = [
        "# Real model on a CPU: screening, probe rounds, Stop",
        "",
        f"{r['model']}; 90 fictional facts × 2 questions; {r['machine']}; {r['date']}.",
        f"Before = commit {r['before_commit']}, after = this tree; `python bench/real_model.py`.",
        "",
        "| step | before | after |",
        "|---|---|---|",
        *[f"| {name} | {before} | {after} |" for name, before, after in rows],
        "",
        f"Screening labels before: {b['screening_labels']}; after: {a['screening_labels']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
