"""The file side of checkpoints: durable writes (fsync of files and folders), safetensors and
JSON files, and the JSON encoding of state dicts (tensors moved to a safetensors file and
referenced by name), so a checkpoint holds no pickle and loading one can never run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Markers of the JSON encoding of values that JSON has no type for.
_TENSOR, _TUPLE, _DICT = "tensor", "tuple", "dict"


# --- durable writes ----------------------------------------------------------------------------

def fsync_file(path: Path) -> None:
    # "r+b" rather than "rb": Windows only flushes a handle opened for writing.
    with open(path, "r+b") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make renames and new entries in `path` durable. Windows cannot open a folder; there the
    rename is already as durable as the file system makes it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (network mounts) refuse fsync on a folder
    finally:
        os.close(fd)


def write_json(path: Path, value: Any) -> None:
    # allow_nan: a ReduceLROnPlateau state holds inf, and Python's json reads it back.
    path.write_text(json.dumps(value, indent=1, allow_nan=True), encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def save_tensors(tensors: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path))


def load_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def cpu_copy(tensor: Any) -> Any:
    """A contiguous CPU tensor that owns its memory. safetensors refuses tensors that share
    storage (tied embeddings, views), so everything is copied; this costs one host copy of the
    checkpoint at a time, which for LoRA is a few MB."""
    return tensor.detach().to("cpu", copy=True).contiguous()


# --- JSON encoding of state dicts --------------------------------------------------------------

def encode(value: Any, name: str, tensors: dict[str, Any]) -> Any:
    """`value` as JSON, with every tensor moved to `tensors[name...]` and left as a reference.

    Tuples and dicts are tagged so that they come back as tuples and dicts (AdamW's `betas` is a
    tuple). Raises TypeError for anything else JSON cannot hold.
    """
    import torch

    if isinstance(value, torch.Tensor):
        tensors[name] = cpu_copy(value)
        return {_TENSOR: name}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [encode(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {_DICT: {k: encode(v, f"{name}.{k}", tensors) for k, v in value.items()}}
    raise TypeError(f"{name}: a {type(value).__name__} cannot be stored in a checkpoint")


def decode(value: Any, tensors: dict[str, Any], device: Any = None) -> Any:
    if isinstance(value, list):
        return [decode(v, tensors, device) for v in value]
    if not isinstance(value, dict):
        return value
    if _TENSOR in value:
        tensor = tensors[value[_TENSOR]]
        return tensor.to(device) if device is not None else tensor
    if _TUPLE in value:
        return tuple(decode(v, tensors, device) for v in value[_TUPLE])
    return {k: decode(v, tensors, device) for k, v in value[_DICT].items()}
