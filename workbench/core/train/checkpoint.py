"""Resumable training checkpoints in a run folder, safe against a crash at any moment.

A checkpoint is ``RUN/checkpoints/step-00000050/``:

- ``trainable.safetensors``: the parameters that train (the LoRA weights of a peft model, every
  weight in full fine-tuning), by their names in ``model.named_parameters()``;
- ``optimizer.safetensors`` + ``optimizer.json``: the optimizer state flattened into tensors and
  JSON, with the parameter names in optimizer order so a resume into another model is caught;
- ``scheduler.json``: the LR scheduler state; ``rng.safetensors``: the torch RNG states;
- ``state.json``: the caller's loop state (step, epoch, batch sizes, best scores, ...);
- ``COMPLETE``: written last, a manifest of every file and its byte size.

Only safetensors and JSON are written, so loading a checkpoint can never run code, and a file
from an untrusted run folder is as safe to open as a CSV.

Crash safety: everything is written into a hidden sibling ``.step-00000050.partial/``, fsynced,
the manifest last, and the folder is renamed into place in one step. A folder under its final
name therefore always holds a complete checkpoint; `latest_complete` also re-checks the manifest
so that a truncated file (a full disk, a copy cut short) is skipped rather than loaded.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.errors import WorkbenchError
# Under their old private names: tests patch `checkpoint._save_tensors` to slow a save down.
from workbench.core.train.checkpoint_io import (cpu_copy as _cpu_copy, decode as _decode,
                                                encode as _encode, fsync_dir as _fsync_dir,
                                                fsync_file as _fsync_file,
                                                load_tensors as _load_tensors,
                                                read_json as _read_json,
                                                save_tensors as _save_tensors,
                                                write_json as _write_json)

CHECKPOINTS = "checkpoints"
MANIFEST = "COMPLETE"
FORMAT = 1

TRAINABLE = "trainable.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
SCHEDULER_JSON = "scheduler.json"
RNG = "rng.safetensors"
STATE_JSON = "state.json"

_STEP_DIR = re.compile(r"step-(\d+)")
_SCRATCH_PREFIX = "."  # partial and replaced folders are hidden; nothing ever loads them


@dataclass(frozen=True)
class Gathered:
    """Whole tensors of a sharded model: its trainable weights by parameter name and the
    optimizer state in `optimizer.state_dict()`'s layout."""

    trainable: dict[str, Any]
    optimizer: dict[str, Any] | None


# Given the trainable weights and optimizer state read from a checkpoint, put them into the
# model and optimizer (`_load_plain` in one process; `sharding.load_full` when sharded).
Apply = Callable[[Any, Any, dict[str, Any], "dict[str, Any] | None"], None]


# --- names and paths ---------------------------------------------------------------------------

def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def _step_of(path: Path) -> int | None:
    match = _STEP_DIR.fullmatch(path.name)
    return int(match.group(1)) if match else None


# --- what goes into a checkpoint ---------------------------------------------------------------

def _trainable_tensors(model: Any) -> dict[str, Any]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _optimizer_params(optimizer: Any) -> list[Any]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def optimizer_param_names(model: Any, optimizer: Any) -> list[str | None]:
    """The model's name of every parameter the optimizer steps, in the optimizer's order (the
    order its state dict numbers them). None for a parameter the model does not name."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names.get(id(p)) for p in _optimizer_params(optimizer)]


def _flatten_optimizer(model: Any, optimizer: Any,
                       sd: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, JSON) for `sd` (default `optimizer.state_dict()`). Tensors keep their dtype and
    shape, so 0-dim float32 `step` counters and 8-bit optimizers' uint8 state with float absmax
    come back as they were."""
    sd = optimizer.state_dict() if sd is None else sd
    tensors: dict[str, Any] = {}
    try:
        state = [[int(index), {key: _encode(value, f"state.{index}.{key}", tensors)
                               for key, value in per_param.items()}]
                 for index, per_param in sd["state"].items()]
        groups = [{key: _encode(value, f"param_groups.{g}.{key}", tensors)
                   for key, value in group.items()}
                  for g, group in enumerate(sd["param_groups"])]
    except TypeError as err:
        raise WorkbenchError(f"cannot checkpoint the optimizer state: {err}") from None
    meta = {"format": FORMAT, "type": type(optimizer).__name__, "state": state,
            "param_groups": groups, "param_names": optimizer_param_names(model, optimizer)}
    return tensors, meta


def _scheduler_json(scheduler: Any) -> dict[str, Any]:
    """The scheduler state with what JSON cannot hold dropped (and listed under "dropped").

    transformers' schedulers are LambdaLR over a `functools.partial`, whose state dict stores
    `lr_lambdas` as the partial's `__dict__` (``{}``), or None for a plain function; the
    lambdas themselves are rebuilt by the caller, so nothing needed to resume is lost.
    """
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in scheduler.state_dict().items():
        found: dict[str, Any] = {}  # scheduler.json has no tensor file beside it
        try:
            encoded = _encode(value, key, found)
        except TypeError:
            found[key] = value
        if found:
            dropped.append(key)  # an object or a tensor; LambdaLR and its kin keep neither
        else:
            kept[key] = encoded
    return {"format": FORMAT, "type": type(scheduler).__name__, "state": kept, "dropped": dropped}


def _rng_tensors() -> dict[str, Any]:
    import torch

    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    return tensors


# --- save --------------------------------------------------------------------------------------

def _write_files(folder: Path, model: Any, optimizer: Any, scheduler: Any,
                 state: dict[str, Any], gathered: Gathered | None) -> list[str]:
    written = [TRAINABLE]
    trainable = gathered.trainable if gathered else _trainable_tensors(model)
    _save_tensors({name: _cpu_copy(t) for name, t in trainable.items()}, folder / TRAINABLE)
    if optimizer is not None:
        tensors, meta = _flatten_optimizer(model, optimizer,
                                           gathered.optimizer if gathered else None)
        _save_tensors(tensors, folder / OPTIMIZER_TENSORS)
        _write_json(folder / OPTIMIZER_JSON, meta)
        written += [OPTIMIZER_TENSORS, OPTIMIZER_JSON]
    if scheduler is not None:
        _write_json(folder / SCHEDULER_JSON, _scheduler_json(scheduler))
        written.append(SCHEDULER_JSON)
    _save_tensors(_rng_tensors(), folder / RNG)
    _write_json(folder / STATE_JSON, state)
    return written + [RNG, STATE_JSON]


def _write_manifest(folder: Path, step: int, files: list[str]) -> None:
    for name in files:
        _fsync_file(folder / name)  # the data is on disk before the manifest says it is
    manifest = {"format": FORMAT, "step": step,
                "files": {name: (folder / name).stat().st_size for name in files}}
    _write_json(folder / MANIFEST, manifest)
    _fsync_file(folder / MANIFEST)
    _fsync_dir(folder)


def _move_into_place(partial: Path, final: Path) -> None:
    """Rename `partial` to `final`. A folder of the same step (a rerun of that step) is first
    renamed aside, which is instant, and only then deleted, so the time with no checkpoint of
    this step is one rename, not the deletion of a large folder."""
    if final.exists():
        aside = final.with_name(f"{_SCRATCH_PREFIX}{final.name}.replaced")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
        os.replace(partial, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(partial, final)
    _fsync_dir(final.parent)


def save_checkpoint(run_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any,
                    state: dict[str, Any], *, gathered: Gathered | None = None) -> Path:
    """Write a checkpoint of `step` and return its folder; it exists only once complete.

    `optimizer`/`scheduler` may be None. `gathered`: the trainable weights and optimizer state
    already gathered whole from a sharded model (`sharding`), written instead of the model's
    own (which are slices); the files are the same either way. Cost: one CPU copy of the
    trainable weights and the optimizer state (3x the trainable weights for AdamW) and their
    write with fsync.
    """
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    partial = root / f"{_SCRATCH_PREFIX}{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # left by a save that crashed
    partial.mkdir()
    try:
        files = _write_files(partial, model, optimizer, scheduler, state, gathered)
        _write_manifest(partial, step, files)
        _move_into_place(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


# --- find --------------------------------------------------------------------------------------

def _manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of `path` if it and every file it lists (with its size) are intact."""
    try:
        manifest = _read_json(path / MANIFEST)
        files = manifest["files"]
        for name, size in files.items():
            if (path / name).stat().st_size != size:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest


def _step_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every final-named checkpoint folder, newest first, intact or not."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(_step_of(p), p) for p in root.iterdir() if p.is_dir()]
    return sorted(((s, p) for s, p in found if s is not None), reverse=True)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Every intact checkpoint folder, newest first."""
    return [p for _, p in _step_dirs(run_dir) if _manifest(p) is not None]


def latest_complete(run_dir: Path) -> Path | None:
    """The newest intact checkpoint, or None. Partial folders and folders whose manifest is
    missing, unreadable or disagrees with a file's size are passed over."""
    for _, path in _step_dirs(run_dir):
        if _manifest(path) is not None:
            return path
    return None


def checkpoint_state(path: Path) -> dict[str, Any]:
    """The loop state a checkpoint was saved with (`state.json`), without loading it: a resume
    reads its step size before building the loop."""
    state: dict[str, Any] = _read_json(Path(path) / STATE_JSON)
    return state


# --- load --------------------------------------------------------------------------------------

def _load_trainable(path: Path, model: Any) -> dict[str, Any]:
    """The checkpoint's trainable weights, checked against the model's (names, shapes, dtypes)."""
    saved = _load_tensors(path / TRAINABLE)
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing = sorted(set(saved) - set(params))
    if missing:
        raise WorkbenchError(
            f"checkpoint {path.name} has {len(missing)} trainable weights the model lacks, "
            f"e.g. {missing[0]}", hint="resume with the model and method the run started with")
    extra = sorted(set(params) - set(saved))
    if extra:
        raise WorkbenchError(
            f"the model has {len(extra)} trainable weights checkpoint {path.name} lacks, "
            f"e.g. {extra[0]}", hint="resume with the model and method the run started with")
    # In model order, so the first one named is the first layer's (q_proj before down_proj).
    differ = [name for name, p in params.items()
              if tuple(p.shape) != tuple(saved[name].shape) or p.dtype != saved[name].dtype]
    if differ:
        name, tensor, param = differ[0], saved[differ[0]], params[differ[0]]
        more = f" (and {len(differ) - 1} more)" if len(differ) > 1 else ""
        raise WorkbenchError(
            f"checkpoint {path.name}: {name}{more} is {tuple(tensor.shape)} {tensor.dtype} there "
            f"but {tuple(param.shape)} {param.dtype} in the model",
            hint="resume with the settings the run started with (LoRA rank, dtype)")
    return saved


def _load_plain(model: Any, optimizer: Any, trainable: dict[str, Any],
                optimizer_state: dict[str, Any] | None) -> None:
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in trainable.items():
            params[name].copy_(tensor)
    if optimizer is not None and optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)


def _load_optimizer(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """The checkpoint's optimizer state in `optimizer.state_dict()`'s layout, its parameters
    checked against the optimizer's."""
    meta = _read_json(path / OPTIMIZER_JSON)
    names = optimizer_param_names(model, optimizer)
    if meta["param_names"] != names:
        diff = next((i for i, (a, b) in enumerate(zip(meta["param_names"], names)) if a != b),
                    min(len(names), len(meta["param_names"])))
        raise WorkbenchError(
            f"checkpoint {path.name}: the optimizer stepped {len(meta['param_names'])} parameters, "
            f"this one steps {len(names)}; they first differ at position {diff}",
            hint="resume with the model and method the run started with")
    tensors = _load_tensors(path / OPTIMIZER_TENSORS)
    params = _optimizer_params(optimizer)
    # torch moves state to each parameter's device itself, but only after building it on the
    # device it was given; putting it there directly spares a second copy.
    state = {index: {key: _decode(value, tensors, params[index].device)
                     for key, value in per_param.items()}
             for index, per_param in meta["state"]}
    groups = [{key: _decode(value, tensors) for key, value in group.items()}
              for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _load_scheduler(path: Path, scheduler: Any) -> None:
    meta = _read_json(path / SCHEDULER_JSON)
    scheduler.load_state_dict({key: _decode(value, {}) for key, value in meta["state"].items()})


def _restore_rng(path: Path) -> None:
    import torch

    tensors = _load_tensors(path / RNG)
    torch.set_rng_state(tensors["cpu"])
    if torch.cuda.is_available():
        # A resume on a machine with fewer GPUs restores those it has.
        for i in range(torch.cuda.device_count()):
            if f"cuda.{i}" in tensors:
                torch.cuda.set_rng_state(tensors[f"cuda.{i}"], i)


def load_checkpoint(path: Path, model: Any, optimizer: Any = None, scheduler: Any = None, *,
                    apply: Apply | None = None) -> dict[str, Any]:
    """Restore the weights, optimizer, scheduler and RNG from the checkpoint at `path` into
    objects built as for the original run, and return its `state.json`. `optimizer` and
    `scheduler` may be None (then skipped). `apply` puts the weights and optimizer state in
    (default: copied into the parameters, as one process holds them)."""
    path = Path(path)
    manifest = _manifest(path)
    if manifest is None:
        raise WorkbenchError(f"checkpoint {path} is incomplete or damaged",
                             hint="resume from an earlier checkpoint")
    files = manifest["files"]
    trainable = _load_trainable(path, model)
    optimizer_state = None
    if optimizer is not None:
        if OPTIMIZER_JSON not in files:
            raise WorkbenchError(f"checkpoint {path.name} was saved without an optimizer state")
        optimizer_state = _load_optimizer(path, model, optimizer)
    (apply or _load_plain)(model, optimizer, trainable, optimizer_state)
    if scheduler is not None:
        if SCHEDULER_JSON not in files:
            raise WorkbenchError(f"checkpoint {path.name} was saved without a scheduler state")
        _load_scheduler(path, scheduler)
    _restore_rng(path)
    return checkpoint_state(path)


# --- prune -------------------------------------------------------------------------------------

def prune_checkpoints(run_dir: Path, keep: int = 2) -> None:
    """Delete all but the newest `keep` intact checkpoints, damaged ones, and the leftovers of
    interrupted saves. Call it between saves: it would delete a save in progress."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return
    kept = set(complete_checkpoints(run_dir)[:keep])
    for _, path in _step_dirs(run_dir):
        if path not in kept:
            shutil.rmtree(path, ignore_errors=True)
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith(f"{_SCRATCH_PREFIX}step-"):
            shutil.rmtree(path, ignore_errors=True)
