"""How long a run will train, said before it starts (the Method tab, `workbench config
--memory`), so a run that would take hours is a warning and not a surprise.

time per epoch = tokens per epoch × training FLOPs per token ÷ throughput, where
- tokens per epoch come from the knowledge set as the run renders it (plus replay);
- FLOPs per token is the telemetry's model (4·matmul params + 2·trained params + attention);
- throughput is, best first: the tokens/s this workspace's earlier runs of the same model,
  method, precision and device actually reached (median of their steps); else the device's
  peak FLOP/s (spec table for known GPUs, a short matmul on a CPU, the calibrated bf16 peak
  for a CPU run that trains under bf16 autocast) times an efficiency for the kind of run, from
  our own measurements where we have them (below). The line says which.
Probe rounds and the final scoring come on top; the Train tab's ETA takes over once steps run.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from typing import TYPE_CHECKING

from workbench.core.config import RunConfig
from workbench.core.device import DeviceInfo

# From the estimate package's modules, not its `__init__`: the pre-flight there
# (`estimate.check`) imports this module, and the `__init__` re-exports the pre-flight.
if TYPE_CHECKING:
    from workbench.core.estimate.result import MemoryEstimate
    from workbench.core.estimate.tokens import SetTokens
    from workbench.core.store import Store

# Share of peak FLOP/s a training step reaches, by (device, quantization), where no earlier run
# measured it. CPU: LoRA and QLoRA steps of SmolLM2-135M-Instruct on 2 cores (micro-batch 8,
# ~40-token examples) ran at MFU 0.46 and 0.12 after warm-up against a measured 1024² matmul;
# the first steps on each new sequence length run several times slower, hence the margin.
# GPU: a conservative figure for LoRA on one consumer GPU (bench/results has none yet).
EFFICIENCY = {
    ("cpu", "none"): 0.35, ("cpu", "4bit"): 0.08, ("cpu", "8bit"): 0.08,
    ("cuda", "none"): 0.30, ("cuda", "4bit"): 0.20, ("cuda", "8bit"): 0.15,
    ("mps", "none"): 0.15,
}
# The same for bf16 autocast on a CPU (`calibration.cpu_autocast`), against the calibrated bf16
# peak: the recipe bench's default run (SmolLM2-135M LoRA, micro-batch 16, 2-core AMD EPYC with
# AVX512-BF16) ran at median MFU 0.30, fp32 runs there at ~0.35 of the fp32 peak.
CPU_BF16_EFFICIENCY = 0.30
WARN_AFTER_S = 3600.0  # past an hour, the estimate is shown as a warning with what to change


@dataclass(frozen=True)
class TimeEstimate:
    steps: int
    epochs: int
    epoch_seconds: float
    total_seconds: float
    tokens_per_s: float
    source: str  # where the throughput comes from, in words

    @property
    def too_long(self) -> bool:
        return self.total_seconds > WARN_AFTER_S

    def line(self) -> str:
        text = (f"training about {duration_text(self.total_seconds)} ({self.steps} steps, "
                f"{duration_text(self.epoch_seconds)} per epoch at ~{self.tokens_per_s:,.0f} "
                f"tokens/s, {self.source}; probe rounds come on top)")
        if self.too_long:
            text += (" — that is long: fewer epochs, a smaller model, or a GPU"
                     + (", or LoRA instead of 4-bit on a CPU" if "4-bit" in self.source else ""))
        return text


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{round(minutes)} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest:02d} min"


def estimate_time(cfg: RunConfig, *, device: DeviceInfo, examples: int, tokens: int,
                  trained_params: int, matmul_params: int, n_layers: int, attn_dim: int,
                  measured_tokens_per_s: float | None = None,
                  peak: tuple[float, str, float] | None = None) -> TimeEstimate:
    """`examples` and `tokens`: one epoch of the rendered set (replay included);
    `trained_params` etc. from the memory estimate's model shape; `peak`: (FLOP/s, its
    description, the share a step reaches) where the run's precision is not the device's
    default (bf16 autocast on a CPU)."""
    from workbench.core.train.loop import planned_steps, steps_per_epoch
    from workbench.core.train.flops import flops_per_token

    quant = cfg.effective_quantization
    if measured_tokens_per_s:
        rate, source = measured_tokens_per_s, "measured by earlier runs of this model here"
    else:
        flops, where = device_peak(device)
        share = EFFICIENCY.get((device.kind, quant), 0.1)
        if peak is not None:
            flops, where, share = peak
        per_token = flops_per_token(matmul_params=matmul_params, trainable_params=trained_params,
                                    n_layers=n_layers, attn_dim=attn_dim,
                                    seq_len=tokens / max(1, examples))
        rate = flops * share / per_token
        kind = {"4bit": "4-bit", "8bit": "8-bit"}.get(quant, "")
        source = f"assumed {share:.0%} of {where}" + (f" ({kind} weights)" if kind else "")
    step_size = cfg.training.micro_batch_size * cfg.training.gradient_accumulation_steps
    per_epoch_steps = steps_per_epoch(examples, step_size)
    steps = planned_steps(examples, cfg.training)
    epoch_s = tokens / rate
    total = epoch_s * steps / max(1, per_epoch_steps)
    return TimeEstimate(steps=steps, epochs=math.ceil(steps / max(1, per_epoch_steps)),
                        epoch_seconds=epoch_s, total_seconds=total, tokens_per_s=rate,
                        source=source)


def device_peak(device: DeviceInfo) -> tuple[float, str]:
    """(peak FLOP/s, its description) for the training precision on `device`."""
    from workbench.core.train.flops import peak_flops

    if device.kind == "cuda":
        value, where = peak_flops("cuda", device.name, "bfloat16")
        if value:
            return value, f"the {device.name}'s bf16 peak"
        return 30e12, "a mid-range GPU's 30 TFLOP/s (this GPU is not in the table)"
    if device.kind == "mps":
        return 5e12, "an Apple GPU's ~5 TFLOP/s"
    return _cpu_peak(), "this CPU's measured matmul peak"


@functools.cache
def _cpu_peak() -> float:
    """Measured once per process (a 1024² float32 matmul, about 0.1 s)."""
    from workbench.core.train.flops import measure_peak_flops

    return measure_peak_flops("cpu", "float32")


def time_for_run(store: Store, cfg: RunConfig, tokens: SetTokens, *, device: DeviceInfo,
                 memory: MemoryEstimate | None = None) -> TimeEstimate:
    """The estimate for `cfg` on `device`, its set rendered as `tokens`."""
    from workbench.core.estimate.fit import estimate_memory
    from workbench.core.model_shape import model_shape
    from workbench.core.train.history import measured_tokens_per_s

    shape = model_shape(cfg.model)
    memory = memory or estimate_memory(cfg, device=device, seq_len=tokens.longest, shape=shape)
    head = shape.head_params or shape.embedding_params  # a tied head still multiplies
    measured = measured_tokens_per_s(store, model=cfg.model.name_or_path, method=cfg.method.name,
                                     device=device.kind)
    return estimate_time(
        cfg, device=device, examples=tokens.examples, tokens=tokens.tokens,
        trained_params=memory.trainable_params, matmul_params=shape.linear_params + head,
        n_layers=shape.n_layers, attn_dim=shape.q_dim, measured_tokens_per_s=measured,
        peak=None if measured else _cpu_bf16_peak(store, cfg, device, shape.total_params))


def _cpu_bf16_peak(store: Store, cfg: RunConfig, device: DeviceInfo,
                   params: int) -> tuple[float, str, float] | None:
    """The peak and share for a CPU run that will train under bf16 autocast, as the run
    settles it from the workspace's calibration (calibrating once, ~2 s, where it has none
    for this CPU and the model is large enough to ask); None for any other run."""
    from workbench.core.train.calibration import CALIBRATION_FILE, cpu_peak, cpu_precision

    if device.kind != "cpu":
        return None
    calibration = store.path.parent / CALIBRATION_FILE
    precision, _ = cpu_precision(cfg.training.mixed_precision, cfg.effective_quantization,
                                 params, calibration)
    if precision != "bf16":
        return None
    return (cpu_peak("bf16", calibration)[0], "this CPU's calibrated bf16 matmul peak",
            CPU_BF16_EFFICIENCY)
