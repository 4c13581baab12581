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

from typing import TYPE_CHECKING, NamedTuple

from workbench.core.estimate.result import MiB, MemoryEstimate
from workbench.core.methods.base import MemoryTerms
from workbench.core.methods.registry import get_method

if TYPE_CHECKING:
    from workbench.core.config import RunConfig
    from workbench.core.device import DeviceInfo
    from workbench.core.model_shape import ModelShape

# --- measured constants (CPU: Linux x86_64, Python 3.11, torch 2.13 CPU build, transformers
# 5.23, peft 0.21, accelerate 1.15, bitsandbytes 0.50, glibc malloc, 2 cores) -----------------
# Peak RSS of the background worker (core/train/worker.py; measured when it was started as
# `python -m workbench worker`, the same imports) training the 64-hidden, 2-layer tiny Llama
# of workbench.testing, whose model terms are ~7 MiB: 455-457 MiB for LoRA and full runs alike.
# ~390 MiB of it is the imports alone (python -c "import torch, transformers, peft,
# accelerate" + the workbench core); the rest is the store, accelerate's state and the first
# step's buffers.
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
# Allocations besides the model that max_memory_allocated counts on CUDA: cuBLAS workspaces
# (up to 32 MiB per handle and stream), block rounding. Not measured (no GPU on the calibration
# machine): a documented guess, small next to any model worth a GPU.
GPU_RUNTIME = 128 * MiB
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
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def breakdown(cfg: RunConfig, device: DeviceInfo, seq_len: int,
              shape: ModelShape) -> MemoryEstimate:
    """The estimate's terms for `cfg` on `device` with batches `seq_len` tokens long."""
    kind = device.kind
    dtype = _dtype(kind, cfg.model.dtype)
    quant = cfg.effective_quantization
    method = get_method(cfg.method.name)
    compute = _compute_bytes(cfg, kind, dtype)
    terms = method.memory(shape, cfg.method.settings, dtype_bytes=DTYPE_BYTES[dtype],
                          compute_bytes=compute)
    weights = _weight_bytes(shape, dtype, quant)
    trained, param_bytes = terms.trained_params, terms.param_bytes
    # A gradient per trained weight, at its precision; adapters are weights of their own.
    trainable = trained * (param_bytes + (param_bytes if terms.adds_weights else 0))
    optimizer = _optimizer_bytes(method.optimizer, kind, trained, param_bytes)
    processes = cfg.training.processes
    sharded = cfg.training.distributed == "fsdp" and processes > 1
    if sharded:
        weights = _sharded_weights(shape, weights, processes, dtype, quant)
        trainable, optimizer = -(-trainable // processes), -(-optimizer // processes)
    batch = cfg.training.micro_batch_size
    act = _activations(cfg, shape, terms, batch * seq_len, compute, seq_len)
    activations = act.live + (act.heap if kind == "cpu" else 0)
    # The backward pass frees activations as it makes gradients: only the live part overlaps
    # (a CPU heap's fragments stay resident).
    overlap = min(trained * param_bytes, act.live)
    loading = _loading_bytes(shape, dtype, quant) if kind == "cpu" else 0
    stays = loading > 0 and quant != "none"  # unquantized tensors keep the file mapped
    runtime = CPU_RUNTIME if kind == "cpu" else GPU_RUNTIME
    training = trainable + optimizer + activations - overlap
    total = runtime + weights + (loading + training if stays else max(loading, training))
    return MemoryEstimate(
        weights=weights, trainable=trainable, optimizer=optimizer, activations=activations,
        logits=act.logits, overlap=overlap, loading=loading, loading_stays=stays,
        runtime=runtime, total=total, capacity=device.total_memory, device=kind,
        dtype={"4bit": "nf4", "8bit": "int8"}.get(quant, dtype), method=method.name,
        seq_len=seq_len, batch=batch, trainable_params=trained, processes=processes,
        sharded=sharded)


def _sharded_weights(shape: ModelShape, weights: int, processes: int, dtype: str,
                     quant: str) -> int:
    """One process's weights under FSDP2 (`train/sharding`): its 1/N of every decoder layer,
    two layers gathered whole at a time (the one computing and the next, prefetched), and the
    root's embeddings and head whole (the root stays gathered from forward to backward)."""
    root = (shape.embedding_params + shape.head_params) * (4 if quant != "none"
                                                          else DTYPE_BYTES[dtype])
    layers = max(0, weights - root)
    return layers // processes + 2 * layers // max(shape.n_layers, 1) + root


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


def _optimizer_bytes(optimizer: str, kind: str, trained: int, param_bytes: int) -> int:
    if optimizer == "paged_adamw_8bit" and kind == "cuda":
        return int(trained * PAGED_ADAM8_BYTES)
    states = 2 * trained * param_bytes
    # torch's foreach AdamW (its CUDA default) computes sqrt(v) for all parameters at once.
    return states + (trained * param_bytes if kind == "cuda" else 0)


class _Activations(NamedTuple):
    live: int  # resident at the peak: saved layers, the working layer, logits, transients
    logits: int
    heap: int  # CPU only: freed blocks glibc's heap keeps (see CPU_HEAP_RETAINED)


def _activations(cfg: RunConfig, shape: ModelShape, terms: MemoryTerms, tokens: int,
                 compute: int, seq_len: int) -> _Activations:
    """Activation memory of one micro-batch of `tokens` (batch × padded length)."""
    d = shape.hidden
    layer = _layer_bytes(cfg, shape, terms, compute, seq_len)  # per token
    saved = shape.n_layers if terms.saved_layers is None else terms.saved_layers
    stored = saved * d * compute if cfg.training.gradient_checkpointing else saved * layer
    # + one layer of working set (the recomputed layer under checkpointing, the backward's
    # gradient temporaries otherwise) + the embeddings' output and the final norm.
    edges = layer + d * compute + 2 * d * 4
    if terms.logit_bytes is not None:
        logits = int(tokens * shape.vocab * terms.logit_bytes)
    else:
        logits = tokens * shape.vocab * LOGIT_BYTES[compute]
    live = tokens * (stored + edges) + logits + _weight_transients(cfg, shape, terms, compute)
    # What one step allocates in blocks small enough for the heap: all layers' activations
    # (recomputed or not) and the logits, where one tensor of them is under 32 MiB.
    heap = 0.0
    if tokens * max(shape.intermediate, d) * compute < GLIBC_MMAP_MAX:
        heap += CPU_HEAP_RETAINED * tokens * (saved * layer + edges)
    if tokens * shape.vocab * 4 < GLIBC_MMAP_MAX:
        heap += CPU_HEAP_RETAINED * logits
    heap += terms.heap
    return _Activations(int(live), int(logits), int(heap))


def _layer_bytes(cfg: RunConfig, shape: ModelShape, terms: MemoryTerms, compute: int,
                 seq_len: int) -> int:
    """Bytes autograd saves per token in one decoder layer."""
    d = shape.hidden
    # q, k, v, the attention output; MLP gate, SiLU, up, product; the two norms' outputs;
    # and whatever the method keeps besides.
    values = 2 * shape.q_dim + 2 * shape.kv_dim + 4 * shape.intermediate + 2 * d
    values += terms.layer_values
    size = values * compute + 2 * d * 4  # norm inputs are upcast to fp32 before squaring
    if cfg.model.attn_implementation == "eager":  # seq×seq probabilities: fp32 softmax + cast
        size += shape.n_heads * seq_len * (4 + compute)
    return size


def _weight_transients(cfg: RunConfig, shape: ModelShape, terms: MemoryTerms,
                       compute: int) -> int:
    """The largest weight-sized temporary: a quantized linear dequantized for its matmul, plus
    the method's own (DoRA's per-linear temporaries)."""
    body = [(i, o) for name, i, o in shape.linears if name != shape.head_name]
    size = 0
    if cfg.effective_quantization != "none" and body:
        size = max(i * o for i, o in body) * compute
    return size + terms.transient


def _loading_bytes(shape: ModelShape, dtype: str, quant: str) -> int:
    """CPU: the mapped checkpoint stays resident beside converted weights until loading ends;
    unconverted weights are the mapped pages themselves."""
    stored = shape.stored_dtype if shape.stored_dtype in DTYPE_BYTES else "float32"
    if quant == "none" and stored == dtype:
        return 0
    return shape.total_params * DTYPE_BYTES[stored]
