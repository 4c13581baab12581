"""The training loop, explicit and on `accelerate`, so `accelerate launch` spreads the same
loop over several processes (DDP, or FSDP2 with `training.distributed: fsdp`, `sharding`)
without a line changing.

One optimizer step = the examples the data plan gives that step (effective batch = micro
batch × accumulation × processes), cut into micro-batches; forward/backward each (gradients
all-reduced only on the last), clip, step, schedule. The loss is the mean over every
loss-carrying token of the step across all micro-batches and processes — not a mean of
per-batch means, which would weight the tokens of short examples more.

Out of memory on a step: the gradients of the failed attempt are dropped, the micro-batch is
halved and the accumulation doubled, and the same step is retried (same effective batch, same
data), down to a micro-batch of 1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.core.data.names import StepMetric
from workbench.core.device import is_sharded
from workbench.core.sections import TrainingConfig
from workbench.core.errors import WorkbenchError
from workbench.core.knowledge.render import IGNORE_INDEX, Rendered
from workbench.core.train import sharding
from workbench.core.train.batching import (collate, loss_tokens, micro_batches, of_epoch,
                                           plan_epoch, rank_share, real_tokens,
                                           steps_per_epoch)

# (model, micro-batch, pad id, device) → the loss *summed* over the micro-batch's loss tokens
LossFn = Callable[[Any, Sequence[Rendered], int, Any], Any]
OnStep = Callable[[dict[str, Any]], bool | None]  # return True to stop after this step


class OutOfMemory(WorkbenchError):
    pass


@dataclass
class LoopResult:
    steps: int
    stopped: bool
    final_loss: float | None


def planned_steps(n_examples: int, cfg: TrainingConfig, processes: int = 1,
                  step_size: int | None = None) -> int:
    step_size = step_size or cfg.micro_batch_size * cfg.gradient_accumulation_steps * processes
    total = steps_per_epoch(n_examples, step_size) * cfg.epochs
    return min(total, cfg.max_steps) if cfg.max_steps else total


def split_step(step_size: int, micro: int, world: int) -> tuple[int, int]:
    """(micro-batch, accumulation) making `step_size` examples a step on `world` processes:
    the micro-batch asked for where it divides, else a smaller one. A run trained on two
    processes and resumed on one accumulates twice as many micro-batches, so its steps, its
    schedule and its data plan stay the same."""
    if step_size % world:
        raise WorkbenchError(
            f"this run takes {step_size} examples a step, which {world} processes cannot share "
            f"evenly", hint=f"resume it on a number of processes that divides {step_size}")
    per_process = step_size // world
    micro = max(m for m in range(1, min(micro, per_process) + 1) if per_process % m == 0)
    return micro, per_process // micro


def causal_lm_loss(model: Any, batch: Sequence[Rendered], pad_id: int, device: Any) -> Any:
    """Next-token cross-entropy summed over the label tokens (the caller normalises). The
    output head runs on the label tokens only where the model allows (`head_loss`)."""
    from workbench.core.train import head_loss

    head = head_loss.output_head(model)
    if head is not None:
        return loss_token_cross_entropy(model, head, batch, pad_id, device)
    return full_logits_loss(model, batch, pad_id, device)


def loss_token_cross_entropy(model: Any, head: Any, batch: Sequence[Rendered], pad_id: int,
                             device: Any) -> Any:
    """Next-token cross-entropy summed over the label tokens, the head run on those only.
    Here rather than in `head_loss`: `shared_prefix` builds on `head_loss`, so `head_loss`
    reaching back for `run_with_head` would make the two import each other."""
    from workbench.core.train.head_loss import LossHead
    from workbench.core.train.shared_prefix import run_with_head

    inputs = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
    return run_with_head(model, inputs, lambda labels: LossHead(head, labels))


def full_logits_loss(model: Any, batch: Sequence[Rendered], pad_id: int, device: Any) -> Any:
    """The plain way: logits at every position, cross-entropy where there is a label."""
    import torch.nn.functional as F

    inputs = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), inputs["labels"][:, 1:].flatten(),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def mixed_precision(cfg: TrainingConfig, device: str) -> str:
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # CPU autocast to bf16 is slower than fp32 on most desktop CPUs; a run settles "auto" on
    # a CPU before the loop, from this CPU's calibration (`run._precision`)
    return "no"


# AdamW's epsilon (torch's default). 1e-4, near the median of the update's gradient scale on
# SmolLM2-135M, damps the parameters the facts barely pull; it learned the facts later (66% at
# step 120 of 196, against 95%), the update could not be shrunk, and it kept less (87% of known
# answers against 92%; `bench/recipe.py adam-eps-1e-4`).
ADAM_EPS = 1e-8


def make_optimizer(params: list[Any], cfg: TrainingConfig, kind: str, device: str) -> Any:
    """AdamW; `paged_adamw_8bit` (QLoRA's optimizer: 8-bit moments paged to CPU under memory
    pressure) where bitsandbytes has CUDA, since its paging is CUDA unified memory."""
    import torch

    groups = decay_groups(params, cfg.weight_decay)
    if kind == "paged_adamw_8bit" and device.startswith("cuda"):
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit(groups, lr=cfg.learning_rate, eps=ADAM_EPS,
                                        weight_decay=cfg.weight_decay)
    # Fused: one kernel for all parameters, on CPU and CUDA (the HF Trainer's default too).
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                             eps=ADAM_EPS, fused=True)


def decay_groups(params: list[Any], weight_decay: float) -> list[Any]:
    """Weight decay on matrices only (the HF Trainer's rule: no decay on biases and norms).
    It matters past the usual 0.01: decay pulls a weight toward zero, which for a LoRA matrix
    is toward the base model, but for DoRA's magnitude vector (one scale per output, started
    at the weight's norm) shrinks every output — at 1.0 and a 2e-3 rate, a third of it in
    200 steps. Without decay the parameters stay one group, as before."""
    if not weight_decay:
        return params
    groups = [{"params": [p for p in params if p.ndim >= 2]},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def compile_body(model: Any) -> None:
    """torch.compile the decoder stack in place, leaving the head and the loss eager: the
    head is swapped per micro-batch (`head_loss`), which would recompile a whole-model graph.
    Dynamic shapes, since batches differ in length: one graph for every length."""
    from workbench.core.train.head_loss import causal_model

    causal = causal_model(model)
    body = causal.get_decoder() if hasattr(causal, "get_decoder") else None
    if body is None:
        raise WorkbenchError("training.compile: this model has no decoder stack to compile",
                             hint="turn training.compile off")
    body.compile(dynamic=True)


class TrainLoop:
    """Holds the prepared model, optimizer and schedule, and the position in the data plan,
    so the caller can checkpoint and restore between steps."""

    def __init__(self, model: Any, examples: Sequence[Rendered], cfg: TrainingConfig, *,
                 pad_id: int, device: str, loss: LossFn | None = None,
                 optimizer: str = "adamw", trackers: dict[str, Any] | None = None,
                 after_step: Callable[[], None] | None = None,
                 step_size: int | None = None) -> None:
        from accelerate import Accelerator
        from transformers import get_scheduler

        if not examples:
            raise ValueError("no training examples")
        # None: the token loss (a method without a loss of its own says so by returning None)
        self.loss = loss or causal_lm_loss
        self.cfg, self.examples, self.pad_id = cfg, list(examples), pad_id
        self.after_step = after_step  # a constraint on the weights after each update
        plugin = sharding.fsdp_plugin() if sharding.wants_fsdp(cfg.distributed) else None
        precision = mixed_precision(cfg, device)
        # bf16 on a CPU is autocast around the loss here, not by accelerate: its state is one
        # per process and refuses another precision for a later run of the same process.
        self.cpu_bf16 = device == "cpu" and precision == "bf16"
        self.accelerator = Accelerator(mixed_precision="no" if self.cpu_bf16 else precision,
                                       cpu=device == "cpu", fsdp_plugin=plugin,
                                       **(trackers or {}))
        if plugin is not None:
            sharding.adopt(self.accelerator, plugin)
        self.world = self.accelerator.num_processes
        self.micro, self.accum = cfg.micro_batch_size, cfg.gradient_accumulation_steps
        if step_size:  # a resume on another number of processes keeps the run's step size
            self.micro, self.accum = split_step(step_size, self.micro, self.world)
        self.step_size = self.micro * self.accum * self.world  # fixed for the whole run
        # Every epoch trains on as many examples (replay dealt over epochs in equal parts).
        per_epoch = len(of_epoch(self.examples, 0))
        self.per_epoch = steps_per_epoch(per_epoch, self.step_size)
        self.total = planned_steps(per_epoch, cfg, step_size=self.step_size)
        if cfg.gradient_checkpointing:
            # Non-reentrant checkpointing needs no input grads, so it works under adapters too.
            # transformers 5 renamed it; older versions only have gradient_checkpointing_enable.
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            model.config.use_cache = False
        if cfg.compile:
            compile_body(model)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters")
        opt = make_optimizer(self.params, cfg, optimizer, device)
        # The scheduler is stepped by hand once per optimizer step: accelerate's wrapper would
        # step it once per process, but `total` already counts steps across processes.
        self.scheduler = get_scheduler(cfg.lr_scheduler, opt,
                                       num_warmup_steps=int(cfg.warmup_ratio * self.total),
                                       num_training_steps=self.total)
        self.model, self.optimizer = self.accelerator.prepare(model, opt)
        # FSDP replaces every parameter with a sharded one: clipping must see those.
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        lockstep = is_sharded(self.model)
        if lockstep:
            sharding.enable_generate(self.model)
        self.ranks = sharding.Ranks(main=self.accelerator.is_main_process, world=self.world,
                                    lockstep=lockstep, device=str(self.accelerator.device))
        self.step = 0
        self.oom_retries = 0
        self._plans: dict[int, list[list[Rendered]]] = {}

    @property
    def compute_dtype(self) -> str | None:
        """The precision the matmuls run in under autocast ("bf16", "fp16"), else None."""
        if self.cpu_bf16:
            return "bf16"
        mixed = str(self.accelerator.mixed_precision)
        return mixed if mixed in ("bf16", "fp16") else None

    def _autocast(self) -> Any:
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16) if self.cpu_bf16 else nullcontext()

    # --- state for checkpoints -----------------------------------------------------------
    @property
    def unwrapped(self) -> Any:
        return self.accelerator.unwrap_model(self.model)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "micro_batch_size": self.micro,
                "gradient_accumulation_steps": self.accum, "processes": self.world,
                "step_size": self.step_size}

    def save(self, run_dir: Path, extra: dict[str, Any]) -> Path | None:
        """A complete checkpoint of this step (written by the main process only)."""
        from workbench.core.train.checkpoint import Gathered, prune_checkpoints, save_checkpoint

        self.accelerator.wait_for_everyone()
        path, gathered = None, None
        if self.ranks.lockstep:  # every rank sends its slices; rank 0 gets them whole
            gathered = Gathered(sharding.full_state(self.unwrapped, trainable_only=True),
                                sharding.full_optimizer(self.unwrapped, self.optimizer.optimizer))
        if self.is_main:
            path = save_checkpoint(run_dir, self.step, self.unwrapped, self.optimizer.optimizer,
                                   self.scheduler, {**self.state(), **extra}, gathered=gathered)
            prune_checkpoints(run_dir, keep=2)
        self.accelerator.wait_for_everyone()
        return path

    def restore(self, path: Path) -> dict[str, Any]:
        from workbench.core.train.checkpoint import load_checkpoint

        state = load_checkpoint(path, self.unwrapped, self.optimizer.optimizer, self.scheduler,
                                apply=sharding.load_full if self.ranks.lockstep else None)
        self.step = int(state["step"])
        if int(state.get("processes", 1)) == self.world:
            # Keep a micro-batch that an out-of-memory retry had to shrink.
            self.micro = int(state.get("micro_batch_size", self.micro))
            self.accum = int(state.get("gradient_accumulation_steps", self.accum))
        return state

    # --- the loop ------------------------------------------------------------------------
    def _plan(self, epoch: int) -> list[list[Rendered]]:
        if epoch not in self._plans:
            self._plans = {epoch: plan_epoch(self.examples, self.step_size, seed=self.cfg.seed,
                                             epoch=epoch)}
        return self._plans[epoch]

    def run(self, on_step: OnStep = lambda row: None) -> LoopResult:
        self.model.train()
        last_loss = None
        while self.step < self.total:
            epoch, index = divmod(self.step, self.per_epoch)
            step_examples = self._plan(epoch)[index]
            rank = self.accelerator.process_index
            share = rank_share(step_examples, rank, self.world)
            started = time.perf_counter()
            # A process given a repeat (a step shorter than the processes) counts no tokens.
            loss, grad_norm, tokens = self._step_with_retry(
                share, counted=bool(step_examples[rank::self.world]))
            self.step += 1
            last_loss = loss
            row = {
                StepMetric.STEP: self.step, StepMetric.EPOCH: epoch + (index + 1) / self.per_epoch,
                StepMetric.LOSS: loss, StepMetric.LR: self.scheduler.get_last_lr()[0],
                StepMetric.GRAD_NORM: grad_norm, StepMetric.TOKENS: tokens,
                StepMetric.STEP_SECONDS: time.perf_counter() - started,
                StepMetric.MICRO_BATCH_SIZE: self.micro, "gradient_accumulation_steps": self.accum,
                StepMetric.EXAMPLES: len(step_examples),
            }
            if on_step(row) and self.step < self.total:
                return LoopResult(self.step, True, last_loss)
        return LoopResult(self.step, False, last_loss)

    def _step_with_retry(self, share: list[Rendered], *,
                         counted: bool = True) -> tuple[float, float, int]:
        while True:
            try:
                return self._step(share, counted=counted)
            except Exception as err:  # noqa: BLE001 - only out-of-memory is retried
                if not is_out_of_memory(err) or self.world > 1:
                    raise  # with several processes the others would wait in the all-reduce
                self._free_memory()
                if self.micro == 1:
                    raise OutOfMemory(
                        "out of memory even with a micro-batch of 1",
                        hint="lower data.max_seq_len, turn on training.gradient_checkpointing, "
                             "or choose qlora (4-bit base) or a smaller model") from None
                self.micro //= 2
                self.accum *= 2
                self.oom_retries += 1

    def _free_memory(self) -> None:
        import gc

        import torch

        self.optimizer.zero_grad(set_to_none=True)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _step(self, share: list[Rendered], *, counted: bool = True) -> tuple[float, float, int]:
        import torch

        from workbench.core.train import shared_prefix

        shared_prefix.take_saved()  # nothing left over from a step retried after OOM
        acc = self.accelerator
        counts = torch.tensor([loss_tokens(share), real_tokens(share) if counted else 0],
                              device=acc.device)
        n_items, tokens = (acc.reduce(counts, "sum") if self.world > 1 else counts).tolist()
        # DDP and FSDP average gradients over processes; scaling by world/n makes the result
        # the mean over all tokens of the step.
        scale = self.world / max(n_items, 1)
        batches = micro_batches(share, self.micro)
        total = torch.zeros((), device=acc.device)
        for i, batch in enumerate(batches):
            sync = i == len(batches) - 1
            with nullcontext() if sync or self.world == 1 else acc.no_sync(self.model):
                with self._autocast():
                    loss_sum = self.loss(self.model, batch, self.pad_id, acc.device)
                acc.backward(loss_sum * scale)
            total += loss_sum.detach().float()
        # max_grad_norm 0 = no clipping; the norm is still measured for the charts.
        limit = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else math.inf
        grad_norm = acc.clip_grad_norm_(self.params, limit)
        self.optimizer.step()
        if self.after_step is not None:
            self.after_step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world > 1:
            total = acc.reduce(total, "sum")
        else:  # a shared prompt start runs once per micro-batch (only in one process)
            tokens -= shared_prefix.take_saved()
        return total.item() / max(n_items, 1), float(grad_norm), int(tokens)


def train_loop(model: Any, examples: Sequence[Rendered], cfg: TrainingConfig, *, pad_id: int,
               device: str, on_step: OnStep = lambda row: None, **kwargs: Any) -> LoopResult:
    """Train start to finish in this process (no checkpoints): for tests and notebooks."""
    return TrainLoop(model, examples, cfg, pad_id=pad_id, device=device, **kwargs).run(on_step)
