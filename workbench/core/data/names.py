"""The names every layer shares: run statuses, score groups and per-step metric names.

Apart from `records.Run` (which parses a run's config, and so sits above config.py), so that
low modules such as the telemetry can use the names without reaching the config and the
methods behind it.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run row's `status`. A StrEnum so that the stored text, comparisons with plain
    strings and f-strings all stay what they were before the enum existed."""

    QUEUED = "queued"
    STARTING = "starting"  # the worker process was spawned and has not claimed its device yet
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"  # its process vanished (killed, crashed, machine restarted)
    FAILED = "failed"
    DIVERGED = "diverged"


# A run in one of these has (or should have) a live worker process.
ACTIVE = (RunStatus.STARTING, RunStatus.RUNNING, RunStatus.STOPPING)
# Runs that ended before their last step and keep checkpoints to continue from.
RESUMABLE = (RunStatus.STOPPED, RunStatus.INTERRUPTED, RunStatus.FAILED)


class ScoreMetric(StrEnum):
    """The groups a probe answer is scored in (`probe_results.metric`)."""

    EFFICACY = "efficacy"  # the fact's own trained question
    GENERALIZATION = "generalization"  # held-out wordings never trained on
    LOCALITY = "locality"  # unrelated questions the base answered correctly
    ABSTENTION = "abstention"  # the scorecard only: questions whose right answer is "unknown"


# What a run's probe rounds score, in the order charts and tables show them.
SCORE_METRICS: tuple[ScoreMetric, ...] = (ScoreMetric.EFFICACY, ScoreMetric.GENERALIZATION,
                                          ScoreMetric.LOCALITY)
# Beside the score metrics: the share of locality answers whose text is the base's.
UNCHANGED = "locality_unchanged"


class StepMetric(StrEnum):
    """What is measured at each optimizer step: the loop's and the telemetry's row keys, the
    `metrics` table's columns and the charts' series are all these names."""

    STEP = "step"
    EPOCH = "epoch"  # fractional: 2.5 is half-way through the third pass
    LOSS = "loss"  # mean over the step's answer tokens
    LR = "lr"
    GRAD_NORM = "grad_norm"
    TOKENS = "tokens"
    STEP_SECONDS = "step_seconds"
    TOKENS_PER_S = "tokens_per_s"  # smoothed over recent steps
    MEM_ALLOCATED = "mem_allocated"  # bytes, as are the other mem_ values
    MEM_RESERVED = "mem_reserved"
    MEM_PEAK = "mem_peak"
    MEM_CAPACITY = "mem_capacity"
    GPU_UTIL = "gpu_util"
    POWER_W = "power_w"
    MFU = "mfu"  # a fraction of the device's peak FLOP/s
    MICRO_BATCH_SIZE = "micro_batch_size"  # an out-of-memory retry lowers it
    EXAMPLES = "examples"


# The columns the training loop fills, in table order; `grad_accum` is filled from the loop's
# `gradient_accumulation_steps`.
STEP_METRICS: tuple[StepMetric, ...] = tuple(StepMetric)
