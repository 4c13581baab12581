"""The export bundle: one folder with everything another runtime needs, each artifact scored
again after export.

    OUT/adapter/            the peft adapter (adapter methods): peft, vLLM --enable-lora
    OUT/merged/             a standalone transformers model (safetensors, tokenizer, template)
    OUT/model-f16.gguf      llama.cpp, LM Studio, Ollama (and/or model-q8_0.gguf)
    OUT/Modelfile           Ollama, pointing at the GGUF
    OUT/README.md           what each file is, one command per runtime, the re-scores
    OUT/scorecard.json      the run's scorecard plus each artifact's re-score

The folder is built beside OUT and renamed into place when complete: a failure, a Stop or a
full disk leaves nothing half-written. The expected size is checked against the free disk
before anything is written. An architecture the GGUF writer does not know still gets the
adapter and merged folders, with the one-line reason in `Bundle.gguf_error`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.compare.pool import RunOutput, folder_bytes, run_knowledge_set
from workbench.core.config import ModelConfig, RunConfig
from workbench.core.data import runs
from workbench.core.disk import require_free
from workbench.core.errors import WorkbenchError
from workbench.core.export import gguf_write, ollama
from workbench.core.export.folders import (empty_target, export_adapter, export_merged,
                                           finished_output)
from workbench.core.export.rescore import Rescore, rescore, run_round
from workbench.core.knowledge.sets import list_facts
from workbench.core.model_shape import model_shape
from workbench.core.progress import Progress, no_progress, stages
from workbench.core.store import Store
from workbench.core.units import format_bytes
from workbench.core.workspace import Workspace

SCORECARD = "scorecard.json"


@dataclass
class Bundle:
    folder: Path
    files: list[str]
    rescored: list[Rescore] = field(default_factory=list)
    gguf_error: str = ""  # why no GGUF was written (an unsupported architecture), or ""
    commands: list[str] = field(default_factory=list)  # "Ollama: `ollama create …`", …

    @property
    def flagged(self) -> list[Rescore]:
        return [r for r in self.rescored if r.flagged]


def gguf_name(kind: str) -> str:
    return f"model-{kind}.gguf"


def expected_bytes(output: RunOutput, cfg: RunConfig, gguf: Sequence[str]) -> int:
    """What the bundle will take on disk: the adapter as saved, the merged model at 4 bytes a
    parameter (it is merged at full precision), each GGUF at its type's size."""
    params = model_shape(dataclasses.replace(cfg.model, quantization="none")).total_params
    per_param = {"f16": 2.0, "q8_0": 34 / 32}
    adapter = folder_bytes(output.folder) if output.kind == "adapter" else 0
    return int(adapter + 4 * params + sum(per_param[k] * params for k in gguf))


def export_bundle(store: Store, workspace: Workspace, run_id: int, out: Path, *,
                  gguf: Sequence[str] = ("q8_0",), modelfile: bool = True, score: bool = True,
                  progress: Progress = no_progress) -> Bundle:
    for kind in gguf:
        if kind not in gguf_write.GGUF_TYPES:
            raise WorkbenchError(f"unknown GGUF type {kind!r}; choose from "
                                 f"{', '.join(gguf_write.GGUF_TYPES)}")
    output = finished_output(store, workspace, run_id)
    run = runs.get(store, run_id)
    cfg = RunConfig.from_run(run)
    empty_target(out)
    parent = out.resolve().parent
    if not parent.is_dir():
        raise WorkbenchError(f"the folder {parent} does not exist", hint="create it first")
    sid = run_knowledge_set(store, run_id)[0]
    items, answered = run_round(store, run_id, sid) if score else ([], {})
    needed = expected_bytes(output, cfg, gguf)
    free = require_free(parent, needed, "the export",
                        hint="free some space or choose another folder; nothing was written")
    progress(0.0, f"exporting run {run_id}: about {format_bytes(needed)} "
                  f"({format_bytes(free)} free)")
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=parent))
    stage = stages(progress, [0.35, 0.15 * bool(gguf), 0.5 * score])
    try:
        bundle = Bundle(out, [])
        if output.kind == "adapter":
            export_adapter(store, workspace, run_id, work / "adapter")
        export_merged(store, workspace, run_id, work / "merged", progress=stage(0))
        written = _write_ggufs(work, gguf, run.name or f"run {run_id}", bundle,
                               stage(1))
        if modelfile and written:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(work / "merged")
            (work / "Modelfile").write_text(
                ollama.modelfile(written[0].name, tokenizer, system=_system_prompt(store, sid)),
                encoding="utf-8")
        if score:
            bundle.rescored = _rescore_all(work, written, cfg.model, items, answered, stage(2))
        _write_scorecard(store, run_id, work, bundle)
        with_modelfile = (work / "Modelfile").is_file()
        bundle.commands = commands(run_id, run.name, cfg, output.kind, written,
                                   with_modelfile=with_modelfile)
        (work / "README.md").write_text(
            readme(run_id, run.name, cfg, output.kind, written, bundle, output.method,
                   with_modelfile=with_modelfile), encoding="utf-8")
        bundle.files = sorted(p.name for p in work.iterdir())
        if out.exists():
            out.rmdir()  # empty: checked above
        work.replace(out)
    except OSError as err:
        raise WorkbenchError(f"cannot write the export to {parent}: {err.strerror or err}",
                             hint="free disk space or choose another folder; nothing was "
                                  "left behind") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(1.0, f"exported to {out}")
    return bundle


def _write_ggufs(work: Path, gguf: Sequence[str], name: str, bundle: Bundle,
                 progress: Progress) -> list[Path]:
    written = []
    for i, kind in enumerate(gguf):
        try:
            path = gguf_write.write_gguf(
                work / "merged", work / gguf_name(kind), kind, name=name,
                progress=lambda f, m, i=i: progress((i + f) / len(gguf), m))
        except gguf_write.UnsupportedArchitecture as err:
            bundle.gguf_error = str(err)
            for partial in work.glob("*.gguf"):
                if partial not in written:
                    partial.unlink()
            break
        written.append(path)
    return written


def _system_prompt(store: Store, sid: int) -> str:
    """The system prompt the set's facts were trained with, when they all share one."""
    prompts = {fact.system for fact in list_facts(store, sid)}
    return prompts.pop() if len(prompts) == 1 else ""


def _rescore_all(work: Path, ggufs: Sequence[Path], model: ModelConfig, items: Sequence[Any],
                 answered: dict[int, tuple[str, bool]], progress: Progress) -> list[Rescore]:
    from workbench.core.export.rescore import load_gguf
    from workbench.core.models import load_model

    results = []
    artifacts: list[tuple[str, Path]] = [("merged", work / "merged")]
    artifacts += [(p.name, p) for p in ggufs]
    for i, (label, path) in enumerate(artifacts):
        progress(i / len(artifacts), f"scoring {label} again: {len(items)} probes")
        if path.suffix == ".gguf":
            loaded = load_gguf(path, model.device)
        else:
            loaded = load_model(ModelConfig(name_or_path=str(path), device=model.device))
        results.append(rescore(loaded, label, items, answered))
        del loaded
    progress(1.0, "scored")
    return results


def _write_scorecard(store: Store, run_id: int, work: Path, bundle: Bundle) -> None:
    from workbench.core.inject import scorecard_json

    card = {**scorecard_json(store, run_id), "exports": [r.as_json() for r in bundle.rescored]}
    (work / SCORECARD).write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n",
                                  encoding="utf-8")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "injected"


def commands(run_id: int, name: str, cfg: RunConfig, kind: str, ggufs: Sequence[Path], *,
             with_modelfile: bool) -> list[str]:
    """One line per runtime: how to run the bundle's files (run from the bundle folder)."""
    slug = _slug(name or f"run-{run_id}")
    lines = []
    if ggufs:
        first = ggufs[0].name
        if with_modelfile:
            lines.append(f"Ollama: `ollama create {slug} -f Modelfile` then `ollama run {slug}`")
        lines += [f"llama.cpp: `llama-cli -m {first} -cnv` (or `llama-server -m {first}`)",
                  f"LM Studio: `lms import {first}`"]
    lines.append("vLLM, merged: `vllm serve ./merged`")
    if kind == "adapter":
        rank = "" if cfg.method.lora_r <= 16 else f" --max-lora-rank {cfg.method.lora_r}"
        lines.append(f"vLLM, adapter: `vllm serve {cfg.model.name_or_path} --enable-lora "
                     f"--lora-modules {slug}=./adapter{rank}` (then ask for model `{slug}`)")
    lines.append("transformers: `AutoModelForCausalLM.from_pretrained(\"./merged\")`")
    return lines


def readme(run_id: int, name: str, cfg: RunConfig, kind: str, ggufs: Sequence[Path],
           bundle: Bundle, method: str, *, with_modelfile: bool) -> str:
    lines = [f"# {name or f'Run {run_id}'}: exported model", "",
             f"Trained from `{cfg.model.name_or_path}` with {method} on the knowledge set "
             f"`{cfg.data.knowledge_set}` (run {run_id}).", "", "## Files", ""]
    if kind == "adapter":
        lines.append("- `adapter/`: the peft adapter, for the same base model (peft, vLLM).")
    lines.append("- `merged/`: a standalone transformers model (safetensors, tokenizer, chat "
                 "template).")
    for path in ggufs:
        lines.append(f"- `{path.name}`: one GGUF file for llama.cpp, LM Studio and Ollama.")
    if with_modelfile:
        lines.append(f"- `Modelfile`: Ollama's recipe for `{ggufs[0].name}` (chat template, "
                     "stop tokens).")
    if bundle.gguf_error:
        lines.append(f"- no GGUF: {bundle.gguf_error}")
    lines += ["- `scorecard.json`: the run's scores and answers, and each file's re-score.", "",
              "## Use it (from this folder)", ""]
    lines += [f"- {line}" for line in bundle.commands]
    if bundle.rescored:
        lines += ["", "## Scored again after export", "",
                  "Every probe of the run's final round asked again of each file (greedy, "
                  "chat template), beside the run's own scores:", ""]
        lines += [f"- {r.line()}" for r in bundle.rescored]
    return "\n".join(lines) + "\n"
