"""How much memory a training run will need, before it starts, from the model's config alone:
weights, trained weights and their gradients, optimizer state, activations and runtime.

The number is the peak the worker's telemetry reports as `mem_peak`: on CUDA
`torch.cuda.max_memory_allocated` (tensors only: no CUDA context, no allocator reserve), on a
CPU the worker process's peak resident set (everything: interpreter, libraries, mapped files,
heap fragmentation). The terms, what each costs and why:

weights
    Every parameter at the load precision (`model.dtype`; auto is float32 on a CPU, bfloat16
    on CUDA, float16 on MPS). A 4-bit (NF4, double-quantized) base stores linear weights at
    ~0.52 byte each (4 bits + an 8-bit absmax per 64 weights + an fp32 constant per 256
    absmaxes); 8-bit at ~1 byte plus an fp32 scale per output row. Embeddings, the output
    head and norms are not quantized, and `prepare_model_for_kbit_training` upcasts them to
    float32, so on a quantized base they cost 4 bytes each.
trained
    What the method adds on top of the weights. LoRA: r·(in + out) adapter weights per
    wrapped linear (all-linear = every nn.Linear except the output head, as peft does;
    otherwise the linears whose name is or ends with a listed name), kept in float32 (peft
    upcasts 16-bit adapters) with float32 gradients: 8 bytes per adapter weight. DoRA adds one
    magnitude per output feature. Full fine-tuning: a gradient per parameter in the model's
    dtype. Located: gradients of the chosen modules of the chosen layers (default: the middle
    layer, as located.py picks it).
optimizer
    AdamW keeps two moments per trained parameter in the parameter's dtype (8 bytes for
    float32 adapters). QLoRA on CUDA uses paged 8-bit AdamW: ~2 bytes per parameter (on a CPU
    the loop uses plain AdamW). On CUDA, torch's foreach AdamW also holds one parameter-sized
    temporary during the step.
activations
    What the backward pass needs, for micro_batch_size × seq_len tokens (batches are padded
    to their longest example). Per decoder layer and token, a Llama-style block saves the
    inputs and outputs of both RMSNorms (inputs upcast to float32), q, k, v and the attention
    output (SDPA keeps no seq² matrix; eager attention does), and four intermediate-size MLP
    tensors (gate, its SiLU, up, their product): 2·q + 2·kv + 4·i + 2·d values at the compute
    precision plus 2·d at float32 (checked against autograd's saved tensors with
    saved_tensors_hooks: exact for LoRA; full fine-tuning adds 2·d, as its norm weights need
    their normalized input; DoRA adds each wrapped linear's base and LoRA outputs). Frozen
    layers below the lowest trained one save nothing. Gradient checkpointing keeps only each
    layer's input (d values) and recomputes one layer at a time. One more layer's worth is the
    backward pass's working set, plus the largest weight-sized temporary (a quantized linear
    dequantized for its matmul; DoRA's per-linear weight norm). The logits cost 10-12 bytes
    per vocabulary entry per token (the head's output, the shifted copy the loss flattens, the
    float32 log-softmax and its gradient): for small models with large vocabularies they
    dominate. Prompt distillation also runs the teacher (the same model, adapters off, no
    grad) on longer prompts: its logits, but no saved activations.
overlap
    The backward pass frees activations layer by layer as it produces gradients, and the
    optimizer step comes after both, so the peak holds about the larger of gradients and
    activations, not their sum: the smaller is subtracted (it matters for full fine-tuning).
loading (CPU)
    transformers maps the safetensors file and, when the dtype matches, uses its pages as the
    weights (no copy). Converting (a bfloat16 checkpoint loaded as float32) holds the file's
    pages beside the converted weights until loading ends: the peak is the larger of that
    and the training terms. Quantizing on load keeps the file mapped for the whole run (the
    unquantized tensors still point into it), so its size stays in the resident set.
runtime
    CPU: the Python interpreter with torch, transformers, peft, accelerate, bitsandbytes and
    the workbench store, as resident in the worker (CPU_RUNTIME, measured). CUDA: only what
    the allocator sees besides the model (cuBLAS workspaces, rounding); the CUDA context is
    not in max_memory_allocated.
heap (CPU)
    glibc's heap fragments under the loop's pattern of freeing activations and allocating
    gradients of other sizes: within a few steps the resident peak holds the live activations
    plus CPU_HEAP_RETAINED times what one step allocates, and then stays. Tensors of 32 MiB
    and more are mapped and unmapped on their own and escape it. Counted in `activations`.

Not modelled: mixture-of-experts routing (every expert counted as if it ran), the memory of
live probes, checkpoints and the final save (telemetry rows are written before them), replay
examples longer than the knowledge set's, and a knowledge set with fewer examples than a
micro batch (the estimate assumes full micro batches).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from workbench.core.config import LORA_FAMILY, ModelConfig, RunConfig
from workbench.core.errors import ConfigError, ModelLoadError
from workbench.core.models import (ModelSource, _fetch_hub_config, _first_line, format_bytes,
                                   format_count, resolve_source)

if TYPE_CHECKING:
    from workbench.core.device import DeviceInfo
    from workbench.core.store import Store

MiB = 2**20

# --- measured constants (CPU: Linux x86_64, Python 3.11, torch 2.13 CPU build, transformers
# 5.23, peft 0.21, accelerate 1.15, bitsandbytes 0.50, glibc malloc, 2 cores) -----------------
# Peak RSS of the background worker (`python -m workbench worker`) training the 64-hidden,
# 2-layer tiny Llama of workbench.testing, whose model terms are ~7 MiB: 455-457 MiB for LoRA
# and full runs alike. ~390 MiB of it is the imports alone (python -c "import torch,
# transformers, peft, accelerate" + the workbench core); the rest is the store, accelerate's
# state and the first step's buffers.
CPU_RUNTIME = 450 * MiB
# glibc's heap keeps freed activation blocks it cannot reuse: measured in the worker on random
# Llamas (hidden 512-1024, 6-8 layers, LoRA, micro batch 4-16, 6-32 steps) the resident peak
# holds the live activations plus 1.2-1.5x the bytes of activations one step allocates (a
# forward without checkpointing: 2.2-2.5x live; with gradient checkpointing, where little is
# live, ~5.5x live). With MALLOC_MMAP_THRESHOLD_=131072 the same runs peak at 1.05x live,
# so the excess is fragmentation, not tensors (that setting costs 18-60 % step time).
CPU_HEAP_RETAINED = 1.3
# glibc serves blocks of 32 MiB and more with their own mmap and unmaps them on free: those
# never fragment the heap (its largest dynamic mmap threshold on 64-bit).
GLIBC_MMAP_MAX = 32 * MiB
# DoRA builds weight-sized temporaries for every wrapped linear in every forward (an identity
# matrix in×in, the LoRA product out×in, the merged weight out×in, all fp32). What the heap
# keeps of their per-step sum varied from ~0.1x (hidden 768) to ~0.5x (hidden 1024) between
# models and runs: a rough middle, the least certain term here.
CPU_DORA_RETAINED = 0.4
# Allocations besides the model that max_memory_allocated counts on CUDA: cuBLAS workspaces
# (up to 32 MiB per handle and stream), block rounding. Not measured (no GPU on the calibration
# machine): a documented guess, small next to any model worth a GPU.
GPU_RUNTIME = 128 * MiB
# Share of the device's memory a run may plan to use: the rest is the OS (CPU), the CUDA
# context and allocator reserve (GPU), and the estimate's own error.
SAFE_SHARE = 0.90

# Bytes per weight of a quantized linear: NF4 = 4 bits + an 8-bit absmax per 64 weights + an
# fp32 second-level constant per 256 blocks (double quantization); int8 = 1 byte (the fp32
# per-row scale is added per output feature).
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
INT8_BYTES = 1.0
PAGED_ADAM8_BYTES = 2.0  # two 8-bit moments (+ a per-2048 block scale, negligible)
# Peak bytes of the loss per vocabulary entry per token, by compute precision: measured as the
# RSS growth of head + shift + cross-entropy + backward on [16, 35, 32000] logits with a fixed
# mmap threshold: 3.1x (fp32) and 2.6x (bf16) the logits' size in fp32.
LOGIT_BYTES = {4: 12, 2: 10}
TEACHER_LENGTH = 1.5  # prompt distillation: teacher prompts carry the fact, ~1.5x the student's
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


# --- the model's shape --------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelShape:
    """What memory depends on, read from the model's config without loading weights."""

    source: str  # "hub model Qwen/..." or "folder /..."
    architecture: str  # LlamaForCausalLM
    total_params: int  # every parameter once (a tied head counts with the embeddings)
    embedding_params: int  # input embeddings
    head_params: int  # the output head; 0 when tied to the embeddings
    linear_params: int  # every nn.Linear but the head, weights + biases
    n_layers: int
    hidden: int
    n_heads: int
    q_dim: int  # heads × head_dim
    kv_dim: int  # key/value heads × head_dim
    intermediate: int
    vocab: int
    stored_dtype: str | None  # the checkpoint's dtype as its config states it
    layers_prefix: str  # "model.layers": the decoder blocks, numbered below it
    head_name: str  # "lm_head"
    linears: tuple[tuple[str, int, int], ...]  # (module name, in, out), the head included
    params: tuple[tuple[str, int], ...]  # (parameter name, count)

    @property
    def other_params(self) -> int:
        """Norms and anything else that is neither embedding, head nor linear."""
        return self.total_params - self.embedding_params - self.head_params - self.linear_params


def model_shape(model_cfg: ModelConfig) -> ModelShape:
    """The shape of `model_cfg`'s model: its config instantiated on the meta device (no
    memory, no weights read), so every count is exact. Cached per model and revision."""
    source = resolve_source(model_cfg.name_or_path, model_cfg.revision)
    stamp = 0.0
    if source.kind == "local":  # a rebuilt folder must not be served from the cache
        stamp = (Path(source.location) / "config.json").stat().st_mtime
    else:
        _fetch_hub_config(source)  # offline / unknown / gated → one clear ModelLoadError
    return _shape(source, model_cfg.trust_remote_code, stamp)


@functools.lru_cache(maxsize=32)
def _shape(source: ModelSource, trust_remote_code: bool, stamp: float) -> ModelShape:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(source.location, revision=source.revision,
                                            trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, ImportError, TypeError) as err:
        text = _first_line(err)
        if "trust_remote_code" in text:
            raise ModelLoadError(f"{source.describe()} needs its own Python code to load",
                                 hint="set model.trust_remote_code to true only if you trust "
                                      "its authors") from None
        raise ModelLoadError(f"cannot read the configuration of {source.describe()}: {text}",
                             hint="check that it is a causal language model") from None
    return _measure(model, config, source)


def _measure(model: Any, config: Any, source: ModelSource) -> ModelShape:
    import torch.nn as nn

    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    names = {id(m): n for n, m in model.named_modules()}
    head_name = names.get(id(head), "") if head is not None else ""
    tied = head is not None and head.weight is embed.weight
    linears = tuple((n, m.in_features, m.out_features) for n, m in model.named_modules()
                    if isinstance(m, nn.Linear))
    linear_params = sum(p.numel() for n, m in model.named_modules()
                        if isinstance(m, nn.Linear) and m is not head for p in m.parameters())
    blocks = max(((n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList)),
                 key=lambda nm: len(nm[1]), default=("", []))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(embed.weight.shape[1])
    heads = int(_first(text, "num_attention_heads", "n_head", default=1))
    head_dim = int(_first(text, "head_dim", default=0) or hidden // heads)
    kv_heads = int(_first(text, "num_key_value_heads", "n_head_kv", default=heads) or heads)
    dtype = getattr(config, "dtype", None)  # transformers 5 reads torch_dtype into it
    return ModelShape(
        source=source.describe(), architecture=type(model).__name__,
        total_params=sum(p.numel() for p in model.parameters()),
        embedding_params=embed.weight.numel(),
        head_params=0 if tied or head is None else sum(p.numel() for p in head.parameters()),
        linear_params=linear_params, n_layers=len(blocks[1]), hidden=hidden, n_heads=heads,
        q_dim=heads * head_dim, kv_dim=kv_heads * head_dim,
        intermediate=int(_first(text, "intermediate_size", "n_inner", default=0) or 4 * hidden),
        vocab=int(embed.weight.shape[0]),
        stored_dtype=str(dtype).removeprefix("torch.") if dtype else None,
        layers_prefix=blocks[0], head_name=head_name, linears=linears,
        params=tuple((n, p.numel()) for n, p in model.named_parameters()),
    )


def _first(config: Any, *names: str, default: Any) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


# --- the estimate ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryEstimate:
    """The predicted peak of a run and its parts, in bytes. `total` is not their plain sum:
    runtime + weights + (loading, when it stays) + the larger of (loading, when it passes) and
    the training terms (trainable + optimizer + activations - overlap)."""

    weights: int
    trainable: int  # adapter weights + gradients (LoRA family), gradients (full, located)
    optimizer: int
    activations: int  # live at the peak, logits included, + the heap a CPU keeps
    logits: int
    overlap: int  # gradients and activations that are never resident at the same time
    loading: int  # CPU: the checkpoint file's pages beside converted or quantized weights
    loading_stays: bool  # quantized on a CPU: the file stays mapped for the whole run
    runtime: int
    total: int
    capacity: int
    device: str  # cpu | cuda | mps
    dtype: str  # the weights' precision: float32, bfloat16, float16, nf4, int8
    method: str
    seq_len: int
    batch: int
    trainable_params: int
    suggestion: str = ""  # '' when it fits, else the first change that makes it fit
    suggested_values: tuple[tuple[str, Any], ...] = ()  # that change as ("training.x", value)

    @property
    def limit(self) -> int:
        return int(self.capacity * SAFE_SHARE)

    @property
    def fits(self) -> bool:
        return self.total <= self.limit

    def lines(self) -> list[str]:
        """The breakdown in plain words, the verdict first (UI and CLI)."""
        where = {"cpu": "RAM", "cuda": "GPU memory", "mps": "unified memory"}[self.device]
        verdict = "fits" if self.fits else f"does not fit (limit {format_bytes(self.limit)})"
        out = [f"estimated peak {format_bytes(self.total)} of {format_bytes(self.capacity)} "
               f"{where}: {verdict}",
               f"weights {format_bytes(self.weights)} ({self.dtype})",
               f"trained weights and gradients {format_bytes(self.trainable)} "
               f"({format_count(self.trainable_params)} parameters, {self.method})",
               f"optimizer state {format_bytes(self.optimizer)}",
               f"activations {format_bytes(self.activations)} (micro batch {self.batch} x "
               f"{self.seq_len} tokens; logits {format_bytes(self.logits)})"]
        if self.overlap >= MiB:
            out.append(f"gradients replace activations in the backward pass: "
                       f"-{format_bytes(self.overlap)}")
        if self.loading_stays:
            out.append(f"checkpoint file kept mapped beside the quantized weights: "
                       f"{format_bytes(self.loading)}")
        elif self.loading > self.trainable + self.optimizer + self.activations - self.overlap:
            out.append(f"loading converts the checkpoint: {format_bytes(self.loading)} extra "
                       f"while loading sets the peak")
        what = "Python and libraries" if self.device == "cpu" else "allocator workspaces"
        out.append(f"runtime {format_bytes(self.runtime)} ({what})")
        if self.suggestion:
            out.append(f"to fit: {self.suggestion}")
        return out


def estimate_memory(cfg: RunConfig, *, device: DeviceInfo | None = None,
                    seq_len: int | None = None, shape: ModelShape | None = None) -> MemoryEstimate:
    """The peak memory of training `cfg` on `device` (default: the device the run would use)
    with batches `seq_len` tokens long (default data.max_seq_len, an upper bound; pass
    `batch_seq_len(...)` for the knowledge set's real length)."""
    if device is None:
        from workbench.core.device import describe_device, pick_device

        device = describe_device(pick_device(cfg.model.device))
    shape = shape or model_shape(cfg.model)
    seq_len = min(seq_len or cfg.data.max_seq_len, cfg.data.max_seq_len)
    estimate = _estimate(cfg, device, seq_len, shape)
    if not estimate.fits:
        label, values, fitted = _suggest(cfg, device, seq_len, shape)
        text = f"{label}: {format_bytes(fitted.total)}" if fitted else label
        estimate = dataclasses.replace(estimate, suggestion=text,
                                       suggested_values=tuple(values.items()))
    return estimate


def _estimate(cfg: RunConfig, device: DeviceInfo, seq_len: int,
              shape: ModelShape) -> MemoryEstimate:
    kind = device.kind
    dtype = _dtype(kind, cfg.model.dtype)
    quant = cfg.effective_quantization
    method = cfg.method.name
    weights = _weight_bytes(shape, dtype, quant)
    trained, param_bytes, grad_bytes = _trained(cfg, shape, dtype)
    trainable = trained * (grad_bytes + (param_bytes if method in LORA_FAMILY else 0))
    optimizer = _optimizer_bytes(cfg, kind, trained, param_bytes)
    batch = cfg.training.micro_batch_size
    act = _activations(cfg, shape, batch * seq_len, _compute_bytes(cfg, kind, dtype), seq_len)
    activations = act.live + (act.heap if kind == "cpu" else 0)
    # The backward pass frees activations as it makes gradients: only the live part overlaps
    # (a CPU heap's fragments stay resident).
    overlap = min(trained * grad_bytes, act.live)
    loading = _loading_bytes(shape, dtype, quant) if kind == "cpu" else 0
    stays = loading > 0 and quant != "none"  # unquantized tensors keep the file mapped
    runtime = CPU_RUNTIME if kind == "cpu" else GPU_RUNTIME
    training = trainable + optimizer + activations - overlap
    total = runtime + weights + (loading + training if stays else max(loading, training))
    return MemoryEstimate(
        weights=weights, trainable=trainable, optimizer=optimizer, activations=activations,
        logits=act.logits, overlap=overlap, loading=loading, loading_stays=stays,
        runtime=runtime, total=total, capacity=device.total_memory, device=kind,
        dtype={"4bit": "nf4", "8bit": "int8"}.get(quant, dtype), method=method,
        seq_len=seq_len, batch=batch, trainable_params=trained)


def _dtype(kind: str, requested: str) -> str:
    """The load precision, as device.pick_dtype chooses it; bfloat16 and float16 cost the
    same, so a CUDA GPU's bf16 support need not be asked (the device may not be this one)."""
    if requested != "auto":
        return requested
    return {"cuda": "bfloat16", "mps": "float16"}.get(kind, "float32")


def _compute_bytes(cfg: RunConfig, kind: str, dtype: str) -> int:
    """Bytes per activation value: autocast's precision where it runs (auto: bf16/fp16 on
    CUDA, none elsewhere), else the weights'."""
    mixed = cfg.training.mixed_precision
    if mixed == "auto":
        mixed = "bf16" if kind == "cuda" else "no"
    return 2 if mixed in ("bf16", "fp16") else DTYPE_BYTES[dtype]


def _weight_bytes(shape: ModelShape, dtype: str, quant: str) -> int:
    size = DTYPE_BYTES[dtype]
    if quant == "none":
        return shape.total_params * size
    body = [(i, o) for name, i, o in shape.linears if name != shape.head_name]
    weights = sum(i * o for i, o in body)
    per = NF4_BYTES if quant == "4bit" else INT8_BYTES
    scales = 0 if quant == "4bit" else sum(o for _, o in body) * 4
    # Biases stay in the compute dtype; embeddings, head and norms are upcast to fp32 by
    # prepare_model_for_kbit_training.
    rest = shape.total_params - shape.linear_params
    return int(weights * per) + scales + (shape.linear_params - weights) * size + rest * 4


def _trained(cfg: RunConfig, shape: ModelShape, dtype: str) -> tuple[int, int, int]:
    """(trained parameters, bytes per trained weight, bytes per gradient)."""
    method = cfg.method
    if method.name in LORA_FAMILY:
        wrapped = lora_targets(shape, method.target_modules)
        count = sum(method.lora_r * (i + o) for _, i, o in wrapped)
        if method.name == "dora":
            count += sum(o for _, _, o in wrapped)  # one magnitude per output feature
        return count, 4, 4  # peft keeps adapters (and so their gradients) in float32
    size = DTYPE_BYTES[dtype]
    if method.name == "full":
        return shape.total_params, size, size
    return located_params(shape, method.located_modules, method.located_layers), size, size


def lora_targets(shape: ModelShape, targets: list[str]) -> list[tuple[str, int, int]]:
    """The linears peft wraps: all-linear = all but the output head; names match a module
    whose name equals them or ends with "." + them."""
    if targets == ["all-linear"]:
        return [lin for lin in shape.linears if lin[0] != shape.head_name]
    return [lin for lin in shape.linears
            if any(lin[0] == t or lin[0].endswith("." + t) for t in targets)]


def located_params(shape: ModelShape, modules: list[str], layers: list[int]) -> int:
    """Parameters of `modules` in `layers` (empty: the middle layer, as located.apply)."""
    chosen = layers or [shape.n_layers // 2]
    bad = [i for i in chosen if i >= shape.n_layers]
    if bad:
        raise ConfigError(f"method.located_layers {bad} out of range: the model has "
                          f"{shape.n_layers} layers (0-{shape.n_layers - 1})")
    prefixes = tuple(f"{shape.layers_prefix}.{i}.{m}." for i in chosen for m in modules)
    return sum(n for name, n in shape.params if name.startswith(prefixes))


def _optimizer_bytes(cfg: RunConfig, kind: str, trained: int, param_bytes: int) -> int:
    from workbench.core.methods.registry import get_method

    if get_method(cfg.method.name).optimizer == "paged_adamw_8bit" and kind == "cuda":
        return int(trained * PAGED_ADAM8_BYTES)
    states = 2 * trained * param_bytes
    # torch's foreach AdamW (its CUDA default) computes sqrt(v) for all parameters at once.
    return states + (trained * param_bytes if kind == "cuda" else 0)


class _Activations(NamedTuple):
    live: int  # resident at the peak: saved layers, the working layer, logits, transients
    logits: int
    heap: int  # CPU only: freed blocks glibc's heap keeps (see CPU_HEAP_RETAINED)


def _activations(cfg: RunConfig, shape: ModelShape, tokens: int, compute: int,
                 seq_len: int) -> _Activations:
    """Activation memory of one micro-batch of `tokens` (batch × padded length)."""
    d = shape.hidden
    layer = _layer_bytes(cfg, shape, compute, seq_len)  # per token
    saved = _saved_layers(cfg, shape)
    stored = saved * d * compute if cfg.training.gradient_checkpointing else saved * layer
    # + one layer of working set (the recomputed layer under checkpointing, the backward's
    # gradient temporaries otherwise) + the embeddings' output and the final norm.
    edges = layer + d * compute + 2 * d * 4
    if cfg.method.name == "prompt_distillation":
        # Student logits and their gradient, the teacher's (no grad) on its longer prompts.
        logits = int(tokens * shape.vocab * compute * (2 + TEACHER_LENGTH))
    else:
        logits = tokens * shape.vocab * LOGIT_BYTES[compute]
    live = tokens * (stored + edges) + logits + _weight_transients(cfg, shape, compute)
    # What one step allocates in blocks small enough for the heap: all layers' activations
    # (recomputed or not) and the logits, where one tensor of them is under 32 MiB.
    heap = 0.0
    if tokens * max(shape.intermediate, d) * compute < GLIBC_MMAP_MAX:
        heap += CPU_HEAP_RETAINED * tokens * (saved * layer + edges)
    if tokens * shape.vocab * 4 < GLIBC_MMAP_MAX:
        heap += CPU_HEAP_RETAINED * logits
    if cfg.method.name == "dora":
        wrapped = lora_targets(shape, cfg.method.target_modules)
        heap += CPU_DORA_RETAINED * sum(_dora_temporaries(i, o) for _, i, o in wrapped)
    return _Activations(int(live), int(logits), int(heap))


def _layer_bytes(cfg: RunConfig, shape: ModelShape, compute: int, seq_len: int) -> int:
    """Bytes autograd saves per token in one decoder layer."""
    d, method = shape.hidden, cfg.method.name
    # q, k, v, the attention output; MLP gate, SiLU, up, product; the two norms' outputs.
    values = 2 * shape.q_dim + 2 * shape.kv_dim + 4 * shape.intermediate + 2 * d
    if method == "full":
        values += 2 * d  # trained norm weights keep their normalized input
    if method == "dora":  # the rescaling keeps each wrapped linear's base and LoRA outputs
        outs = sum(o for name, _, o in lora_targets(shape, cfg.method.target_modules)
                   if name.startswith(shape.layers_prefix + "."))
        values += 2 * outs // max(shape.n_layers, 1)
    size = values * compute + 2 * d * 4  # norm inputs are upcast to fp32 before squaring
    if cfg.model.attn_implementation == "eager":  # seq×seq probabilities: fp32 softmax + cast
        size += shape.n_heads * seq_len * (4 + compute)
    return size


def _weight_transients(cfg: RunConfig, shape: ModelShape, compute: int) -> int:
    """The largest weight-sized temporary: a quantized linear dequantized for its matmul, or
    DoRA's per-linear temporaries (fp32)."""
    body = [(i, o) for name, i, o in shape.linears if name != shape.head_name]
    size = 0
    if cfg.effective_quantization != "none" and body:
        size = max(i * o for i, o in body) * compute
    if cfg.method.name == "dora":
        wrapped = lora_targets(shape, cfg.method.target_modules)
        size += max((_dora_temporaries(i, o) for _, i, o in wrapped), default=0)
    return size


def _dora_temporaries(fan_in: int, fan_out: int) -> int:
    """fp32 bytes DoRA allocates per wrapped linear per forward: an in×in identity pushed
    through the adapter, the out×in LoRA product and the merged weight whose norm it takes."""
    return (fan_in * fan_in + 2 * fan_in * fan_out) * 4


def _saved_layers(cfg: RunConfig, shape: ModelShape) -> int:
    """Layers whose activations autograd keeps: all of them, except for located training,
    where layers below the lowest trained one see no tensor that needs a gradient."""
    if cfg.method.name != "located":
        return shape.n_layers
    lowest = min(cfg.method.located_layers or [shape.n_layers // 2])
    return max(shape.n_layers - lowest, 1)


def _loading_bytes(shape: ModelShape, dtype: str, quant: str) -> int:
    """CPU: the mapped checkpoint stays resident beside converted weights until loading ends;
    unconverted weights are the mapped pages themselves."""
    stored = shape.stored_dtype if shape.stored_dtype in DTYPE_BYTES else "float32"
    if quant == "none" and stored == dtype:
        return 0
    return shape.total_params * DTYPE_BYTES[stored]


# --- what to change when it does not fit -------------------------------------------------------
Change = tuple[str, dict[str, Any]]  # (what to tell the user, the settings it sets)


def _suggest(cfg: RunConfig, device: DeviceInfo, seq_len: int,
             shape: ModelShape) -> tuple[str, dict[str, Any], MemoryEstimate | None]:
    """(what to change, the settings, the estimate after it) for the first change that makes
    the run fit, least disruptive first: the same training in less memory (a smaller micro
    batch, then recomputed activations), then a lighter method, then shorter examples. When
    no single change is enough, the others accumulate in that order, each time with the
    largest micro batch that then fits; when nothing does, a smaller model."""
    batches, others = _batch_changes(cfg), _other_changes(cfg, seq_len)
    for label, values in batches + others:
        fitted = _try(cfg, values, device, seq_len, shape)
        if fitted is not None:
            return label, values, fitted
    labels: dict[str, str] = {}  # first setting → label: a later method or length replaces
    settings: dict[str, Any] = {}
    for label, values in others:
        labels[next(iter(values))] = label
        settings.update(values)
        for batch_label, batch_values in [("", {}), *batches]:
            fitted = _try(cfg, {**settings, **batch_values}, device, seq_len, shape)
            if fitted is not None:
                text = " and ".join(filter(None, [batch_label, *labels.values()]))
                return text, {**settings, **batch_values}, fitted
    return "a smaller model", {}, None


def _batch_changes(cfg: RunConfig) -> list[Change]:
    """Smaller micro batches, largest first, each a divisor of the current one so that more
    accumulation keeps the effective batch exactly: the same training, slower."""
    t, out = cfg.training, []
    for micro in range(t.micro_batch_size - 1, 0, -1):
        if t.micro_batch_size % micro:
            continue
        accum = t.gradient_accumulation_steps * t.micro_batch_size // micro
        out.append((f"micro batch {micro} with accumulation {accum} (same effective batch)",
                    {"training.micro_batch_size": micro,
                     "training.gradient_accumulation_steps": accum}))
    return out


def _other_changes(cfg: RunConfig, seq_len: int) -> list[Change]:
    out: list[Change] = []
    if not cfg.training.gradient_checkpointing:
        out.append(("gradient checkpointing", {"training.gradient_checkpointing": True}))
    name = cfg.method.name
    if name == "lora":
        out.append(("use qlora (4-bit base)", {"method.name": "qlora"}))
    elif name in LORA_FAMILY and cfg.effective_quantization == "none":  # keeps the method
        out.append(("a 4-bit base (model.quantization 4bit)", {"model.quantization": "4bit"}))
    if name == "full":
        out.append(("use lora instead of full fine-tuning", {"method.name": "lora"}))
        out.append(("use qlora (4-bit base) instead of full fine-tuning",
                    {"method.name": "qlora"}))
    for shorter in (seq_len // 2, seq_len // 4):  # cuts (drops) the longer examples
        if shorter >= 16:
            out.append((f"max_seq_len {shorter}", {"data.max_seq_len": shorter}))
    return out


def _try(cfg: RunConfig, values: dict[str, Any], device: DeviceInfo, seq_len: int,
         shape: ModelShape) -> MemoryEstimate | None:
    try:
        changed = cfg.with_values(values)
    except ConfigError:
        return None
    estimate = _estimate(changed, device, min(seq_len, changed.data.max_seq_len), shape)
    return estimate if estimate.fits else None


# --- the knowledge set's real length -----------------------------------------------------------
@dataclass(frozen=True)
class SetTokens:
    """One epoch of a run's knowledge set as rendered with the model's tokenizer."""

    longest: int  # the widest micro-batch is padded to this (capped at data.max_seq_len)
    examples: int  # knowledge examples plus the replay examples mixed in
    tokens: int  # real tokens in those examples (replay counted at the set's mean length)


def set_tokens(store: Store, cfg: RunConfig, tokenizer: Any) -> SetTokens:
    from workbench.core.train.replay import replay_count
    from workbench.core.train.run import render_knowledge

    rendered = render_knowledge(store, cfg, tokenizer).rendered
    tokens = sum(len(r.input_ids) for r in rendered)
    replay = replay_count(len(rendered), cfg.data.replay_ratio)
    return SetTokens(longest=min(max(len(r.input_ids) for r in rendered), cfg.data.max_seq_len),
                     examples=len(rendered) + replay,
                     tokens=tokens + round(replay * tokens / len(rendered)))


def batch_seq_len(store: Store, cfg: RunConfig, tokenizer: Any) -> int:
    """Tokens in the longest rendered training example of the run's knowledge set (capped at
    data.max_seq_len, as rendering drops longer ones): the width the widest micro-batch is
    padded to."""
    return set_tokens(store, cfg, tokenizer).longest


def set_tokens_or_none(store: Store, cfg: RunConfig, tokenizer: Any = None) -> SetTokens | None:
    """`set_tokens` of the run's knowledge set with the model's own tokenizer (loaded here
    unless given), or None when the set or the tokenizer cannot be read: the memory estimate
    then falls back to data.max_seq_len, an upper bound, and there is no time estimate."""
    from workbench.core.errors import WorkbenchError
    from workbench.core.models import load_tokenizer

    if not cfg.data.knowledge_set:
        return None
    try:
        return set_tokens(store, cfg, tokenizer or load_tokenizer(cfg.model))
    except WorkbenchError:
        return None
