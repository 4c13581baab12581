"""What a method declares: its settings, its rules, its memory terms, its advice, its loss and
optimizer, and what its outputs are. One `Method` per name; `registry` lists them.

Nothing here imports config.py or the training loop: config builds its method section from
the registry (so config sits above the methods), and the loop is handed a method's loss, not
the other way round. A method's rules read the run through `RunView`, the few attributes a
rule needs, so a method module never needs the whole `RunConfig` type.

Adding a method: one module with a `MethodSettings` dataclass (its fields, with help text, and
its `validate`), a build function (peft's, where it exists), a memory function and a `Method`
naming them; then one line in registry.py, or `registry.register(method)` from outside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from workbench.core.settings import Section

if TYPE_CHECKING:
    from workbench.core.model_shape import ModelShape
    from workbench.core.sections import DataConfig, ModelConfig, TrainingConfig

# (model, micro-batch, pad id, device) → the loss summed over the micro-batch's loss tokens;
# the loop's own token loss is used where a method brings none.
LossFn = Callable[[Any, Any, int, Any], Any]
Change = tuple[str, dict[str, Any]]  # (what to tell the user, the settings it sets)


class RunView(Protocol):
    """The run as a method's rules see it (config.RunConfig is one)."""

    model: ModelConfig
    data: DataConfig
    training: TrainingConfig

    @property
    def effective_quantization(self) -> str: ...


class MethodSettings(Section):
    """Base of every method's settings dataclass; fields live flat in the YAML's `method:`."""

    section: ClassVar[str] = "method"

    def validate(self, run: RunView) -> None:
        """Rules that tie this method to the rest of the run (the model's quantization, the
        data mode). Raise ConfigError saying what to change; checked on every RunConfig."""


@dataclass(frozen=True)
class MemoryTerms:
    """What a method adds to the base model's memory, for the pre-flight estimate
    (estimate/terms.py sums them; its docstring says what each costs and why)."""

    trained_params: int
    param_bytes: int  # bytes per trained weight; its gradient and each AdamW moment cost as much
    adds_weights: bool  # trained weights stored beside the base (adapters), not inside it
    layer_values: int = 0  # extra activation values autograd saves per token per decoder layer
    saved_layers: int | None = None  # decoder layers whose activations are kept (None: all)
    transient: int = 0  # the largest weight-sized temporary of one forward, in bytes
    heap: float = 0.0  # CPU: bytes of the method's per-step temporaries glibc's heap keeps
    logit_bytes: float | None = None  # per vocabulary entry per token (None: the token loss's)


class MemoryFn(Protocol):
    """A method's memory terms for a model of `shape` at the run's weight and compute
    precisions (bytes per value)."""

    def __call__(self, shape: ModelShape, settings: Any, *, dtype_bytes: int,
                 compute_bytes: int) -> MemoryTerms: ...


class SectionView(Protocol):
    """The run's method section as a method reads it (config's MethodConfig is one)."""

    name: str

    def settings_for(self, name: str) -> MethodSettings: ...


def _token_loss(settings: Any) -> LossFn | None:
    return None


def _nothing_lighter(run: RunView) -> list[Change]:
    return []


@dataclass(frozen=True)
class Method:
    """One injection method, as its module declares it."""

    name: str
    settings: type[MethodSettings]  # its settings dataclass, with its validate(run)
    build: Callable[[Any, Any], Any]  # (base model, its settings) → the model to train
    memory: MemoryFn  # its terms in the memory estimate
    advice: str  # one line for users choosing a method
    # Its outputs: a peft adapter (True) or the full weights (False); outputs.py saves and
    # loads either, so a method only says which.
    adapter: bool
    loss: Callable[[Any], LossFn | None] = _token_loss  # its own loss, from its settings
    optimizer: str = "adamw"  # adamw | paged_adamw_8bit
    distills: bool = False  # needs teacher renderings (the fact in the prompt)
    base_quantization: str | None = None  # a base precision it always trains on (qlora: 4bit)
    lighter: Callable[[RunView], list[Change]] = _nothing_lighter  # less memory, same aim

    def apply(self, model: Any, section: SectionView) -> Any:
        """The model to train, with exactly the parameters this method updates trainable."""
        return self.build(model, section.settings_for(self.name))

    def loss_for(self, section: SectionView) -> LossFn | None:
        """The method's own loss, or None for the loop's token loss."""
        return self.loss(section.settings_for(self.name))


def field_names(cls: type[Section]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
