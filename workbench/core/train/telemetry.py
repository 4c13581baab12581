"""Per-optimizer-step telemetry: memory, GPU utilisation and power, smoothed tokens/s and MFU.

`Telemetry.row(...)` gives one dict per optimizer step with the keys `mem_allocated`,
`mem_reserved`, `mem_peak`, `mem_capacity` (bytes), `gpu_util` (percent), `power_w` (watts),
`tokens_per_s` (smoothed) and `mfu` (fraction of peak). A value is None only where the device
cannot report it: NVML readings off CUDA, the allocator's reserve on CPU, MFU without a peak.

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
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import psutil

from workbench.core.data.names import StepMetric

if TYPE_CHECKING:
    import torch

# The keys of `Telemetry.row()`: the step metrics measured beside the loop's own.
ROW_KEYS = (StepMetric.MEM_ALLOCATED, StepMetric.MEM_RESERVED, StepMetric.MEM_PEAK,
            StepMetric.MEM_CAPACITY, StepMetric.GPU_UTIL, StepMetric.POWER_W, StepMetric.MFU,
            StepMetric.TOKENS_PER_S)

UNKNOWN = "unknown"


# --- memory ---------------------------------------------------------------------------------


def _cuda_index(device: str) -> int:
    """"cuda:1" → 1; a bare "cuda" means the current device, as torch reads it."""
    import torch

    _, _, index = device.partition(":")
    return int(index) if index else torch.cuda.current_device()


def _total_ram() -> int | None:
    # psutil reads /proc/meminfo or the OS equivalent (tens of µs); the same source as the
    # app's describe_device(), so capacity shown in a run matches the device summary.
    try:
        return int(psutil.virtual_memory().total)
    except (OSError, RuntimeError):
        return None


def _peak_rss() -> int | None:
    """This process's peak resident set, in bytes, over its whole life (never reset)."""
    try:
        import resource  # not on Windows
    except ImportError:
        peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
        return int(peak) if peak is not None else None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # macOS: bytes, else KiB


def _cpu_memory() -> dict[str, int | None]:
    # RSS via psutil: /proc/self/statm on Linux, the task info on macOS; about 10 µs.
    rss = int(psutil.Process().memory_info().rss)
    peak = _peak_rss()
    return {StepMetric.MEM_ALLOCATED: rss, StepMetric.MEM_RESERVED: None,
            StepMetric.MEM_PEAK: max(peak, rss) if peak is not None else None,
            StepMetric.MEM_CAPACITY: _total_ram()}


def _cuda_memory(device: str) -> dict[str, int | None]:
    import torch

    index = _cuda_index(device)
    # Allocator counters are host-side reads: no sync, well under a microsecond each.
    return {StepMetric.MEM_ALLOCATED: int(torch.cuda.memory_allocated(index)),
            StepMetric.MEM_RESERVED: int(torch.cuda.memory_reserved(index)),
            StepMetric.MEM_PEAK: int(torch.cuda.max_memory_allocated(index)),
            StepMetric.MEM_CAPACITY: int(torch.cuda.get_device_properties(index).total_memory)}


def _mps_memory() -> dict[str, int | None]:
    import torch

    # MPS keeps no peak counter; Telemetry tracks a running max of `mem_allocated`.
    return {StepMetric.MEM_ALLOCATED: int(torch.mps.current_allocated_memory()),
            StepMetric.MEM_RESERVED: int(torch.mps.driver_allocated_memory()),
            StepMetric.MEM_PEAK: None,
            StepMetric.MEM_CAPACITY: _total_ram()}  # unified memory: the GPU shares system RAM


def memory_snapshot(device: str) -> dict[str, int | None]:
    """Bytes allocated, reserved, at peak, and the device's capacity.

    cuda: the caching allocator's counters (peak since the last reset of peak stats); mps:
    the Metal allocator, peak None (see Telemetry); cpu: this process's RSS and peak RSS,
    reserved None (there is no allocator reserve to report), capacity the physical RAM.
    """
    if device.startswith("cuda"):
        return _cuda_memory(device)
    if device.startswith("mps"):
        return _mps_memory()
    return _cpu_memory()


# --- NVML -----------------------------------------------------------------------------------


class Nvml:
    """GPU utilisation and board power through NVML (`pynvml`, from nvidia-ml-py).

    Every failure (package missing, no driver, MIG, a query the board does not support)
    turns into None readings, never an exception: telemetry must not stop a training run.
    A sample is two driver calls, microseconds up to a fraction of a millisecond depending on
    the driver: negligible once per optimizer step.
    """

    def __init__(self, index: int, uuid: str | None = None) -> None:
        self._nvml: Any = None
        self._handle: Any = None
        try:
            import pynvml
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
        except Exception:  # NVMLError_LibraryNotFound / _DriverNotLoaded and kin
            return
        self._nvml = pynvml
        self._handle = self._open(index, uuid)

    def _open(self, index: int, uuid: str | None) -> Any:
        # CUDA and NVML number devices differently once CUDA_VISIBLE_DEVICES is set (and CUDA
        # orders fastest-first by default), so the UUID is the reliable key.
        if uuid:
            full = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
            try:
                return self._nvml.nvmlDeviceGetHandleByUUID(full)
            except Exception:
                pass
        if uuid and os.environ.get("CUDA_VISIBLE_DEVICES"):
            return None  # the index would likely name another GPU: better no reading
        try:
            return self._nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:
            return None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def sample(self) -> tuple[float | None, float | None]:
        """(GPU utilisation in percent, board power in watts); None where unreadable.

        Utilisation is NVML's "a kernel was running" share of the last sample period (1/6 s
        to 1 s by GPU), not how busy the SMs were: 100 % with a low MFU is possible."""
        if self._handle is None:
            return None, None
        return self._utilization(), self._power()

    def _utilization(self) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
        except Exception:
            return None

    def _power(self) -> float | None:
        try:
            return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0  # mW → W
        except Exception:
            return None

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()  # reference-counted by NVML: other users unaffected
            except Exception:
                pass
        self._nvml = self._handle = None


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


# --- smoothing and the per-step row ---------------------------------------------------------


class Smoother:
    """Exponential moving average of a rate: tokens/s that does not jump with every step."""

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.value: float | None = None

    def update(self, tokens: int, seconds: float) -> float:
        """Fold in one step's rate; the first step's rate is taken as is. A step with no
        duration leaves the average where it was (0.0 before any real step)."""
        if seconds <= 0:
            return self.value if self.value is not None else 0.0
        rate = tokens / seconds
        if self.value is None:
            self.value = rate
        else:
            self.value = self.alpha * rate + (1.0 - self.alpha) * self.value
        return self.value


def _matmul_dtype(device: str, dtype: Any) -> str:
    """The dtype whose peak applies: float32 on CUDA runs as TF32 when PyTorch allows it."""
    key = _dtype_key(dtype) or str(dtype)
    if key == "fp32" and device.startswith("cuda"):
        import torch

        if torch.get_float32_matmul_precision() != "highest":
            return "tf32"
    return key


class Telemetry:
    """One metrics row per optimizer step for `model` training on `device` in `dtype`.

    Construction does the one-off work: the FLOPs shape of the model, the peak (table, else a
    timed matmul if `measure_peak`, under a second), NVML, and a reset of CUDA's peak-memory
    counter so `mem_peak` covers training, not loading. `row()` is then cheap: allocator
    counters, two NVML calls and arithmetic, no device sync."""

    def __init__(self, model: Any, device: str, dtype: Any, *, measure_peak: bool = True) -> None:
        self.device = device
        self.dtype = _matmul_dtype(device, dtype)
        self.shape = model_flops_shape(model)
        self.device_name = self._device_name()
        self.peak, self._peak_source = peak_flops(device, self.device_name, self.dtype)
        if self.peak is None and measure_peak:
            self._measure_peak()
        self._smoother = Smoother()
        self._nvml = self._open_nvml()
        self._mps_peak: int | None = None
        self._last_seq_len: float | None = None
        if device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(_cuda_index(device))

    def _measure_peak(self) -> None:
        size = default_matmul_size(self.device)
        try:
            self.peak = measure_peak_flops(self.device, self.dtype, size)
        except (RuntimeError, TypeError):  # a dtype the backend cannot matmul: no MFU
            return
        self._peak_source = f"measured by a {size}² matmul"

    def _device_name(self) -> str:
        if self.device.startswith("cuda"):
            import torch

            return str(torch.cuda.get_device_properties(_cuda_index(self.device)).name)
        return "Apple GPU" if self.device.startswith("mps") else "CPU"

    def _open_nvml(self) -> Nvml | None:
        if not self.device.startswith("cuda"):
            return None
        import torch

        index = _cuda_index(self.device)
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        return Nvml(index, str(uuid) if uuid else None)

    @property
    def peak_source(self) -> str:
        return self._peak_source

    def flops_per_token(self, seq_len: float) -> float:
        matmul, trainable, n_layers, attn_dim = self.shape
        return flops_per_token(matmul_params=matmul, trainable_params=trainable,
                               n_layers=n_layers, attn_dim=attn_dim, seq_len=seq_len)

    def _memory(self) -> dict[str, int | None]:
        memory = memory_snapshot(self.device)
        if self.device.startswith("mps"):
            # A per-step sample misses peaks inside the step (mid-backward): a lower bound.
            allocated = memory[StepMetric.MEM_ALLOCATED] or 0
            self._mps_peak = max(self._mps_peak or 0, allocated)
            memory[StepMetric.MEM_PEAK] = self._mps_peak
        return memory

    def row(self, tokens: int, seconds: float, seq_len: float) -> dict[str, Any]:
        """Metrics for one optimizer step of `tokens` real tokens in `seconds`, with
        sequences `seq_len` tokens long on average. MFU uses the smoothed rate; it is not
        clipped, so a value above 1 exposes a wrong peak rather than hiding it."""
        rate = self._smoother.update(tokens, seconds)
        self._last_seq_len = seq_len
        util, power = self._nvml.sample() if self._nvml else (None, None)
        mfu = self.flops_per_token(seq_len) * rate / self.peak if self.peak else None
        return {**self._memory(), StepMetric.GPU_UTIL: util, StepMetric.POWER_W: power,
                StepMetric.MFU: mfu,
                StepMetric.TOKENS_PER_S: rate}

    def describe(self, seq_len: float | None = None) -> dict[str, Any]:
        """What the MFU rests on, for the run's log. FLOPs per token are at `seq_len`, else at
        the last row's, else without the attention term (seq_len 0)."""
        seq = seq_len if seq_len is not None else (self._last_seq_len or 0.0)
        matmul, trainable, n_layers, attn_dim = self.shape
        return {"device": self.device, "device_name": self.device_name, "dtype": self.dtype,
                "peak_flops": self.peak, "peak_source": self.peak_source,
                "matmul_params": matmul, "trainable_params": trainable,
                "n_layers": n_layers, "attn_dim": attn_dim, "seq_len": seq,
                "flops_per_token": self.flops_per_token(seq),
                StepMetric.MEM_CAPACITY: memory_snapshot(self.device)[StepMetric.MEM_CAPACITY]}

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None
