"""Write a transformers model folder as one GGUF file, for llama.cpp, Ollama and LM Studio.

Everything llama.cpp's own converter (`convert_hf_to_gguf.py`) writes for these architectures,
built from the libraries that define it rather than re-typed here:

- tensor names from the `gguf` package's map (`get_tensor_name_map`, the one llama.cpp keeps);
- the architecture's metadata keys from transformers' GGUF mapping (`GGUF_CONFIG_MAPPING`),
  read backwards: the keys transformers reads a GGUF config from are the ones written;
- the tokenizer as llama.cpp stores it (`tokenizer.ggml.*`): byte-level BPE as "gpt2" with its
  merges and pre-tokenizer name, sentencepiece-style BPE (byte fallback) as "llama" with
  scores and token types; special ids, whether BOS is added, and the chat template;
- the two weight rewrites llama.cpp applies and transformers undoes on reading: Llama's query
  and key rows permuted to llama.cpp's rotary layout, Gemma's norm weights stored plus one.

Tensors stream one at a time from the folder's safetensors: the header and index are written
first from shapes alone, then each tensor is read, rewritten, converted (f16, or q8_0 by the
`gguf` package's own quantizer) and appended. Peak memory is one tensor, whatever the model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.errors import WorkbenchError
from workbench.core.progress import Progress, no_progress

# transformers model_type → the architecture llama.cpp names it (Mistral is written as Llama).
ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
                 "gemma2": "gemma2", "gemma3": "gemma3", "gemma3_text": "gemma3"}
GGUF_TYPES = ("f16", "q8_0")
_Q8_BLOCK, _Q8_BLOCK_BYTES = 32, 34  # q8_0: 32 weights in 34 bytes (an f16 scale + 32 int8)
# Metadata keys that are floats; every other architecture key is an unsigned count.
_FLOAT_KEYS = ("rope.freq_base", "attention.layer_norm_rms_epsilon")
# The names llama.cpp gives the pre-tokenizer split regexes transformers knows (the first
# name of each is the one llama.cpp's converter writes).
_PREFERRED_PRE = ("llama-bpe", "qwen2", "tekken", "gpt-4o", "qwen35")


class UnsupportedArchitecture(WorkbenchError):
    """The model's architecture has no GGUF layout here (the merged folder is still usable)."""


@dataclass(frozen=True)
class PlannedTensor:
    source: str  # the name in the safetensors files ('' for a tensor computed here)
    file: str  # the safetensors file that holds it
    name: str  # the GGUF name
    shape: tuple[int, ...]
    kind: str  # "f32" | "f16" | "q8_0"

    @property
    def nbytes(self) -> int:
        count = math.prod(self.shape)
        if self.kind == "q8_0":
            return count // _Q8_BLOCK * _Q8_BLOCK_BYTES
        return count * (4 if self.kind == "f32" else 2)


def supported() -> list[str]:
    return sorted(ARCHITECTURES)


def gguf_arch(config: Any) -> str:
    model_type = getattr(config, "model_type", "")
    if model_type not in ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"GGUF export does not support {model_type or 'this'} models; supported: "
            f"{', '.join(supported())}",
            hint="the merged folder is written all the same: llama.cpp's convert_hf_to_gguf.py "
                 "may convert it")
    return ARCHITECTURES[model_type]


def plan(folder: Path, config: Any, kind: str) -> list[PlannedTensor]:
    """Every tensor of the folder's safetensors with its GGUF name, shape and type. Matrices
    take `kind`; vectors (norms, biases) stay f32, as llama.cpp keeps them; a matrix whose
    rows do not split into q8_0's blocks of 32 falls back to f16."""
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map

    arch = gguf_arch(config)
    key = next(k for k, v in MODEL_ARCH_NAMES.items() if v == arch)
    names = get_tensor_name_map(key, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    planned = []
    for source, (file, shape) in _shapes(folder).items():
        stem, _, suffix = source.rpartition(".")
        if tied and stem == "lm_head":
            continue  # llama.cpp reads the embedding as the output head when none is stored
        mapped = names.get_name(stem)
        if mapped is None:
            raise WorkbenchError(f"GGUF export cannot place the tensor {source} of this "
                                 f"{config.model_type} model")
        if len(shape) == 1:
            tensor_kind = "f32"
        elif kind == "q8_0" and shape[-1] % _Q8_BLOCK == 0:
            tensor_kind = "q8_0"
        else:
            tensor_kind = "f16"
        planned.append(PlannedTensor(source, file, f"{mapped}.{suffix}", tuple(shape),
                                     tensor_kind))
    rope = rope_freqs(config)
    if rope is not None:
        planned.append(PlannedTensor("", "", "rope_freqs.weight", (len(rope),), "f32"))
    return planned


def write_gguf(folder: Path, out: Path, kind: str, *, name: str = "",
               progress: Progress = no_progress) -> Path:
    """Write `folder` (a saved transformers model with its tokenizer) to `out` as GGUF."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType
    from transformers import AutoConfig, AutoTokenizer

    if kind not in GGUF_TYPES:
        raise WorkbenchError(f"unknown GGUF type {kind!r}; choose from {', '.join(GGUF_TYPES)}")
    config = AutoConfig.from_pretrained(folder)
    arch = gguf_arch(config)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tensors = plan(folder, config, kind)
    writer = GGUFWriter(out, arch)
    writer.add_name(name or folder.name)
    writer.add_file_type(LlamaFileType.MOSTLY_Q8_0 if kind == "q8_0" else LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(2)
    for key, value, is_float in _arch_metadata(config, arch):
        (writer.add_float32 if is_float else writer.add_uint32)(f"{arch}.{key}", value)
    _add_tokenizer(writer, tokenizer, _embedding_rows(tensors))
    raw = {"f32": GGMLQuantizationType.F32, "f16": GGMLQuantizationType.F16,
           "q8_0": GGMLQuantizationType.Q8_0}
    for t in tensors:
        writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=raw[t.kind])
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, (t, data) in enumerate(zip(tensors, _read(tensors, config, arch))):
            writer.write_tensor_data(_convert(data, t.kind))
            progress((i + 1) / len(tensors), f"{out.name}: {t.name}")
    finally:
        writer.close()
    return out


def _shapes(folder: Path) -> dict[str, tuple[str, list[int]]]:
    """Each tensor of the folder's safetensors: (its file, its shape), from the headers."""
    from safetensors import safe_open

    shapes: dict[str, tuple[str, list[int]]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, "pt") as handle:
            for key in handle.keys():
                shapes[key] = (str(path), list(handle.get_slice(key).get_shape()))
    if not shapes:
        raise WorkbenchError(f"{folder} has no safetensors weights to write as GGUF")
    return shapes


def _read(tensors: list[PlannedTensor], config: Any, arch: str) -> Iterator[Any]:
    """Each planned tensor's data as float32 numpy, rewritten as llama.cpp stores it."""
    import torch
    from safetensors import safe_open

    for t in tensors:
        if not t.source:
            yield rope_freqs(config)
            continue
        with safe_open(t.file, "pt") as handle:
            data = handle.get_tensor(t.source).to(torch.float32)
        yield _rewrite(data, t.name, config, arch).numpy()


def _rewrite(data: Any, name: str, config: Any, arch: str) -> Any:
    if arch == "llama" and (".attn_q." in name or ".attn_k." in name):
        heads = config.num_attention_heads
        if ".attn_k." in name:
            heads = getattr(config, "num_key_value_heads", None) or heads
        # llama.cpp's rotary layout pairs each head's halves the other way round
        # (convert_hf_to_gguf.py LlamaModel.permute; transformers reverses it on reading).
        return (data.reshape(heads, 2, data.shape[0] // heads // 2, *data.shape[1:])
                .swapaxes(1, 2).reshape(data.shape))
    if arch.startswith("gemma") and name.endswith("norm.weight"):
        return data + 1  # llama.cpp's Gemma norms multiply by w where transformers uses 1 + w
    return data


def _convert(data: Any, kind: str) -> Any:
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    if kind == "f32":
        return np.ascontiguousarray(data, dtype=np.float32)
    if kind == "f16":
        return np.ascontiguousarray(data, dtype=np.float16)
    return quantize(np.ascontiguousarray(data, dtype=np.float32), GGMLQuantizationType.Q8_0)


def _embedding_rows(tensors: list[PlannedTensor]) -> int:
    return next(t.shape[0] for t in tensors if t.name == "token_embd.weight")


def _config_value(config: Any, attribute: str) -> Any:
    value = getattr(config, attribute, None)
    if value is None and attribute == "rope_theta":  # transformers 5 keeps it with the rope
        value = (getattr(config, "rope_parameters", None) or {}).get("rope_theta")
    if value is None and attribute == "head_dim":
        value = config.hidden_size // config.num_attention_heads
    return value


def _arch_metadata(config: Any, arch: str) -> Iterator[tuple[str, Any, bool]]:
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    for key, attribute in GGUF_CONFIG_MAPPING[arch].items():
        if attribute is None:
            continue
        value = _config_value(config, attribute)
        if value is None:
            continue  # e.g. no sliding window: llama.cpp's default applies
        is_float = key in _FLOAT_KEYS
        yield key, float(value) if is_float else int(value), is_float
    if arch.startswith("gemma") or arch == "qwen3":
        # llama.cpp reads the head width from these where it is not hidden / heads
        head_dim = int(_config_value(config, "head_dim"))
        if arch == "qwen3":
            yield "attention.key_length", head_dim, False
        yield "attention.value_length", head_dim, False


def rope_freqs(config: Any) -> Any:
    """Llama 3.1+ rotary scaling as llama.cpp applies it: one factor per frequency, stored as
    the `rope_freqs` tensor (convert_hf_to_gguf.py LlamaModel.generate_extra_tensors); None
    for models without llama3-type scaling."""
    import numpy as np

    scaling = (getattr(config, "rope_scaling", None) or getattr(config, "rope_parameters", None)
               or {})
    if str(scaling.get("rope_type", scaling.get("type", ""))).lower() != "llama3":
        return None
    base = _config_value(config, "rope_theta")
    dim = _config_value(config, "head_dim")
    factor = scaling.get("factor", 8.0)
    low, high = scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
    old = scaling.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim)):
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def _add_tokenizer(writer: Any, tokenizer: Any, rows: int) -> None:
    from gguf import TokenType

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend["model"]
    if model.get("type") != "BPE":
        raise WorkbenchError(f"GGUF export supports BPE tokenizers; this one is "
                             f"{model.get('type') or 'unknown'}")
    size = tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True)
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    added = {t["id"]: t for t in backend.get("added_tokens", [])}
    spm = bool(model.get("byte_fallback"))
    types = []
    for i, token in enumerate(tokens):
        if i in added:
            types.append(TokenType.CONTROL if added[i].get("special") else TokenType.USER_DEFINED)
        elif spm and token == tokenizer.unk_token:
            types.append(TokenType.UNKNOWN)
        elif spm and token.startswith("<0x") and token.endswith(">") and len(token) == 6:
            types.append(TokenType.BYTE)
        else:
            types.append(TokenType.NORMAL)
    # The embedding may have more rows than the vocabulary (padded for speed): llama.cpp
    # needs a token per row, so the rest are placeholders that are never produced.
    for i in range(size, rows):
        tokens.append(f"[PAD{i}]")
        types.append(TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("llama" if spm else "gpt2")
    writer.add_tokenizer_pre("default" if spm else _pre_name(backend.get("pre_tokenizer")))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if spm:  # sentencepiece ranks pieces by score: the vocabulary's order, best first
        writer.add_token_scores([-float(i) for i in range(len(tokens))])
    if merges:
        writer.add_token_merges(merges)
    for token, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                       ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
        token_id = getattr(tokenizer, f"{token}_token_id", None)
        if token_id is not None:
            add(int(token_id))
    writer.add_add_bos_token(adds_bos(tokenizer))
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer starts every text with BOS itself (llama.cpp's add_bos_token)."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


def _pre_name(pre: dict[str, Any] | None) -> str:
    """llama.cpp's name for how text is split before BPE: "gpt-2" for plain byte-level,
    the name of a known split regex, else "default"."""
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    if not pre:
        return "default"
    parts = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    for part in parts or []:
        if part.get("type") == "ByteLevel" and part.get("use_regex", True):
            return "gpt-2"
        if part.get("type") == "Split":
            regex = (part.get("pattern") or {}).get("Regex")
            names = [n for n, r in GGUF_PRE_TOKENIZER_SPLITS.items() if r == regex]
            for name in _PREFERRED_PRE:
                if name in names:
                    return name
            if names:
                return names[0]
    return "default"

