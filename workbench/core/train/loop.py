"""The training loop, explicit and on `accelerate` (so `accelerate launch` can spread the same
loop over several devices).

Per optimizer step: `gradient_accumulation_steps` micro-batches forward/backward, clip,
step, schedule, then one metrics dict to `on_step`. The loss of a step is the mean over its
micro-batches; tokens are counted without padding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.core.config import TrainingConfig
from workbench.core.knowledge.render import Rendered
from workbench.core.train.batching import collate, epoch_batches, real_tokens

OnStep = Callable[[dict[str, Any]], None]


@dataclass
class LoopResult:
    steps: int
    stopped: bool
    final_loss: float | None


def planned_steps(n_examples: int, cfg: TrainingConfig) -> int:
    per_epoch = math.ceil(math.ceil(n_examples / cfg.micro_batch_size) / cfg.gradient_accumulation_steps)
    total = per_epoch * cfg.epochs
    return min(total, cfg.max_steps) if cfg.max_steps else total


def _mixed_precision(cfg: TrainingConfig, device: str) -> str:
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"  # CPU autocast to bf16 is slower than fp32 on most desktop CPUs


def train_loop(model: Any, examples: Sequence[Rendered], cfg: TrainingConfig, *, pad_id: int,
               device: str, on_step: OnStep = lambda m: None,
               should_stop: Callable[[], bool] = lambda: False) -> LoopResult:
    import torch
    from accelerate import Accelerator
    from transformers import get_scheduler

    if not examples:
        raise ValueError("no training examples")
    accelerator = Accelerator(gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                              mixed_precision=_mixed_precision(cfg, device),
                              cpu=device == "cpu")
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    total = planned_steps(len(examples), cfg)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer,
                              num_warmup_steps=int(cfg.warmup_ratio * total),
                              num_training_steps=total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    step, losses, tokens, started, last_loss = 0, [], 0, time.perf_counter(), None
    for epoch in range(cfg.epochs):
        batches = epoch_batches(examples, cfg.micro_batch_size, seed=cfg.seed, epoch=epoch)
        for index, batch in enumerate(batches):
            with accelerator.accumulate(model):
                inputs = {k: v.to(accelerator.device) for k, v in collate(batch, pad_id).items()}
                loss = model(**inputs).loss
                accelerator.backward(loss)
                # .item() is a host-device sync; once per micro-batch is cheap next to a step.
                losses.append(loss.detach().float().item())
                tokens += real_tokens(batch)
                if not accelerator.sync_gradients:
                    continue
                grad_norm = (accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                             if cfg.max_grad_norm > 0 else None)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            step += 1
            seconds = time.perf_counter() - started
            last_loss = sum(losses) / len(losses)
            on_step({
                "step": step, "epoch": epoch + (index + 1) / len(batches), "loss": last_loss,
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": float(grad_norm) if grad_norm is not None else None,
                "tokens": tokens, "step_seconds": seconds, "tokens_per_s": tokens / seconds,
            })
            losses, tokens, started = [], 0, time.perf_counter()
            if step >= total or should_stop():
                return LoopResult(step, step < total, last_loss)
    return LoopResult(step, False, last_loss)
