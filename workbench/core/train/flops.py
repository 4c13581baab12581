"""FLOPs per trained token and the device's peak FLOP/s, the two halves of MFU.

Model FLOPs utilisation
-----------------------
MFU = F_tok × tokens/s ÷ peak FLOP/s, where F_tok counts the FLOPs one trained token needs:

    F_tok = 2·M          forward: one multiply-add per matmul weight
          + 2·M          backward, activation gradients (dL/dx = dL/dy · Wᵀ), for every layer
                         the gradient has to flow through, frozen or not
          + 2·T          backward, weight gradients (dL/dW = xᵀ · dL/dy), trained weights only
          + 6·L·s·d      attention scores and mixing (below)
          = 4·M + 2·T + 6·L·s·d

M is the number of matmul weights (in_features × out_features of every linear-like layer,
lm_head included, embeddings excluded: a lookup is no matmul; a tied lm_head counts once). T
is the part of M being trained. Full fine-tuning has T = M, so F_tok = 6·M + 6·L·s·d (the
usual "6N"). LoRA adds its A (in→r) and B (r→out) matrices to M — they are real matmuls, run
forward and backward — and they are all of T, so with M_base the frozen base:
F_tok = 4·M_base + 6·M_lora + 6·L·s·d. Trained weights outside matmuls (embeddings, norms)
are left out of T: their gradients are a scatter-add or elementwise, not 2 FLOPs per weight.

Attention (L layers, d = heads × head_dim, s = mean sequence length in tokens): a query
attending to c keys costs 2·c·d for QKᵀ and 2·c·d for A·V. Causal attention has c = s/2 on
average, so the forward is 2·L·s·d per token; the backward takes gradients w.r.t. both
operands of both products, twice the forward, giving 6·L·s·d in all. This is what causal
kernels (flash / memory-efficient SDPA) compute; PaLM-style counts use the full square,
12·L·s·d, so our MFU reads a little lower than theirs at long sequence lengths.

Not counted: softmax, norms, activations, rotary embeddings, the optimizer update (per
step, not per token), padding (tokens are counted without it), recomputation by gradient
checkpointing (that is hardware FLOPs, not model FLOPs), DoRA's weight norm, and sliding-
window attention's shorter context. The estimate is for dense models; mixture-of-experts
weights would be counted as if every expert ran.

Peak FLOP/s comes from a table of dense (no sparsity) vendor figures by GPU name, else from
timing one large matmul on the device (an achieved rate, so MFU against it reads high).
"""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch

UNKNOWN = "unknown"


# --- FLOPs per token ------------------------------------------------------------------------


def flops_per_token(*, matmul_params: int, trainable_params: int, n_layers: int,
                    attn_dim: int, seq_len: float) -> float:
    """Training FLOPs per token: 4·M + 2·T + 6·L·s·d (see the module docstring)."""
    dense = 4.0 * matmul_params + 2.0 * trainable_params
    attention = 6.0 * n_layers * seq_len * attn_dim
    return dense + attention


def _is_leaf(module: Any) -> bool:
    return next(module.children(), None) is None


def _matmul_weights(module: Any) -> int:
    """Weights a leaf module multiplies per token: in × out, or 0 if it is no matmul.

    in_features × out_features rather than weight.numel(): bitsandbytes' Linear4bit stores
    its weight packed two to a byte, so numel() is half the matmul."""
    import torch

    if isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
        return 0  # a lookup, no matmul
    fan_in = getattr(module, "in_features", None)
    fan_out = getattr(module, "out_features", None)
    if isinstance(fan_in, int) and isinstance(fan_out, int):
        return fan_in * fan_out
    weight = getattr(module, "weight", None)  # e.g. transformers' Conv1D (GPT-2)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return int(weight.numel())
    return 0


def _text_config(model: Any) -> Any:
    """The language model's config; peft forwards `.config`, DDP keeps it on `.module`."""
    config = getattr(model, "config", None)
    if config is None:
        config = getattr(getattr(model, "module", None), "config", None)
    get_text_config = getattr(config, "get_text_config", None)
    if callable(get_text_config):  # multimodal configs nest the decoder's settings
        try:
            config = get_text_config()
        except Exception:
            pass
    return config


def _int_attr(config: Any, name: str) -> int:
    value = getattr(config, name, None)
    return int(value) if isinstance(value, int) and value > 0 else 0


def _attention_shape(model: Any) -> tuple[int, int]:
    """(n_layers, heads × head_dim) from the config; 0s where it does not say."""
    config = _text_config(model)
    n_layers = _int_attr(config, "num_hidden_layers")
    heads = _int_attr(config, "num_attention_heads")
    head_dim = _int_attr(config, "head_dim")
    if not head_dim and heads:
        head_dim = _int_attr(config, "hidden_size") // heads
    return n_layers, heads * head_dim


def model_flops_shape(model: Any) -> tuple[int, int, int, int]:
    """(matmul_params, trainable_params, n_layers, attn_dim) of a causal LM, peft or not.

    One pass over the modules (milliseconds even for large models): call it once per run.
    LoRA A/B matrices count in both matmul_params and trainable_params; a frozen copy that
    peft keeps beside a trained module (`modules_to_save`) does not run and is skipped. All
    adapters present are counted, active or not."""
    matmul = trainable = 0
    for name, module in model.named_modules():
        if not _is_leaf(module) or "original_module" in name.split("."):
            continue
        size = _matmul_weights(module)
        matmul += size
        weight = getattr(module, "weight", None)
        if size and getattr(weight, "requires_grad", False):
            trainable += size
    n_layers, attn_dim = _attention_shape(model)
    return matmul, trainable, n_layers, attn_dim


# --- peak FLOP/s ----------------------------------------------------------------------------


class _Peak(NamedTuple):
    half: float  # fp16 and bf16 tensor cores, FP32 accumulate, dense
    tf32: float | None  # TF32 tensor cores, dense; None before Ampere (no TF32)
    fp32: float  # plain FP32 (CUDA cores): PyTorch's default for float32 matmuls
    bf16: bool = True  # False where bf16 has no tensor-core path (V100, T4)


# Dense peaks in FLOP/s, from NVIDIA datasheets and architecture whitepapers (sparsity figures
# halved). GeForce and L40 run FP16/BF16 with FP32 accumulate at half the FP16-accumulate
# rate; that is what training uses, so that is the figure here. Rows marked "derived" are SMs
# × boost clock × 512 FLOP/clk/SM, the same rule that reproduces the whitepaper's 4090/3090.
_PEAKS: dict[str, _Peak] = {
    "GH200": _Peak(989.4e12, 494.7e12, 67e12),
    "H200 NVL": _Peak(835.5e12, 417.5e12, 60e12),
    "H200": _Peak(989.4e12, 494.7e12, 67e12),
    "H100 NVL": _Peak(835.5e12, 417.5e12, 60e12),
    "H100 PCIe": _Peak(756e12, 378e12, 51.2e12),
    "H100": _Peak(989.4e12, 494.7e12, 66.9e12),  # SXM, e.g. "NVIDIA H100 80GB HBM3"
    "A100": _Peak(312e12, 156e12, 19.5e12),  # SXM and PCIe alike
    "A10G": _Peak(70e12, 35e12, 35e12),  # AWS part: 80 SMs, GeForce-style tensor rate
    "A10": _Peak(125e12, 62.5e12, 31.2e12),
    "L40S": _Peak(362.05e12, 183e12, 91.6e12),
    "L40": _Peak(181.05e12, 90.5e12, 90.5e12),
    "L4": _Peak(121e12, 60e12, 30.3e12),
    "RTX A6000": _Peak(154.8e12, 77.4e12, 38.7e12),
    "RTX 4090 D": _Peak(147.1e12, 73.5e12, 73.5e12),  # derived: 114 SMs
    "RTX 4090": _Peak(165.2e12, 82.6e12, 82.6e12),
    "RTX 4080 SUPER": _Peak(104.4e12, 52.2e12, 52.2e12),  # derived
    "RTX 4080": _Peak(97.5e12, 48.7e12, 48.7e12),
    "RTX 4070 Ti SUPER": _Peak(88.2e12, 44.1e12, 44.1e12),  # derived
    "RTX 4070 Ti": _Peak(80.2e12, 40.1e12, 40.1e12),
    "RTX 4070 SUPER": _Peak(71.0e12, 35.5e12, 35.5e12),  # derived
    "RTX 4070": _Peak(58.3e12, 29.1e12, 29.1e12),
    "RTX 4060 Ti": _Peak(44.1e12, 22.1e12, 22.1e12),  # derived
    "RTX 4060": _Peak(30.2e12, 15.1e12, 15.1e12),  # derived
    "RTX 3090 Ti": _Peak(80.0e12, 40.0e12, 40.0e12),  # derived
    "RTX 3090": _Peak(71.2e12, 35.6e12, 35.6e12),
    "RTX 3080 Ti": _Peak(68.2e12, 34.1e12, 34.1e12),  # derived
    "RTX 3080": _Peak(59.5e12, 29.8e12, 29.8e12),
    "V100S": _Peak(130e12, None, 16.4e12, bf16=False),
    "V100-PCIE": _Peak(112e12, None, 14e12, bf16=False),
    "V100": _Peak(125e12, None, 15.7e12, bf16=False),  # SXM2/SXM3
    "T4": _Peak(65e12, None, 8.1e12, bf16=False),
}

# Laptop parts share desktop names but not clocks or SM counts: measure those instead.
_MOBILE = re.compile(r"laptop|mobile|max-q", re.IGNORECASE)

_DTYPE_KEYS = {"bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "fp16": "fp16",
               "half": "fp16", "float32": "fp32", "fp32": "fp32", "float": "fp32",
               "tf32": "tf32", "tfloat32": "tf32"}


def _dtype_key(dtype: Any) -> str | None:
    """"bfloat16", torch.bfloat16, "bf16" → "bf16"; likewise fp16, fp32, tf32."""
    return _DTYPE_KEYS.get(str(dtype).lower().removeprefix("torch."))


def _match(device_name: str) -> str | None:
    """The longest table key found in `device_name` as whole words ("RTX 4060 Ti" beats
    "RTX 4060"; "A10" does not match "A10G" nor "A100")."""
    name = device_name.lower()
    for key in sorted(_PEAKS, key=len, reverse=True):
        if re.search(rf"(?<![a-z0-9]){re.escape(key.lower())}(?![a-z0-9])", name):
            return key
    return None


def _column(peak: _Peak, key: str) -> float | None:
    if key == "bf16":
        return peak.half if peak.bf16 else None
    if key == "fp16":
        return peak.half
    if key == "tf32":
        return peak.tf32 if peak.tf32 is not None else peak.fp32  # pre-Ampere: plain FP32
    return peak.fp32


def peak_flops(device: str, device_name: str, dtype: str) -> tuple[float | None, str]:
    """(dense peak FLOP/s, where it comes from) for matmuls in `dtype` on a CUDA GPU.

    `dtype` "float32" means plain FP32, PyTorch's default; pass "tf32" when TF32 matmuls are
    enabled. (None, "unknown") off CUDA, for unlisted or laptop GPUs, and for bf16 where the
    GPU has no bf16 tensor cores."""
    column = _dtype_key(dtype)
    if not device.startswith("cuda") or column is None or _MOBILE.search(device_name):
        return None, UNKNOWN
    match = _match(device_name)
    value = _column(_PEAKS[match], column) if match else None
    if value is None:
        return None, UNKNOWN
    return value, f"spec table: {match}, {column} dense"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device.startswith("mps"):
        torch.mps.synchronize()


def _torch_dtype(dtype: Any) -> torch.dtype:
    import torch

    key = _dtype_key(dtype)
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(key or "", torch.float32)


def default_matmul_size(device: str) -> int:
    # 1024² on a CPU: ~0.1 s, within a few % of the largest matmuls' rate; 512² read a
    # quarter low, which put a 0.5B model's MFU above 100 % (bench/results/train_vs_trl.md).
    return 1024 if device == "cpu" else 4096


def measure_peak_flops(device: str, dtype: str, size: int | None = None,
                       repeats: int = 3) -> float:
    """Achieved FLOP/s of a square `size`² matmul (2·n³ FLOPs), best of `repeats`.

    size defaults to 1024 on CPU (~0.1 s) and 4096 on a GPU, where smaller matmuls fall far
    short of peak; on a GPU each repeat times 10 matmuls so the launch and sync overhead
    (tens of µs) does not dominate. Costs well under a second on any device. "tf32" runs a
    float32 matmul under the current TF32 setting."""
    import torch

    n = size or default_matmul_size(device)
    inner = 1 if device == "cpu" else 10
    a = torch.randn(n, n, device=device, dtype=_torch_dtype(dtype))
    b = torch.randn(n, n, device=device, dtype=_torch_dtype(dtype))
    torch.matmul(a, b)  # warm-up: kernel selection, thread pools, GPU clocks
    _sync(device)
    best = math.inf
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return 2.0 * n**3 * inner / best
