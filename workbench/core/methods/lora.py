"""LoRA and its variants through peft.

    W' = W + (alpha / r) · B A        A: r×in, B: out×r, B starts at zero
DoRA additionally learns a per-column magnitude (W' = m · (W + BA)/‖W + BA‖); rsLoRA scales by
alpha/√r, which keeps updates stable at large ranks; QLoRA is LoRA on an NF4 4-bit base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.core.errors import ConfigError
from workbench.core.methods.base import Change, MemoryTerms, Method, MethodSettings, RunView
from workbench.core.settings import setting

if TYPE_CHECKING:
    from workbench.core.model_shape import ModelShape

# CPU: DoRA builds weight-sized temporaries for every wrapped linear in every forward (an
# identity matrix in×in, the LoRA product out×in, the merged weight out×in, all fp32). What the
# heap keeps of their per-step sum varied from ~0.1x (hidden 768) to ~0.5x (hidden 1024)
# between models and runs: a rough middle, the least certain term of the estimate.
CPU_DORA_RETAINED = 0.4


@dataclass
class LoraSettings(MethodSettings):
    """Settings of the LoRA family (lora, qlora, dora, rslora; prompt distillation's student)."""

    use_dora: ClassVar[bool] = False
    use_rslora: ClassVar[bool] = False

    lora_r: int = setting(16, "LoRA rank: the adapter's capacity.", minimum=1, label="LoRA rank")
    lora_alpha: float = setting(
        32.0, "LoRA scale numerator; the update is scaled by alpha / r.", above=0,
        label="LoRA alpha",
    )
    lora_dropout: float = setting(
        0.0, "Dropout on the LoRA input during training.", minimum=0, below=1, advanced=True,
        label="LoRA dropout",
    )
    target_modules: list[str] = setting(
        ["all-linear"],
        "Module names the adapter wraps; all-linear wraps every linear layer but the output "
        "head.",
        advanced=True,
        label="Modules to adapt",
    )

    def check_together(self) -> None:
        super().check_together()
        if not self.target_modules:
            raise self.fail("target_modules", "a non-empty list of module names", [])


@dataclass
class QloraSettings(LoraSettings):
    def validate(self, run: RunView) -> None:
        if run.model.quantization == "8bit":
            raise ConfigError(
                "method qlora trains on a 4-bit base, but model.quantization is 8bit "
                "(set it to 4bit or none, or choose method lora)"
            )


@dataclass
class DoraSettings(LoraSettings):
    use_dora: ClassVar[bool] = True


@dataclass
class RsloraSettings(LoraSettings):
    use_rslora: ClassVar[bool] = True


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


def apply(model: Any, settings: LoraSettings) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        # Casts norms to fp32 and enables input grads so adapters on a quantized base train.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        keep_cpu_4bit_differentiable(model)
    targets: Any = settings.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    config = LoraConfig(
        r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
        target_modules=targets, task_type="CAUSAL_LM",
        use_dora=settings.use_dora, use_rslora=settings.use_rslora,
    )
    return get_peft_model(model, config)


# --- memory ---------------------------------------------------------------------------------
def lora_layers(model: Any) -> list[Any]:
    """The peft LoRA-wrapped linear layers of `model` (each with `lora_A`, `lora_B` and
    `base_layer`): what the shrink step scales and the null-space projection constrains."""
    return [m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")
            and len(getattr(m, "lora_A", {})) > 0]


def targets_in(shape: ModelShape, targets: list[str]) -> list[tuple[str, int, int]]:
    """The linears peft wraps: all-linear = all but the output head; names match a module
    whose name equals them or ends with "." + them."""
    if targets == ["all-linear"]:
        return [lin for lin in shape.linears if lin[0] != shape.head_name]
    return [lin for lin in shape.linears
            if any(lin[0] == t or lin[0].endswith("." + t) for t in targets)]


def memory(shape: ModelShape, settings: LoraSettings, *, dtype_bytes: int,
           compute_bytes: int) -> MemoryTerms:
    """r·(in + out) adapter weights per wrapped linear, kept in float32 (peft upcasts 16-bit
    adapters), so their gradients and AdamW moments are float32 too."""
    wrapped = targets_in(shape, settings.target_modules)
    count = sum(settings.lora_r * (i + o) for _, i, o in wrapped)
    return MemoryTerms(trained_params=count, param_bytes=4, adds_weights=True)


def dora_memory(shape: ModelShape, settings: LoraSettings, *, dtype_bytes: int,
                compute_bytes: int) -> MemoryTerms:
    """LoRA plus one magnitude per output feature; the rescaling saves each wrapped linear's
    base and LoRA outputs for the backward pass, and builds fp32 temporaries per linear."""
    wrapped = targets_in(shape, settings.target_modules)
    base = memory(shape, settings, dtype_bytes=dtype_bytes, compute_bytes=compute_bytes)
    in_layers = sum(o for name, _, o in wrapped if name.startswith(shape.layers_prefix + "."))
    temporaries = [_dora_temporaries(i, o) for _, i, o in wrapped]
    return MemoryTerms(
        trained_params=base.trained_params + sum(o for _, _, o in wrapped), param_bytes=4,
        adds_weights=True, layer_values=2 * in_layers // max(shape.n_layers, 1),
        transient=max(temporaries, default=0), heap=CPU_DORA_RETAINED * sum(temporaries))


def _dora_temporaries(fan_in: int, fan_out: int) -> int:
    """fp32 bytes DoRA allocates per wrapped linear per forward: an in×in identity pushed
    through the adapter, the out×in LoRA product and the merged weight whose norm it takes."""
    return (fan_in * fan_in + 2 * fan_in * fan_out) * 4


# --- what to change when a run does not fit -------------------------------------------------
def to_qlora(run: RunView) -> list[Change]:
    return [("use qlora (4-bit base)", {"method.name": "qlora"})]


def on_4bit_base(run: RunView) -> list[Change]:
    """Keeps the method, quantizes its frozen base."""
    if run.effective_quantization != "none":
        return []
    return [("a 4-bit base (model.quantization 4bit)", {"model.quantization": "4bit"})]


METHODS = (
    Method("lora", LoraSettings, apply, memory, adapter=True, lighter=to_qlora,
           advice="Low-rank adapters on every linear layer: the reliable default; small files, "
                  "base model untouched."),
    Method("qlora", QloraSettings, apply, memory, adapter=True, optimizer="paged_adamw_8bit",
           base_quantization="4bit",
           advice="LoRA on a 4-bit base: about a quarter of the weight memory, for bigger models "
                  "on 8-12 GB cards; a little slower."),
    Method("dora", DoraSettings, apply, dora_memory, adapter=True, lighter=on_4bit_base,
           advice="LoRA that also learns each column's magnitude: often closer to full "
                  "fine-tuning, ~20% slower."),
    Method("rslora", RsloraSettings, apply, memory, adapter=True, lighter=on_4bit_base,
           advice="LoRA scaled by 1/sqrt(r): stable at high ranks (r ≥ 64) when many facts need "
                  "capacity."),
)
