"""The memory estimate's result: the predicted peak of a run, its parts, and how it reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.core.models import format_bytes, format_count

MiB = 2**20
# Share of the device's memory a run may plan to use: the rest is the OS (CPU), the CUDA
# context and allocator reserve (GPU), and the estimate's own error.
SAFE_SHARE = 0.90


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
    processes: int = 1  # processes of the launch (training.processes); the terms are per process
    sharded: bool = False  # FSDP: weights, trained weights, gradients and optimizer state / N
    suggestion: str = ""  # '' when it fits, else the first change that makes it fit
    suggested_values: tuple[tuple[str, Any], ...] = ()  # that change as ("training.x", value)

    @property
    def limit(self) -> int:
        return int(self.capacity * SAFE_SHARE)

    @property
    def net_activations(self) -> int:
        """Activations live at the peak: what the backward pass frees while gradients
        arrive is not counted twice."""
        return max(0, self.activations - self.overlap)

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
               f"activations {format_bytes(self.net_activations)} at the peak (micro batch "
               f"{self.batch} x {self.seq_len} tokens; logits {format_bytes(self.logits)})"]
        if self.overlap >= MiB:
            # The same net figure as the bar's legend: the gross one beside it read as a
            # contradiction (157.5 vs 158.5 MiB).
            out.append(f"of {format_bytes(self.activations)} of activations, "
                       f"{format_bytes(self.overlap)} are freed as gradients arrive in the "
                       f"backward pass")
        if self.loading_stays:
            out.append(f"checkpoint file kept mapped beside the quantized weights: "
                       f"{format_bytes(self.loading)}")
        elif self.loading > self.trainable + self.optimizer + self.activations - self.overlap:
            out.append(f"loading converts the checkpoint: {format_bytes(self.loading)} extra "
                       f"while loading sets the peak")
        what = "Python and libraries" if self.device == "cpu" else "allocator workspaces"
        out.append(f"runtime {format_bytes(self.runtime)} ({what})")
        if self.sharded:
            out.append(f"per process of {self.processes} (fsdp): weights, trained weights, "
                       f"gradients and optimizer state are each split {self.processes} ways; "
                       f"two layers and the embeddings and head are held whole")
        elif self.processes > 1:
            out.append(f"per process of {self.processes} (ddp): every process holds all of it; "
                       f"training.distributed fsdp would split the weights and optimizer state")
        if self.suggestion:
            out.append(f"to fit: {self.suggestion}")
        return out
