"""LoRA and its variants through peft.

    W' = W + (alpha / r) · B A        A: r×in, B: out×r, B starts at zero
DoRA additionally learns a per-column magnitude (W' = m · (W + BA)/‖W + BA‖); rsLoRA scales by
alpha/√r, which keeps updates stable at large ranks; QLoRA is LoRA on an NF4 4-bit base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.core.settings import Section, setting

if TYPE_CHECKING:
    from workbench.core.config import MethodConfig

@dataclass
class LoraSettings(Section):
    """Settings of the LoRA family (lora, qlora, dora, rslora; prompt distillation's student)."""

    section: ClassVar[str] = "method"

    lora_r: int = setting(16, "LoRA rank: the adapter's capacity.", minimum=1)
    lora_alpha: float = setting(
        32.0, "LoRA scale numerator; the update is scaled by alpha / r.", above=0
    )
    lora_dropout: float = setting(
        0.0, "Dropout on the LoRA input during training.", minimum=0, below=1, advanced=True
    )
    target_modules: list[str] = setting(
        ["all-linear"],
        "Module names the adapter wraps; all-linear wraps every linear layer but the output "
        "head.",
        advanced=True,
    )

    def check_together(self) -> None:
        super().check_together()
        if not self.target_modules:
            raise self.fail("target_modules", "a non-empty list of module names", [])


ADVICE = {
    "lora": "Low-rank adapters on every linear layer: the reliable default; small files, "
            "base model untouched.",
    "qlora": "LoRA on a 4-bit base: about a quarter of the weight memory, for bigger models on "
             "8-12 GB cards; a little slower.",
    "dora": "LoRA that also learns each column's magnitude: often closer to full fine-tuning, "
            "~20% slower.",
    "rslora": "LoRA scaled by 1/sqrt(r): stable at high ranks (r ≥ 64) when many facts need "
              "capacity.",
}


def keep_cpu_4bit_differentiable(model: Any) -> None:
    """bitsandbytes repacks a CPU 4-bit layer for a faster kernel the first time it runs in
    eval mode without grad (e.g. a live probe), and that kernel has no backward: later
    training steps would then silently lose the gradient through every base layer. Turning
    the repacking off (and undoing it where it already happened) keeps training exact; the
    cost is slower CPU 4-bit generation inside the training process only."""
    from bitsandbytes.nn.modules import _convert_weight_packed_for_cpu_inverse

    for module in model.modules():
        if not hasattr(module, "support_avx512bf16_for_cpu"):
            continue
        module.support_avx512bf16_for_cpu = False
        state = getattr(module.weight, "quant_state", None)
        if getattr(state, "packing_format_for_cpu", False):
            module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                module.weight.data, state)


def apply(model: Any, cfg: MethodConfig) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        # Casts norms to fp32 and enables input grads so adapters on a quantized base train.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        keep_cpu_4bit_differentiable(model)
    targets: Any = cfg.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    config = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=targets, task_type="CAUSAL_LM",
        use_dora=cfg.name == "dora", use_rslora=cfg.name == "rslora",
    )
    return get_peft_model(model, config)
