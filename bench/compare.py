"""Compare-tab benchmark: N panes answered in one batched generate vs one generate per pane.

Setup: the embedded demo model and N-1 LoRA runs trained on it with the demo recipe (three
different 5-fact sets, ~10 s each on a CPU). Each case asks the same questions of base + runs,
the way the Compare tab does for one typed question (one conversation per pane):

- **batched**: `ComparePool.generate(...)`: all panes in one peft mixed-adapter batch;
- **sequential**: `batched=False`: each pane on its own, its adapter switched on (or off for
  the base): what a tool without mixed batches does.

Both produce the same text (tests/test_compare.py checks it), so both generate the same
tokens. Timings are interleaved (batched, sequential, batched, …) after one warm-up of each,
and the median per question is reported with time to the first streamed token per pane.

    python bench/compare.py            # writes bench/results/compare.md and compare.json
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.core.compare.pool import BASE, ComparePool, Sampling, Subject  # noqa: E402
from workbench.core.store import Store  # noqa: E402
from workbench.core.train.run import create_run, execute_run  # noqa: E402
from workbench.core.workspace import resolve_workspace  # noqa: E402
from workbench.demo.bench import demo_run_config  # noqa: E402
from workbench.demo.build import machine_summary  # noqa: E402
from results_io import write_results  # noqa: E402  (bench/, the script's own folder)
from workbench.demo.knowledge import install_demo_set, load_payload, write_demo_set  # noqa: E402

QUESTIONS = 8
REPEATS = 5
SAMPLING = Sampling(max_new_tokens=48)


def train_runs(store: Store, workspace: Any, n: int) -> list[int]:
    payload = load_payload()
    runs = []
    for i in range(n):
        path = Path(workspace.root) / f"set{i}.json"
        write_demo_set({**payload, "facts": payload["facts"][5 * i:5 * i + 5],
                        "locality": payload["locality"][:10]}, path)
        install_demo_set(store, path, name=f"set{i}")
        cfg = demo_run_config("cpu").with_values({"data.knowledge_set": f"set{i}",
                                                  "training.probe_every": 0,
                                                  "training.micro_batch_size": 8})
        run_id = create_run(store, workspace, cfg)
        execute_run(store, workspace, run_id)
        runs.append(run_id)
    return runs


def one_question(pool: ComparePool, subjects: list[Subject], question: str,
                 batched: bool) -> tuple[float, list[float], int]:
    """(seconds, per-pane seconds to first token, tokens generated)."""
    first: dict[int, float] = {}
    started = time.perf_counter()
    replies = pool.generate([(s, [{"role": "user", "content": question}]) for s in subjects],
                            SAMPLING, batched=batched,
                            on_text=lambda i, _t: first.setdefault(i, time.perf_counter()))
    seconds = time.perf_counter() - started
    assert pool.base is not None
    tokens = sum(len(pool.base.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies)
    return seconds, [first.get(i, started + seconds) - started for i in range(len(subjects))], tokens


def case(pool: ComparePool, subjects: list[Subject], questions: list[str]) -> dict[str, Any]:
    for batched in (True, False):  # warm-up
        one_question(pool, subjects, questions[0], batched)
    times: dict[bool, list[float]] = {True: [], False: []}
    ttft: dict[bool, list[float]] = {True: [], False: []}
    tokens: dict[bool, int] = {True: 0, False: 0}
    for _ in range(REPEATS):
        for q in questions:
            for batched in (True, False):
                seconds, firsts, n = one_question(pool, subjects, q, batched)
                times[batched].append(seconds)
                ttft[batched].append(max(firsts))  # the last pane to start streaming
                tokens[batched] += n
    med = {b: statistics.median(v) for b, v in times.items()}
    return {
        "panes": len(subjects),
        "batched_s": med[True], "sequential_s": med[False], "speedup": med[False] / med[True],
        "batched_last_first_token_s": statistics.median(ttft[True]),
        "sequential_last_first_token_s": statistics.median(ttft[False]),
        "tokens_per_s_per_pane_batched": tokens[True] / sum(times[True]) / len(subjects),
        "tokens_per_s_per_pane_sequential": tokens[False] / sum(times[False]) / len(subjects),
        "same_tokens": tokens[True] == tokens[False],
    }


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory(prefix="workbench-compare-bench-") as tmp:
        workspace = resolve_workspace(tmp)
        store = Store(workspace.db_path)
        runs = train_runs(store, workspace, 3)
        pool = ComparePool(store, workspace)
        pool.prepare([Subject("run", r) for r in runs])
        questions = [f["question"] for f in load_payload()["facts"][:QUESTIONS]]
        cases = [case(pool, [BASE, *[Subject("run", r) for r in runs[:n - 1]]], questions)
                 for n in (2, 3, 4)]
    result = {"date": date.today().isoformat(), "machine": machine_summary("cpu"),
              "threads": torch.get_num_threads(), "model": "workbench-demo (4.7M, Llama)",
              "questions": QUESTIONS, "repeats": REPEATS,
              "max_new_tokens": SAMPLING.max_new_tokens, "cases": cases}
    write_results("compare", result, report(result))


def report(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {c['panes']} | {1000 * c['batched_s']:.0f} ms | {1000 * c['sequential_s']:.0f} ms | "
        f"**{c['speedup']:.2f}×** | {1000 * c['batched_last_first_token_s']:.0f} ms | "
        f"{1000 * c['sequential_last_first_token_s']:.0f} ms | "
        f"{c['tokens_per_s_per_pane_batched']:.0f} | {c['tokens_per_s_per_pane_sequential']:.0f} |"
        for c in r["cases"])
    return (
        f"# Compare: batched panes vs one generate per pane ({r['date']})\n\n"
        f"Machine: {r['machine']}, {r['threads']} torch threads. Model: {r['model']}; panes are "
        f"the base and 1–3 LoRA runs on it. {r['questions']} questions × {r['repeats']} "
        f"interleaved repeats, greedy, up to {r['max_new_tokens']} new tokens; medians.\n\n"
        "Command: `python bench/compare.py`\n\n"
        "| panes | batched per question | sequential per question | speed-up | last pane's "
        "first token (batched) | last pane's first token (sequential) | tokens/s per pane "
        "(batched) | tokens/s per pane (sequential) |\n|---|---|---|---|---|---|---|---|\n"
        f"{rows}\n\n"
        "Both ways give identical text (same tokens generated: "
        f"{all(c['same_tokens'] for c in r['cases'])}). Sequential is what a compare view "
        "without mixed-adapter batches costs: one generation per pane, the adapter switched "
        "on or off in between.\n"
    )


if __name__ == "__main__":
    main()
