"""The models behind the Compare panes, and one call that makes them all answer.

A *subject* is what a pane shows: the base model, a tuned run, or a no-training baseline
(the base model with context in its prompt). LoRA-family runs trained on the same base are
loaded as named adapters onto one copy of the base weights; their rows, the base's and the
baselines' go through **one** `generate` call with peft's mixed-adapter batches
(`adapter_names`, "__base__" for the bare base), so N panes cost about one generation.

Exceptions, each said in the pane instead of failing the others:
- runs that changed the weights (full, located) load their own copy when the device has the
  memory for it, else the pane says how much is missing;
- DoRA adapters cannot share a mixed batch (peft refuses), so they generate in their own call
  on the same loaded base;
- a run on another base model is treated like a full run (its own copy).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.compare.baselines import context_budget
from workbench.core.config import ModelConfig, RunConfig
from workbench.core.data import runs
from workbench.core.data.records import Run
from workbench.core.errors import WorkbenchError
from workbench.core.generate import Messages, decode_reply, generate_ids, prompt_ids
from workbench.core.models import LoadedModel, format_bytes, load_model
from workbench.core.store import Store
from workbench.core.train.outputs import OUTPUTS_FILE, load_outputs
from workbench.core.workspace import Workspace

BASELINES = ("in_context", "retrieval")
KINDS = ("base", "run", *BASELINES)
MEMORY_HEADROOM = 0.9  # load a second model only into 90 % of what is free


@dataclass(frozen=True)
class Subject:
    kind: str  # base | run | in_context | retrieval
    run_id: int | None = None

    @property
    def key(self) -> str:
        return f"run:{self.run_id}" if self.kind == "run" else self.kind

    @classmethod
    def parse(cls, text: str | int) -> Subject:
        """'base', 'in-context', 'retrieval', 'run:3' or '3'."""
        raw = str(text).strip().lower().replace("-", "_").replace(" ", "_")
        if raw in ("base", *BASELINES):
            return cls(raw)
        raw = raw.removeprefix("run:").removeprefix("run")
        if raw.isdigit():
            return cls("run", int(raw))
        raise WorkbenchError(f"{text!r} is not a pane: use base, in-context, retrieval or a run id")


BASE = Subject("base")


@dataclass(frozen=True)
class Sampling:
    """Settings every pane shares, so differences come from the models alone."""

    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy: the same question gives the same answer
    top_p: float = 1.0
    seed: int = 0
    first_line_only: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass(frozen=True)
class RunOutput:
    """What a finished run left to load: an adapter for a base, or a whole model."""

    run_id: int
    name: str
    method: str
    kind: str  # adapter | weights
    folder: Path
    base: ModelConfig  # the base the adapter belongs to (at the precision it was trained on)
    dora: bool
    stamp: int = 0  # when the outputs were written: a resumed run's new adapter is reloaded

    @property
    def adapter_name(self) -> str:
        return f"run{self.run_id}_{self.stamp}"

    @property
    def label(self) -> str:
        return f"Run {self.run_id} · {self.name} ({self.method})"


def run_folder(row: Mapping[str, Any] | Run, workspace: Workspace) -> Path:
    """A run's folder: where its row says, else the workspace's default place for it."""
    run_dir, run_id = (row.run_dir, row.id) if isinstance(row, Run) else (row["run_dir"], row["id"])
    return Path(run_dir) if run_dir else workspace.run_dir(int(run_id))


def run_output(store: Store, workspace: Workspace, run_id: int) -> RunOutput:
    run = runs.get(store, run_id)
    run_dir = run_folder(run, workspace)
    try:
        outputs = json.loads((run_dir / OUTPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise WorkbenchError(f"run {run_id} ({run.status}) has no trained model to compare",
                             hint="only runs that finished or were stopped after saving can "
                                  "be compared; resume it to let it finish") from None
    cfg = RunConfig.from_run(run)
    base = dataclasses.replace(cfg.model, quantization=cfg.effective_quantization)
    stamp = int((run_dir / OUTPUTS_FILE).stat().st_mtime)
    return RunOutput(run_id, run.name, run.method, outputs["kind"],
                     run_dir / outputs["path"], base, cfg.method.name == "dora", stamp)


def run_knowledge_set(store: Store, run_id: int) -> tuple[int, str]:
    """(id, name) of the knowledge set a run was trained on: what its scorecard asks."""
    from workbench.core.knowledge.sets import set_id

    name = RunConfig.from_run(runs.get(store, run_id)).data.knowledge_set
    if not name:
        raise WorkbenchError(f"run {run_id} was trained without a knowledge set: there are no "
                             "probes to score it with")
    return set_id(store, name), name


def _same_base(a: ModelConfig, b: ModelConfig) -> bool:
    return (a.name_or_path.strip(), a.quantization, a.revision) == \
        (b.name_or_path.strip(), b.quantization, b.revision)


def free_memory(device: str) -> int:
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


GetBase = Callable[[ModelConfig, Mapping[str, Path]], LoadedModel]


def _load_base(cfg: ModelConfig, adapters: Mapping[str, Path]) -> LoadedModel:
    from workbench.core.model_cache import attach_adapters

    loaded = load_model(cfg)
    if adapters:
        attach_adapters(loaded, adapters)
    return loaded


@dataclass
class ComparePool:
    """Loaded models for a set of subjects. `get_base` is the app's model cache in the UI (one
    model in memory); a plain load in the CLI and tests."""

    store: Store
    workspace: Workspace
    get_base: GetBase = _load_base
    base: LoadedModel | None = None
    base_cfg: ModelConfig | None = None
    runs: dict[int, RunOutput] = field(default_factory=dict)
    own: dict[int, LoadedModel] = field(default_factory=dict)  # runs with their own weights
    unavailable: dict[str, str] = field(default_factory=dict)  # subject key → why not
    _own_stamps: dict[int, int] = field(default_factory=dict)

    def prepare(self, subjects: Sequence[Subject], base_cfg: ModelConfig | None = None) -> None:
        """Load what `subjects` need. The base is `base_cfg`, else the first run's base."""
        self.unavailable = {}
        outputs = []
        for s in subjects:
            if s.kind == "run" and s.run_id is not None:
                try:
                    outputs.append(run_output(self.store, self.workspace, s.run_id))
                except WorkbenchError as err:
                    self.unavailable[s.key] = str(err)
        base_cfg = base_cfg or (outputs[0].base if outputs else None)
        if base_cfg is None:
            raise WorkbenchError("choose a model or a finished run to compare")
        shared = {o.adapter_name: o.folder for o in outputs
                  if o.kind == "adapter" and _same_base(o.base, base_cfg)}
        self.base = self.get_base(base_cfg, shared)
        self.base_cfg = base_cfg
        self.runs = {o.run_id: o for o in outputs}
        # Drop own copies no longer asked for, or whose run has written new outputs since.
        for run_id in [r for r in self.own
                       if r not in self.runs or self._own_stamps.get(r) != self.runs[r].stamp]:
            del self.own[run_id]
        for o in outputs:
            if o.adapter_name not in shared and o.run_id not in self.own:
                self._load_own(o)

    def release(self) -> None:
        """Drop every model this pool holds (the base stays in the app's cache, if any)."""
        self.base, self.own = None, {}

    def _load_own(self, o: RunOutput) -> None:
        assert self.base is not None
        folder = o.folder if o.kind == "weights" else Path(load_model_folder(o.base))
        need = folder_bytes(o.folder) + (folder_bytes(folder) if o.kind == "adapter" else 0)
        free = free_memory(self.base.device)
        if need > MEMORY_HEADROOM * free:
            self.unavailable[f"run:{o.run_id}"] = (
                f"{o.label} has its own weights ({format_bytes(need)}) and only "
                f"{format_bytes(free)} is free on {self.base.device}; compare it alone with the "
                "base, or close other programs")
            return
        self.own[o.run_id] = load_outputs(o.folder.parent, device=self.base.device)
        self._own_stamps[o.run_id] = o.stamp

    def label(self, subject: Subject) -> str:
        if subject.kind == "run":
            o = self.runs.get(subject.run_id or -1)
            return o.label if o else f"Run {subject.run_id}"
        return {"base": "Base", "in_context": "In context", "retrieval": "Retrieval"}[subject.kind]

    def _route(self, subject: Subject) -> tuple[LoadedModel, str | None, bool]:
        """(model, adapter name or None for the bare base, may share a mixed batch)."""
        assert self.base is not None
        if subject.kind != "run":
            return self.base, None, True
        if subject.key in self.unavailable or subject.run_id not in self.runs:
            raise WorkbenchError(self.unavailable.get(subject.key, f"run {subject.run_id} is not loaded"))
        if subject.run_id in self.own:
            own = self.own[subject.run_id]  # an adapter on another base loads as "default"
            return own, "default" if _is_peft(own.model) else None, False
        o = self.runs[subject.run_id]
        return self.base, o.adapter_name, not o.dora

    def generate(self, requests: Sequence[tuple[Subject, Messages]], sampling: Sampling, *,
                 on_text: Callable[[int, str], None] | None = None, batched: bool = True,
                 batch_size: int = 16) -> list[str]:
        """One reply per (subject, conversation). `batched=False` generates each subject on
        its own (adapter switched on or off): the reference the mixed batch must equal."""
        routes = [self._route(subject) for subject, _messages in requests]
        groups: dict[tuple[int, str], list[int]] = {}
        for i, (loaded, adapter, mixes) in enumerate(routes):
            group = "mixed" if batched and mixes else f"alone:{adapter}"
            groups.setdefault((id(loaded), group), []).append(i)
        replies = [""] * len(requests)
        for (_model, group), indices in groups.items():
            loaded, adapter, _ = routes[indices[0]]
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                names = None
                if group == "mixed" and _is_peft(loaded.model):
                    names = [routes[i][1] or "__base__" for i in chunk]
                with _adapter_state(loaded.model, adapter, mixed=names is not None):
                    texts = self._generate_chunk(loaded, [requests[i][1] for i in chunk],
                                                 sampling, names, chunk, on_text)
                for i, text in zip(chunk, texts):
                    replies[i] = text
        return replies

    @staticmethod
    def _generate_chunk(loaded: LoadedModel, conversations: list[Messages], sampling: Sampling,
                        names: list[str] | None, rows: list[int],
                        on_text: Callable[[int, str], None] | None) -> list[str]:
        import torch

        tok = loaded.tokenizer
        def on_tokens(row: int, ids: list[int]) -> None:
            assert on_text is not None
            on_text(rows[row], decode_reply(tok, ids, first_line_only=sampling.first_line_only))
        if not sampling.greedy:
            torch.manual_seed(sampling.seed)
        prompts = [prompt_ids(tok, c) for c in conversations]
        _check_fits(loaded, prompts)
        ids = generate_ids(loaded, prompts,
                           max_new_tokens=sampling.max_new_tokens, do_sample=not sampling.greedy,
                           temperature=max(sampling.temperature, 1e-5), top_p=sampling.top_p,
                           adapter_names=names, on_tokens=on_tokens if on_text else None)
        return [decode_reply(tok, r, first_line_only=sampling.first_line_only) for r in ids]


def _check_fits(loaded: LoadedModel, prompts: Sequence[list[int]]) -> None:
    """Refuse a prompt longer than the model's context: past it, a model with learned
    positions fails with an IndexError and the others answer noise, slowly."""
    limit = context_budget(loaded.model, loaded.tokenizer, reserve=0)
    longest = max((len(ids) for ids in prompts), default=0)
    if longest > limit:
        raise WorkbenchError(f"the conversation is {longest} tokens, more than the {limit} "
                             "this model reads", hint="clear the chat to start over, or "
                             "shorten the question or the system prompt")


def load_model_folder(cfg: ModelConfig) -> str:
    from workbench.core.models import resolve_source

    return resolve_source(cfg.name_or_path, cfg.revision).location


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config")


@contextlib.contextmanager
def _adapter_state(model: Any, adapter: str | None, *, mixed: bool) -> Iterator[None]:
    """Outside mixed batches: the named adapter alone, or (None) the bare base."""
    if mixed or not _is_peft(model):
        yield
    elif adapter is None:
        with model.disable_adapter():
            yield
    else:
        model.set_adapter(adapter)
        yield
