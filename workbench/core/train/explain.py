"""A run's state in plain words: what happened, and what to do about it.

The Train tab, the Runs list and `workbench runs show` all say the same thing about a run, so
the wording lives here, next to the statuses the engine writes (`jobs`, `run._failure`). The
message never contains a traceback: the last log lines are offered separately, for those who
want them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.core.data.names import RunStatus

if TYPE_CHECKING:
    from workbench.core.train.verdict import Verdict

DISK_FULL_ADVICE = ("Free space on the disk that holds the workspace (old runs' checkpoints "
                    "are the largest files), then press Resume: a checkpoint is written "
                    "completely or not at all, so the newest complete one is intact.")
OOM_ADVICE = ("Lower training.micro_batch_size (raise gradient_accumulation_steps to keep the "
              "effective batch), turn on training.gradient_checkpointing, shorten "
              "data.max_seq_len, or use qlora (a 4-bit base) or a smaller model. The Method tab's "
              "memory estimate shows which of these fits.")
DIVERGED_ADVICE = ("Lower training.learning_rate (try a third of it) or raise "
                   "training.warmup_ratio; with float16 on an older GPU, bf16 or float32 also "
                   "helps.")
INTERRUPTED_ADVICE = ("Resume continues from the last complete checkpoint; only the steps "
                      "after it are trained again.")
FAILED_ADVICE = ("Fix what the message names and start again; the last log lines below show "
                 "where it stopped.")


@dataclass(frozen=True)
class RunMessage:
    level: str  # ok | info | warning | error: how the UI colours it
    title: str
    detail: str = ""
    advice: str = ""

    def markdown(self) -> str:
        parts = [f"**{self.title}**"]
        if self.detail:
            parts.append(self.detail)
        if self.advice:
            parts.append(f"*What to do:* {self.advice}")
        return "\n\n".join(parts)


def is_out_of_memory(error: str) -> bool:
    low = error.lower()
    return "out of memory" in low or "memoryerror" in low or "cannot allocate memory" in low


def is_disk_full(error: str) -> bool:
    low = error.lower()
    return "no space left on device" in low or "disk quota exceeded" in low


def explain_run(run: dict[str, Any], step: int | None = None,
                verdict: Verdict | None = None) -> RunMessage:
    """The message for a run row; `step` is the last step with metrics, if known; `verdict`
    the finished run's (`verdict.run_verdict`), which a completed run leads with."""
    status = run.get("status") or "unknown"
    total = run.get("total_steps")
    where = f" at step {step} of {total}" if step and total else f" at step {step}" if step else ""
    error = (run.get("error") or "").strip()
    name = f"Run {run.get('id', '?')}"
    if status in (RunStatus.QUEUED, RunStatus.STARTING):
        return RunMessage("info", f"{name} is starting",
                          "Loading the model and preparing the knowledge set.")
    if status == RunStatus.RUNNING:
        return RunMessage("info", f"{name} is training{where}")
    if status == RunStatus.STOPPING:
        return RunMessage("info", f"{name} is stopping{where}",
                          "It finishes the current step, saves a checkpoint and exits.")
    if status == RunStatus.COMPLETED:
        # Why it ended before its last step belongs in the title: "completed at step 280 of
        # 315" alone reads like something went wrong.
        early = run.get("stop_reason") or ""
        ended = f"stopped early{where} ({early})" if early else f"completed{where}"
        if verdict is None:
            return RunMessage("ok", f"{name} {ended}")
        level = {"good": "ok", "warning": "warning", "broken": "error"}[verdict.level]
        details = [d for d in verdict.details if not d.startswith("Stopped early")]
        return RunMessage(level, f"{name} {ended}: {verdict.headline}", " ".join(details),
                          verdict.advice)
    if status == RunStatus.STOPPED:
        return RunMessage("ok", f"{name} was stopped{where}",
                          error or "Its checkpoint and adapter are saved.",
                          "Resume continues it; Compare shows what it learned so far.")
    if status == RunStatus.DIVERGED:
        return RunMessage("error", f"{name} diverged{where}",
                          f"The loss stopped being a number: {error}" if error else
                          "The loss stopped being a number.", DIVERGED_ADVICE)
    if status == RunStatus.INTERRUPTED:
        return RunMessage("warning", f"{name} was interrupted{where}",
                          error or "The training process ended without finishing.",
                          INTERRUPTED_ADVICE)
    if status == RunStatus.FAILED:
        if is_out_of_memory(error):
            return RunMessage("error", f"{name} ran out of memory{where}", error, OOM_ADVICE)
        if is_disk_full(error):
            return RunMessage("error", f"{name} stopped: the disk is full{where}", error,
                              DISK_FULL_ADVICE)
        return RunMessage("error", f"{name} failed{where}", error or "No error was recorded.",
                          FAILED_ADVICE)
    return RunMessage("warning", f"{name}: status {status}", error)
