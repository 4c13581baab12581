"""Load a causal LM and its tokenizer from a hub id or a local folder.

Works with any Hugging Face causal LM: device and dtype are picked automatically (or as asked),
4-bit NF4 (double quantization) and 8-bit loading go through bitsandbytes (which runs on CPU from
0.50, so QLoRA is testable without a GPU), weights are read from safetensors only (a pickle
`.bin` can run arbitrary code when loaded), and `trust_remote_code` stays off unless the config
asks for it.

Every way loading can fail because of the user's input or environment is turned into one
`ModelLoadError` line that names the problem and the fix.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.core.sections import ModelConfig
from workbench.core.device import memory_in_use, pick_device, pick_dtype
from workbench.core.errors import ModelLoadError
from workbench.core.gguf_import import import_gguf, is_gguf_path, starts_as_gguf
from workbench.core.paths import DEMO_MODEL, DEMO_MODEL_DIR
from workbench.core.progress import Progress, no_progress
from workbench.core.units import format_bytes, format_count  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import torch

# Hub ids are "name" or "owner/name" of letters, digits, '-', '_' and '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9_.\-]+)?$")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
MIN_BNB_CPU = (0, 50)

# Used only when a model ships no chat template (most base models). Plain role headers that
# any tokenizer can encode; the answer ends with EOS so generation stops where training did.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}### Question:\n{{ message['content'] }}\n\n"
    "{% else %}### Answer:\n{{ message['content'] }}{{ eos_token }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Answer:\n{% endif %}"
)


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "local" | "hub"
    location: str  # absolute folder path, or the hub id
    revision: str | None = None
    gguf: str = ""  # the GGUF file the local folder was converted from, if any
    # A hub model's local snapshot folder once fetched (`hub.fetch`): loads read it, so a
    # cached model needs no network. Not part of the identity: the same model either way.
    snapshot: str = field(default="", compare=False)

    @property
    def folder(self) -> str:
        """What transformers loads: the local folder, or the hub id."""
        return self.snapshot or self.location

    @property
    def load_revision(self) -> str | None:
        return None if self.snapshot else self.revision

    def describe(self) -> str:
        if self.gguf:
            return f"GGUF file {self.gguf}"
        return f"folder {self.location}" if self.kind == "local" else f"hub model {self.location}"


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    source: ModelSource
    device: str
    dtype: torch.dtype
    quantization: str  # none | 4bit | 8bit
    chat_template_fallback: bool
    load_seconds: float
    memory_delta: int  # bytes the load added on the device (RSS on CPU)

    @property
    def parameters(self) -> int:
        """Parameter count as the model was defined (4-bit packing stores two per byte)."""
        total = 0
        for p in self.model.parameters():
            n = p.numel()
            # bitsandbytes Params4bit hold packed uint8 data: 2 weights per element.
            total += n * 2 if type(p).__name__ == "Params4bit" else n
        return total

    @property
    def weight_bytes(self) -> int:
        return int(self.model.get_memory_footprint())


def resolve_source(name_or_path: str, revision: str | None = None, *,
                   progress: Progress = no_progress) -> ModelSource:
    """Decide whether `name_or_path` is a local folder, a GGUF file or a hub id, checking what
    we can without loading anything. A GGUF file is converted into a cached folder on first
    use (`gguf_import`), which is the one slow case; `progress` follows it."""
    raw = name_or_path.strip()
    # By name, or by content: Ollama keeps its GGUF files as extension-less blobs.
    if is_gguf_path(raw) or starts_as_gguf(Path(raw).expanduser()):
        folder = import_gguf(raw, progress=progress)
        return ModelSource("local", str(folder), revision, gguf=str(Path(raw).expanduser()))
    if raw == DEMO_MODEL:
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            raise ModelLoadError(f"the embedded demo model is missing from {DEMO_MODEL_DIR}",
                                 hint="rebuild it with: workbench demo build-model")
        return ModelSource("local", str(DEMO_MODEL_DIR.resolve()), revision)
    path = Path(raw).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file, not a model folder or a .gguf file",
                                 hint="pass the folder that holds config.json and the weights, "
                                      "or a .gguf model file")
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"folder {path} has no config.json, so it is not a Hugging Face model folder",
                hint="point to the folder saved by save_pretrained (config.json, "
                "*.safetensors, tokenizer files)",
            )
        return ModelSource("local", str(path.resolve()), revision)
    looks_like_path = raw.startswith((".", "/", "~")) or raw.count("/") > 1 or "\\" in raw
    if looks_like_path or not _HUB_ID.match(raw):
        raise ModelLoadError(
            f"no model folder at {path} and {raw!r} is not a valid hub id",
            hint="give an existing folder, a .gguf file or a hub id like "
                 "Qwen/Qwen2.5-0.5B-Instruct",
        )
    return ModelSource("hub", raw, revision)


ADAPTER_WEIGHTS = "adapter_model.safetensors"


def safe_adapter_dir(folder: str | Path) -> str:
    """`folder` when it holds a peft adapter in safetensors form; otherwise a clear refusal.
    peft would fall back to `adapter_model.bin` through torch.load, i.e. unpickling."""
    folder = Path(folder)
    if (folder / ADAPTER_WEIGHTS).is_file():
        return str(folder)
    pickled = sorted(p.name for p in folder.glob("*") if p.suffix in (".bin", ".pt", ".pth"))
    if pickled:
        raise ModelLoadError(
            f"adapter {folder} has only pickle weights ({', '.join(pickled[:3])}), which can run "
            "code when loaded; Knowledge Workbench loads safetensors only",
            hint="re-save it with peft's save_pretrained (safetensors by default) on a trusted "
                 "machine")
    raise ModelLoadError(f"{folder} holds no adapter ({ADAPTER_WEIGHTS} is missing)",
                         hint="the run may not have finished saving; check its log")


def _check_local_files(folder: Path) -> None:
    names = {p.name for p in folder.iterdir()}
    has_safetensors = any(n.endswith(".safetensors") for n in names)
    pickled = sorted(n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt")))
    if not has_safetensors:
        if pickled:
            raise ModelLoadError(
                f"folder {folder} has only pickle weights ({', '.join(pickled[:3])}), which can "
                "run code when loaded; Knowledge Workbench loads safetensors only",
                hint="convert once with transformers: model.save_pretrained(folder, "
                "safe_serialization=True) on a trusted machine",
            )
        raise ModelLoadError(f"folder {folder} has no *.safetensors weights",
                             hint="save the model with save_pretrained into this folder")
    if not names.intersection(_TOKENIZER_FILES):
        raise ModelLoadError(
            f"folder {folder} has no tokenizer (none of {', '.join(_TOKENIZER_FILES)})",
            hint="copy the tokenizer files of the base model into the folder "
            "(tokenizer.save_pretrained(folder))",
        )


def _fetch_hub_config(source: ModelSource) -> None:
    """Make sure config.json of a hub model is reachable (cached or downloadable), and turn
    every way it is not into a clear message before transformers buries it in a traceback."""
    from huggingface_hub import hf_hub_download

    from workbench.core.hub import hub_errors

    with hub_errors(source.location, source.revision):
        hf_hub_download(source.location, "config.json", revision=source.revision)


def _quiet_optional_kernel_notice() -> None:
    """bitsandbytes logs a warning at import on AVX512-BF16 CPUs when the optional hub-hosted
    `kernels` package is absent; it then falls back to its built-in CPU kernels, which is
    what we want offline. Drop that one message so users do not read it as a failure."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
        lambda record: "kernels-community" not in record.getMessage()
    )


def _quantization_config(quantization: str, device: str, dtype: torch.dtype, *,
                         shardable: bool = False) -> Any:
    if quantization == "none":
        return None
    if device == "mps":
        raise ModelLoadError(f"{quantization} loading is not supported on Apple MPS",
                             hint="set model.quantization to none, or use a CUDA GPU or the CPU")
    _quiet_optional_kernel_notice()
    try:
        import bitsandbytes
    except ImportError as err:
        raise ModelLoadError(f"{quantization} loading needs bitsandbytes, which is not importable "
                             f"({err})", hint="pip install 'bitsandbytes>=0.50'") from None
    version = tuple(int(x) for x in re.findall(r"\d+", bitsandbytes.__version__)[:2])
    if device == "cpu" and version < MIN_BNB_CPU:
        raise ModelLoadError(
            f"bitsandbytes {bitsandbytes.__version__} cannot run {quantization} on the CPU",
            hint="pip install 'bitsandbytes>=0.50', or set model.quantization to none",
        )
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,  # quantizes the quantization constants: ~0.4 bit/param
        bnb_4bit_compute_dtype=dtype,
        # Sharded (FSDP) runs store the packed 4-bit weights in the compute dtype: FSDP
        # shards floating tensors, and uint8 storage would not survive its DTensor conversion
        # (the QLoRA + FSDP recipe). Same bytes, same quantization.
        **({"bnb_4bit_quant_storage": dtype} if shardable else {}),
    )


def _load_tokenizer(source: ModelSource, cfg: ModelConfig) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(
            source.folder, revision=source.load_revision, trust_remote_code=cfg.trust_remote_code
        )
    except (OSError, ValueError, TypeError) as err:
        raise ModelLoadError(
            f"cannot load the tokenizer of {source.describe()}: {_first_line(err)}",
            hint="the model folder or repo must include its tokenizer files",
        ) from None
    return padded(tok)


def padded(tokenizer: Any) -> Any:
    """`tokenizer` with a pad token: batching needs a pad id, and EOS is the usual stand-in
    where the model has none."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _ensure_chat_template(tokenizer: Any) -> bool:
    """Give base models a chat template; returns True when the fallback was installed."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return True


def preload_libraries() -> None:
    """Resolve transformers' and peft's lazy imports once, in one thread. The app's handlers
    run in several threads, and two of them importing from transformers for the first time
    at once can fail ("cannot import name 'AutoTokenizer'"). Costs a few seconds at start."""
    import importlib

    _quiet_optional_kernel_notice()  # peft imports bitsandbytes
    importlib.import_module("peft")
    transformers = importlib.import_module("transformers")
    for name in ("AutoModelForCausalLM", "AutoTokenizer", "PreTrainedModel"):
        getattr(transformers, name)


def load_tokenizer(cfg: ModelConfig, *, progress: Progress = no_progress) -> Any:
    """The model's tokenizer alone (with the chat template the run would use): cheap, for
    counting tokens before a model is loaded."""
    source = resolve_source(cfg.name_or_path, cfg.revision, progress=progress)
    tokenizer = _load_tokenizer(source, cfg)
    _ensure_chat_template(tokenizer)
    return tokenizer


def load_model(cfg: ModelConfig, *, quantization: str | None = None,
               progress: Progress = no_progress, shardable: bool = False) -> LoadedModel:
    """Load model + tokenizer as `cfg` says (`quantization` overrides cfg.quantization, e.g.
    the run's effective quantization for QLoRA). `progress` follows a first-use GGUF import
    or hub download. `shardable`: a 4-bit base is stored so FSDP can shard it."""
    quantization = quantization or cfg.quantization
    source = resolve_source(cfg.name_or_path, cfg.revision, progress=progress)
    if source.kind == "local":
        _check_local_files(Path(source.location))
    else:
        from workbench.core.hub import fetch

        source = replace(source, snapshot=str(fetch(source.location, source.revision, progress)))
    device = pick_device(cfg.device)
    dtype = pick_dtype(device, cfg.dtype)
    quant_config = _quantization_config(quantization, device, dtype, shardable=shardable)
    tokenizer = _load_tokenizer(source, cfg)
    fallback = _ensure_chat_template(tokenizer)

    before = memory_in_use(device)
    started = time.perf_counter()
    model = _load_weights(source, cfg, device, dtype, quant_config, shardable=shardable)
    model.eval()
    return LoadedModel(
        model=model, tokenizer=tokenizer, source=source, device=device, dtype=dtype,
        quantization=quantization, chat_template_fallback=fallback,
        load_seconds=time.perf_counter() - started,
        memory_delta=max(0, memory_in_use(device) - before),
    )


def placement(device: str, *, quantized: bool, shardable: bool = False) -> dict[str, Any]:
    """Where `from_pretrained` puts the weights while loading. On a GPU, straight onto this
    process's own card (LOCAL_RANK under `accelerate launch`; no full copy in RAM first).
    A sharded run's unquantized weights load into RAM instead: FSDP moves each process's
    1/N onto its card, so a model bigger than one card never has to fit on one."""
    if device == "cpu" and not quantized:
        return {}
    if device == "cuda":
        if shardable and not quantized:
            return {}
        return {"device_map": {"": int(os.environ.get("LOCAL_RANK", "0"))}}
    return {"device_map": {"": device}}


def _load_weights(source: ModelSource, cfg: ModelConfig, device: str, dtype: Any,
                  quant_config: Any, *, shardable: bool = False) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = dict(
        revision=source.load_revision,
        dtype=dtype,
        use_safetensors=True,
        trust_remote_code=cfg.trust_remote_code,
    )
    if cfg.attn_implementation != "auto":
        kwargs["attn_implementation"] = cfg.attn_implementation
    if quant_config is not None:
        kwargs["quantization_config"] = quant_config
    kwargs.update(placement(device, quantized=quant_config is not None, shardable=shardable))
    try:
        return AutoModelForCausalLM.from_pretrained(source.folder, **kwargs)
    except torch.OutOfMemoryError:
        raise ModelLoadError(
            f"not enough {device} memory to load {source.describe()}",
            hint="try model.quantization 4bit, a smaller model, or close other GPU programs",
        ) from None
    except (OSError, ValueError, ImportError, KeyError) as err:
        text = _first_line(err)
        if "safetensors" in text.lower():
            raise ModelLoadError(
                f"{source.describe()} has no safetensors weights; pickle weights are refused "
                "because they can run code when loaded",
                hint="use a repo that ships *.safetensors, or convert it on a trusted machine",
            ) from None
        # transformers 4 named the flag; 5 says the repository "contains custom code".
        if "trust_remote_code" in text or "custom code" in text:
            raise ModelLoadError(
                f"{source.describe()} needs its own Python code to load",
                hint="set model.trust_remote_code to true only if you trust its authors",
            ) from None
        raise ModelLoadError(f"cannot load {source.describe()}: {text}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]


def check_model(cfg: ModelConfig, *, quantization: str | None = None,
                progress: Progress = no_progress) -> dict[str, Any]:
    """Load a model and report what a user needs to know: size, precision, device, memory.
    Used by `workbench models check` and the Method tab's "check model" button."""
    loaded = load_model(cfg, quantization=quantization, progress=progress)
    tok = loaded.tokenizer
    return {
        "source": loaded.source.describe(),
        "converted_to": loaded.source.location if loaded.source.gguf else "",
        "architecture": type(loaded.model).__name__,
        "parameters": loaded.parameters,
        "dtype": str(loaded.dtype).removeprefix("torch."),
        "quantization": loaded.quantization,
        "device": loaded.device,
        "weight_bytes": loaded.weight_bytes,
        "memory_delta_bytes": loaded.memory_delta,
        "load_seconds": round(loaded.load_seconds, 2),
        "vocab_size": len(tok),
        "chat_template": "fallback (model has none)" if loaded.chat_template_fallback else "model's own",
    }
