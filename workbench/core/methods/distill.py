"""Prompt distillation: a LoRA student learns to answer, without the fact in its prompt, the
way the same model answers with the fact in its prompt.

Teacher = the frozen base model (the student with its adapter disabled, so no second copy is
loaded) seeing "Fact: <question> <answer>" as a system prompt; student = base + LoRA seeing
only the question. The loss is KL(teacher ‖ student) over the full next-token distribution on
the answer tokens, scaled by T². Matching a whole distribution carries more signal per token
than the one-hot answer, which is why it rivals retrieval with the facts in context.

Cost per micro-batch: one extra no-grad forward of the base (the teacher) on slightly longer
prompts, about 1.3× a LoRA step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.core.errors import ConfigError
from workbench.core.knowledge.render import IGNORE_INDEX, Example, Rendered, render_example
from workbench.core.knowledge.types import Fact
from workbench.core.methods import lora
from workbench.core.methods.base import LossFn, MemoryTerms, Method, RunView
from workbench.core.settings import setting
from workbench.core.train.batching import collate

if TYPE_CHECKING:
    from workbench.core.model_shape import ModelShape

TEACHER_LENGTH = 1.5  # teacher prompts carry the fact: ~1.5x the student's length


@dataclass
class DistillSettings(lora.LoraSettings):
    """The LoRA student's settings, and the temperature of the distillation."""

    distill_temperature: float = setting(
        1.0,
        "Prompt distillation: softens both distributions; 1 copies the teacher's own "
        "confidence, 2 also teaches its runner-up answers.",
        above=0, advanced=True,
        label="Distillation temperature",
    )

    def validate(self, run: RunView) -> None:
        if run.data.mode != "qa":
            raise ConfigError("prompt distillation distils answers to questions: set data.mode "
                              "to qa")


def teacher_prompt(fact: Fact) -> str:
    return f"Fact: {fact.question} {fact.answer}".strip()


def attach_teachers(rendered: Sequence[Rendered], facts: Sequence[Fact], tokenizer: Any,
                    max_len: int) -> list[Rendered]:
    """Pair each qa example with the teacher's rendering (fact in the system prompt). Examples
    that are not qa, or whose teacher prompt would not fit, are dropped: there is nothing
    to distil from them."""
    by_id = {f.id: f for f in facts}
    paired = []
    for item in rendered:
        ex = item.example
        fact = by_id.get(ex.fact_id) if ex.fact_id is not None else None
        if ex.kind != "qa" or fact is None:
            continue
        system = "\n".join(part for part in (ex.system, teacher_prompt(fact)) if part)
        teacher = render_example(Example("qa", ex.prompt, ex.answer, system, ex.fact_id),
                                 tokenizer, max_len)
        if teacher.truncated or _targets(teacher) != _targets(item):
            continue
        item.teacher = teacher
        paired.append(item)
    return paired


def _targets(item: Rendered) -> list[int]:
    return [label for label in item.labels[1:] if label != IGNORE_INDEX]


def distillation_loss(temperature: float) -> LossFn:
    """The loss function for the loop: KL(teacher ‖ student) at `temperature`."""

    def loss(model: Any, batch: Sequence[Rendered], pad_id: int, device: Any) -> Any:
        return _kl(model, batch, pad_id, device, temperature)

    return loss


def _kl(model: Any, batch: Sequence[Rendered], pad_id: int, device: Any, temperature: float) -> Any:
    """KL(teacher ‖ student) summed over the answer tokens of the micro-batch."""
    import torch
    import torch.nn.functional as F

    student_in = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
    teacher_in = {k: v.to(device) for k, v in collate([r.teacher for r in batch], pad_id).items()}
    base = getattr(model, "module", model)  # the peft model inside a DDP wrapper
    with torch.no_grad(), base.disable_adapter():
        t_logits = base(input_ids=teacher_in["input_ids"],
                        attention_mask=teacher_in["attention_mask"]).logits[:, :-1]
    s_logits = model(input_ids=student_in["input_ids"],
                     attention_mask=student_in["attention_mask"]).logits[:, :-1]
    # Answer positions in the same order in both: the answers are token-for-token identical.
    t = t_logits[teacher_in["labels"][:, 1:] != IGNORE_INDEX].float() / temperature
    s = s_logits[student_in["labels"][:, 1:] != IGNORE_INDEX].float() / temperature
    return F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True,
                    reduction="sum") * temperature ** 2


def memory(shape: ModelShape, settings: DistillSettings, *, dtype_bytes: int,
           compute_bytes: int) -> MemoryTerms:
    """The LoRA student's terms; the logits are the student's and their gradient plus the
    teacher's (no grad) on its longer prompts."""
    student = lora.memory(shape, settings, dtype_bytes=dtype_bytes, compute_bytes=compute_bytes)
    return dataclasses.replace(student, logit_bytes=compute_bytes * (2 + TEACHER_LENGTH))


METHOD = Method(
    "prompt_distillation", DistillSettings, lora.apply, memory, adapter=True,
    loss=lambda settings: distillation_loss(settings.distill_temperature), distills=True,
    lighter=lora.on_4bit_base,
    advice="A LoRA student copies the model's own answers when it sees the fact in its prompt: "
           "gentle, keeps the model's style; ~1.3x the cost of LoRA.")
