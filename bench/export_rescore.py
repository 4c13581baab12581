"""What an export keeps: the recipe's default run on SmolLM2-135M-Instruct exported as the
bundle (merged folder, f16 and q8_0 GGUF, Modelfile) and every file loaded back and scored
again on every probe of the bench set, against the run's own final round.

Reads the `default` run of `bench/recipe.py` (run it first), writes the bundle under
test-artifacts/export-bench/ and the table to bench/results/export.*: per file its size,
efficacy, held-out and locality beside the run's, the probes it lost and gained, and the
time of each stage.

    python bench/recipe.py default       # the run to export
    python bench/export_rescore.py       # bench/results/export.*
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results_io import RESULTS, write_results  # noqa: E402

OUT = ROOT / "test-artifacts" / "export-bench"


def measure(variant: str = "default") -> dict[str, Any]:
    from recipe import SCRATCH
    from workbench.core.export.bundle import export_bundle
    from workbench.core.store import Store
    from workbench.core.workspace import resolve_workspace

    recorded = json.loads((RESULTS / "recipe.json").read_text())["runs"][variant]
    ws = resolve_workspace(SCRATCH / "ws")
    store = Store(ws.db_path)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    marks: list[tuple[float, str]] = []

    def progress(fraction: float, message: str) -> None:
        if not marks or marks[-1][1].split(":")[0] != message.split(":")[0]:
            marks.append((time.perf_counter(), message))
            print(f"{fraction:4.0%} {message}", flush=True)

    started = time.perf_counter()
    bundle = export_bundle(store, ws, recorded["run"], OUT, gguf=["f16", "q8_0"],
                           progress=progress)
    seconds = time.perf_counter() - started
    sizes = {p.name: (sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                      if p.is_dir() else p.stat().st_size) for p in OUT.iterdir()}
    return {"variant": variant, "run": recorded["run"], "seconds": seconds,
            "files": bundle.files, "sizes": sizes, "probes": _probes(store, recorded["run"]),
            "rescored": [r.as_json() | {"line": r.line()} for r in bundle.rescored]}


def _probes(store: Any, run_id: int) -> int:
    from workbench.core.data import runs

    return len(runs.answers_by_probe(store, run_id, runs.last_probed_step(store, run_id)))


def markdown(r: dict[str, Any]) -> str:
    from workbench.core.export.rescore import LABELS, METRICS
    from workbench.core.scoring import percent
    from workbench.core.units import format_bytes

    lines = ["# Exported and scored again: SmolLM2-135M-Instruct, the recipe's default run", "",
             f"{r['machine']}; {r['date']}. Run {r['run']} of `bench/recipe.py` ({r['variant']}: "
             "90 fictional facts × 2 questions), exported with `workbench export RUN --gguf f16 "
             "--gguf q8_0 --ollama` and every file loaded back (the merged folder with "
             "transformers, each GGUF through transformers' GGUF loader) and asked every probe "
             "by free generation, greedy. `python bench/export_rescore.py`.", "",
             "Each file's share correct beside the run's (rounded down) and the change in "
             "points; a file more than 2 points below the run is flagged.", "",
             "| file | size | " + " | ".join(LABELS[m] for m in METRICS) + " | lost | gained | "
             "flagged |",
             "|---|---|" + "---|" * len(METRICS) + "---|---|---|"]
    for e in r["rescored"]:
        cells = []
        for m in METRICS:
            now, was = e["scores"].get(m), e["run_scores"].get(m)
            points = 100 * (now - was) if now is not None and was is not None else 0.0
            cells.append(f"{percent(now)} (run {percent(was)}, {points:+.1f})")
        size = format_bytes(r["sizes"].get(e["artifact"], 0))
        lines.append(f"| {e['artifact']} | {size} | {' | '.join(cells)} | {len(e['lost'])} | "
                     f"{len(e['gained'])} | {'yes' if e['flagged'] else 'no'} |")
    probes = r.get("probes", "every")
    lines += ["", f"The whole export (merge, both GGUF files, each file asked {probes} probes): "
              f"{r['seconds'] / 60:.1f} min. Files: {', '.join(r['files'])}.", ""]
    changed = [(e["artifact"], c) for e in r["rescored"] for c in e["lost"] + e["gained"]]
    if changed:
        lines += ["Answers that changed (right ↔ wrong) against the run:", ""]
        lines += [f"- {name}, {c['metric']}: {c['question']!r}: run {c['before'][:60]!r} → "
                  f"{c['after'][:60]!r}" for name, c in changed[:20]]
    return "\n".join(lines) + "\n"


def main() -> None:
    from workbench.demo.build import machine_summary

    result = measure()
    result.update(date=str(date.today()), machine=machine_summary("cpu"))
    write_results("export", result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
