"""GGUF files in: the model files Ollama, LM Studio and llama.cpp users already have.

A `.gguf` path given wherever a model is asked for (`model.name_or_path`, the Method tab's
model box, `--model`) is dequantized once through transformers' GGUF support (the `gguf`
package reads the file) and saved as an ordinary Hugging Face folder (safetensors, tokenizer,
chat template) in a cache; every later load reads that folder, which takes seconds instead of
a dequantization pass. The cache key is the file's absolute path, size and modification time,
so a replaced file is converted again.

Why not train on the GGUF tensors directly: they are block-quantized for inference (Q4_K,
Q8_0, …), with no gradients and no peft support; the dequantized weights (float32, about
4 bytes a parameter on disk) are what LoRA, QLoRA (re-quantized to NF4 by bitsandbytes) and
full fine-tuning need.

Every way a file can be unusable (not GGUF, truncated, an architecture or quantization type
transformers cannot read back) is one `ModelLoadError` line naming it and what is supported;
nothing is left half-written in the cache (a folder is renamed into place when complete).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from workbench.core.errors import ModelLoadError
from workbench.core.progress import Progress, no_progress

GGUF_MAGIC = b"GGUF"
CACHE_ENV = "WORKBENCH_CACHE"
_COMPLETE = ".workbench-import-complete"  # written last: a folder without it is ignored
# Keys of transformers' GGUF mapping that are not model architectures.
_NOT_ARCHITECTURES = {"general", "tokenizer", "tokenizer_config"}
log = logging.getLogger("workbench.models")


def is_gguf_path(text: str) -> bool:
    return text.strip().lower().endswith(".gguf")


def starts_as_gguf(path: Path) -> bool:
    """A regular file that begins with the GGUF signature (whatever its name)."""
    try:
        with path.open("rb") as handle:
            return path.is_file() and handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def cache_root() -> Path:
    """Where converted models live: `$WORKBENCH_CACHE`, else the user's cache folder."""
    base = os.environ.get(CACHE_ENV) or os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    root = Path(base).expanduser()
    return root if os.environ.get(CACHE_ENV) else root / "knowledge-workbench"


def supported_architectures() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in _NOT_ARCHITECTURES)


def supported_quant_types() -> list[str]:
    """GGML tensor types the `gguf` package can dequantize (plus the plain float types)."""
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits

    plain = {GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16}
    return sorted(t.name for t in plain | set(_type_traits))


def inspect_gguf(path: Path) -> dict[str, Any]:
    """Architecture, name and tensor types of a GGUF file, refusing what cannot be imported.
    Reads the header and tensor index only (memory-mapped), not the weights."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise ModelLoadError(f"cannot read {path}: {err.strerror or err}") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path.name} is not a GGUF file (it does not start with the "
                             "GGUF signature)",
                             hint="export the model from Ollama/LM Studio/llama.cpp again, or "
                                  "pass a Hugging Face model folder")
    from gguf import GGUFReader

    size = path.stat().st_size
    try:
        reader = GGUFReader(path)
        tensors = [(t.name, t.tensor_type, int(t.data_offset), int(t.n_bytes))
                   for t in reader.tensors]
    except (ValueError, IndexError, KeyError, OSError, EOFError) as err:
        raise ModelLoadError(f"{path.name} is truncated or damaged ({_short(err)})",
                             hint="download or copy the file again") from None
    # A cut file whose index survived still points past its end.
    if not tensors or any(offset + n > size for _, _, offset, n in tensors):
        raise ModelLoadError(f"{path.name} is truncated: its tensor data ends before the "
                             "file's index says it should", hint="download or copy the file again")
    arch = _field_text(reader, "general.architecture")
    supported = supported_architectures()
    if arch not in supported:
        raise ModelLoadError(
            f"{path.name} is a {arch or 'unnamed'} model, which transformers cannot read from "
            f"GGUF; supported architectures: {', '.join(supported)}",
            hint="use the model's Hugging Face folder or hub id instead")
    known = set(supported_quant_types())
    bad = sorted({t.name for _, t, _, _ in tensors if t.name not in known})
    if bad:
        raise ModelLoadError(
            f"{path.name} holds tensors quantized as {', '.join(bad)}, which the gguf package "
            f"cannot dequantize; supported types: {', '.join(sorted(known))}",
            hint="export another quantization (Q8_0, Q4_K_M, F16) of the model")
    return {"architecture": arch, "name": _field_text(reader, "general.name"),
            "tensors": len(tensors),
            "types": sorted({t.name for _, t, _, _ in tensors}), "bytes": size}


def _field_text(reader: Any, key: str) -> str:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return ""
    try:
        return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    except (TypeError, ValueError):
        return ""


def _short(err: BaseException) -> str:
    return (str(err).strip() or type(err).__name__).splitlines()[0][:160]


def cached_folder(path: Path) -> Path:
    """The cache folder for this exact file (path, size, mtime)."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_root() / "gguf" / f"{path.stem}-{key[:12]}"


def import_gguf(path: str | Path, *, progress: Progress = no_progress) -> Path:
    """The Hugging Face folder for a GGUF file, converting it on first use."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"no GGUF file at {path}",
                             hint="check the path; Ollama keeps its models as blobs under "
                                  "~/.ollama/models, LM Studio under ~/.lmstudio/models")
    target = cached_folder(path)
    if (target / _COMPLETE).is_file():
        return target
    info = inspect_gguf(path)
    progress(0.05, f"converting {path.name} ({info['architecture']}, "
                   f"{'/'.join(info['types'])}) once into a Hugging Face folder")
    log.info("importing %s into %s (first use only)", path.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed when complete: a crash or a full disk mid-way
    # leaves only a temp folder, never a cache entry that looks usable.
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _convert(path, work, progress)
        (work / _COMPLETE).write_text(path.name, encoding="utf-8")
        if target.exists():  # an incomplete earlier attempt
            shutil.rmtree(target, ignore_errors=True)
        work.replace(target)
    except OSError as err:
        raise ModelLoadError(f"cannot write the converted model to {target.parent}: "
                             f"{err.strerror or err}",
                             hint=f"free disk space (about 4 bytes per parameter) or set "
                                  f"${CACHE_ENV} to another folder") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress(1.0, f"converted {path.name}")
    return target


def read_gguf(path: Path, *, dtype: Any = None, progress: Progress = no_progress
              ) -> tuple[Any, Any]:
    """(model, tokenizer) of a GGUF file, dequantized in memory (float32 unless `dtype`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    try:
        progress(0.1, "reading the tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        progress(0.2, "dequantizing the weights")
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                     dtype=dtype or torch.float32)
    except (ValueError, KeyError, OSError, RuntimeError, NotImplementedError) as err:
        raise ModelLoadError(f"transformers cannot convert {name}: {_short(err)}",
                             hint="use the model's Hugging Face folder or hub id instead") from None
    # The weights are plain float tensors now; transformers still marks the model as
    # "quantized with gguf" and refuses to save it, so the marker goes.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _convert(path: Path, out: Path, progress: Progress) -> None:
    model, tokenizer = read_gguf(path, progress=progress)
    progress(0.8, "saving safetensors")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
