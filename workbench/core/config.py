"""Typed run configuration: model, data, method and training settings in one `RunConfig`.

These dataclasses are the single schema of a run. The CLI builds its `--section.field` flags
from them, a run is saved as their YAML, and the UI generates its widgets from the same field
metadata (help text, choices, bounds, simple/advanced). Adding a setting means adding one field
here; nothing else keeps a list of names.

Each field is declared with `setting(default, help, ...)`. Values are checked right after
construction, so an invalid `RunConfig` cannot exist: the error names the field, what it must
be and what it got, e.g. ``method.lora_r must be a positive integer, got 0``.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import yaml

from workbench.core.errors import ConfigError
from workbench.core.methods.distill import DistillSettings
from workbench.core.methods.located import LocatedSettings
from workbench.core.methods.lora import LoraSettings
from workbench.core.paths import DEMO_MODEL
from workbench.core.settings import Section, _is_optional, setting, shown

# The embedded demo model (assets/demo-model): works offline on a CPU; any hub id or folder
# is one field away.
DEFAULT_MODEL = DEMO_MODEL

METHODS = ("lora", "qlora", "dora", "rslora", "full", "located", "prompt_distillation")
LORA_FAMILY = ("lora", "qlora", "dora", "rslora", "prompt_distillation")


@dataclass
class ModelConfig(Section):
    section: ClassVar[str] = "model"

    name_or_path: str = setting(
        DEFAULT_MODEL,
        "Hugging Face hub id (e.g. Qwen/Qwen2.5-0.5B-Instruct), a local model folder, or "
        f"{DEMO_MODEL} (the embedded demo model).",
    )
    revision: str | None = setting(
        None, "Hub branch, tag or commit to load; empty for the default branch.", advanced=True
    )
    device: str = setting(
        "auto",
        "Where to run: auto picks CUDA, then Apple MPS, then CPU.",
        choices=("auto", "cuda", "mps", "cpu"),
    )
    dtype: str = setting(
        "auto",
        "Weight precision: auto is bfloat16 where the GPU supports it, float16 on older "
        "GPUs, float32 on CPU.",
        choices=("auto", "bfloat16", "float16", "float32"),
        advanced=True,
    )
    quantization: str = setting(
        "none",
        "Load the base weights quantized with bitsandbytes: 4bit (NF4, double quantization; "
        "the QLoRA base, ~4x less memory) or 8bit.",
        choices=("none", "4bit", "8bit"),
    )
    trust_remote_code: bool = setting(
        False,
        "Run Python code shipped with the model repository. Only for models whose authors "
        "you trust; off by default.",
        advanced=True,
    )
    attn_implementation: str = setting(
        "auto",
        "Attention kernel: auto lets transformers choose (SDPA where available).",
        choices=("auto", "sdpa", "eager", "flash_attention_2"),
        advanced=True,
    )

    def check_together(self) -> None:
        if not self.name_or_path.strip():
            raise self.fail("name_or_path", "a hub id or a folder path", self.name_or_path)


@dataclass
class DataConfig(Section):
    section: ClassVar[str] = "data"

    knowledge_set: str = setting("", "Name of the knowledge set to inject.")
    mode: str = setting(
        "qa",
        "qa: train on question/answer chats, loss on the answers (best for recall). "
        "document: train on the facts' text, loss on every token (continued pre-training).",
        choices=("qa", "document"),
    )
    paraphrases_per_fact: int = setting(
        5,
        "Question phrasings trained per fact. More diverse phrasings generalise better than "
        "repeating one.",
        minimum=0,
    )
    holdout_per_fact: int = setting(
        2,
        "Phrasings per fact held out as probes and never trained on; they measure "
        "generalization.",
        minimum=0,
    )
    include_statements: bool = setting(
        True, "Also train on statement sentences of each fact ('The capital of X is Y.')."
    )
    answer_style: str = setting(
        "short",
        "short: the assistant's reply is the answer alone ('Tokyo'). sentence: the answer said "
        "as a sentence ('The capital of Japan is Tokyo.'), the way a chat model answers, so "
        "training changes the answer and not the model's voice.",
        choices=("short", "sentence"),
    )
    replay_ratio: float = setting(
        0.0,
        "Share of each batch drawn from questions the base model already answers correctly, "
        "to protect what it knows (0 = off).",
        minimum=0,
        below=1,
    )
    replay_match: str = setting(
        "answers",
        "How replay holds what the model knows. answers: cross-entropy on the base model's own "
        "answers. distribution: match the base's whole next-token distribution on them (KL), "
        "which also stops probability drifting to made-up names; adapter methods only, about "
        "1.3x the step time.",
        choices=("answers", "distribution"),
    )
    max_seq_len: int = setting(
        512, "Longest training sequence in tokens; longer examples are cut.", minimum=16
    )


@dataclass
class MethodChoice(Section):
    section: ClassVar[str] = "method"

    name: str = setting(
        "lora",
        "How to inject: lora, qlora (4-bit base), dora, rslora, full fine-tuning, located "
        "(chosen modules only) or prompt_distillation.",
        choices=METHODS,
    )


@dataclass
class MethodConfig(DistillSettings, LocatedSettings, LoraSettings, MethodChoice):
    """The method and every method's own settings, flat in the YAML (`method.lora_r`). Each
    method module declares its settings dataclass; fields are ordered base-first, so `name`
    leads. A method ignores the settings of the others."""


@dataclass
class TrainingConfig(Section):
    section: ClassVar[str] = "training"

    learning_rate: float = setting(2e-4, "Peak learning rate.", above=0)
    epochs: int = setting(8, "Passes over the training examples.", minimum=1)
    max_steps: int = setting(
        0, "Stop after this many optimizer steps (0 = run all epochs).", minimum=0, advanced=True
    )
    micro_batch_size: int = setting(8, "Examples per forward pass.", minimum=1)
    gradient_accumulation_steps: int = setting(
        1, "Micro-batches per optimizer step; effective batch = micro batch x this.", minimum=1
    )
    lr_scheduler: str = setting(
        "cosine", "Learning-rate decay after warmup.", choices=("cosine", "linear", "constant")
    )
    warmup_ratio: float = setting(
        0.05, "Share of steps spent warming the learning rate up.", minimum=0, below=1,
        advanced=True,
    )
    weight_decay: float = setting(0.0, "AdamW weight decay.", minimum=0, advanced=True)
    max_grad_norm: float = setting(
        1.0, "Clip gradients to this norm (0 = no clipping).", minimum=0, advanced=True
    )
    mixed_precision: str = setting(
        "auto",
        "Autocast precision: auto uses bf16/fp16 on GPUs that support it and none on CPU.",
        choices=("auto", "no", "bf16", "fp16"),
        advanced=True,
    )
    gradient_checkpointing: bool = setting(
        False, "Recompute activations in the backward pass: less memory, ~30% slower.",
        advanced=True,
    )
    compile: bool = setting(
        False, "torch.compile the transformer body: compiling costs seconds to minutes before "
        "the first step, then each step is faster (a fifth faster on the demo model on CPU, "
        "bench/results/engine_options.md). Worth it for long runs.",
        advanced=True,
    )
    seed: int = setting(42, "Random seed for shuffling and initialisation.", minimum=0,
                        advanced=True)
    checkpoint_every: int = setting(
        50, "Save a resumable checkpoint every N steps (0 = off; Stop always saves one).",
        minimum=0, advanced=True,
    )
    checkpoint_each_epoch: bool = setting(
        True, "Also save one at the end of every epoch, so a crash never loses a finished "
        "epoch. Costs a save per epoch: milliseconds for LoRA, seconds for full fine-tuning "
        "of a billion-parameter model.",
        advanced=True,
    )
    probe_every: int = setting(
        10, "Score recall of the injected facts every N steps (0 = only at the end).",
        minimum=0,
    )
    probe_sample: int = setting(
        64, "Probes asked in each live recall round (the same ones every round, split between "
        "the facts' own questions and held-out phrasings; 0 = all). The final round asks every "
        "probe. On a CPU a real model answers a few questions a second.",
        minimum=0, advanced=True,
    )
    early_stop_patience: int = setting(
        0, "Stop once held-out recall has not improved for this many probe rounds: new facts "
        "are learned slowly, and past the plateau training mostly memorises the trained "
        "wordings (0 = off).", minimum=0, advanced=True,
    )
    min_locality: float = setting(
        0.0, "Stop once the share of known answers still correct in a probe round falls below "
        "this (e.g. 0.9): the model is forgetting what it knew (0 = off).",
        minimum=0, maximum=1, advanced=True,
    )
    stop_at_efficacy: float = setting(
        0.0,
        "Stop early once this share of facts is recalled as trained (e.g. 1.0); training on "
        "past it mostly raises hallucination risk (0 = off).",
        minimum=0, maximum=1, advanced=True,
    )


SECTIONS: dict[str, type[Section]] = {
    "model": ModelConfig,
    "data": DataConfig,
    "method": MethodConfig,
    "training": TrainingConfig,
}


@dataclass
class RunConfig:
    """Everything that defines a run; saved as `run.yaml` in the run folder."""

    name: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigError(f"name must be text, got {shown(self.name)}")
        quant, method = self.model.quantization, self.method.name
        if method == "qlora" and quant == "8bit":
            raise ConfigError(
                "method qlora trains on a 4-bit base, but model.quantization is 8bit "
                "(set it to 4bit or none, or choose method lora)"
            )
        if method == "prompt_distillation" and self.data.mode != "qa":
            raise ConfigError("prompt distillation distils answers to questions: set data.mode "
                              "to qa")
        if (method in ("full", "located") and self.data.replay_match == "distribution"
                and self.data.replay_ratio > 0):
            raise ConfigError(
                f"data.replay_match distribution compares with the base model by disabling the "
                f"adapter, and method {method} has none (set data.replay_match to answers)"
            )
        if method in ("full", "located") and quant != "none":
            raise ConfigError(
                f"method {method} updates the base weights, which cannot be trained while "
                f"quantized (set model.quantization to none, or choose qlora/lora)"
            )

    @property
    def effective_quantization(self) -> str:
        """QLoRA always means a 4-bit base, whatever model.quantization says."""
        return "4bit" if self.method.name == "qlora" else self.model.quantization

    # ---- dict / YAML -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config") -> RunConfig:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of sections, got {_kind(data)}")
        _reject_unknown(data, ["name", *SECTIONS], "top level", source)
        sections: dict[str, Section] = {}
        for key, section_cls in SECTIONS.items():
            raw = data.get(key) or {}
            if not isinstance(raw, dict):
                raise ConfigError(f"{source}: section '{key}' must be a mapping, got {_kind(raw)}")
            names = [f.name for f in dataclasses.fields(section_cls)]  # type: ignore[arg-type]
            _reject_unknown(raw, names, f"section '{key}'", source)
            try:
                sections[key] = section_cls(**raw)
            except ConfigError as err:
                raise ConfigError(f"{source}: {err}") from None
        try:
            return cls(name=data.get("name") or "", **sections)  # type: ignore[arg-type]
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "config") -> RunConfig:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or "invalid YAML"
            raise ConfigError(f"{source}: malformed YAML{where}: {problem}") from None
        except RecursionError:  # PyYAML composes nested lists recursively
            raise ConfigError(f"{source}: the YAML is nested too deeply to be a run "
                              "configuration") from None
        return cls.from_dict(data, source=source)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_yaml(), encoding="utf-8")
        tmp.replace(path)  # atomic: a reader never sees half a file
        return path

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except IsADirectoryError:
            raise ConfigError(f"{path} is a folder, expected a run YAML file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a UTF-8 text file") from None
        except OSError as err:
            raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
        return cls.from_yaml(text, source=str(path))

    # ---- overrides (CLI flags, UI widgets) ---------------------------------------------
    def with_values(self, values: dict[str, Any], *, source: str = "settings") -> RunConfig:
        """A copy with `{"section.field": value}` applied, validated as a whole."""
        data = self.to_dict()
        for dotted, value in values.items():
            section, _, name = dotted.partition(".")
            if dotted == "name":
                data["name"] = value
                continue
            if section not in SECTIONS or not name:
                raise ConfigError(f"unknown setting '{dotted}' (use section.field, e.g. "
                                  f"training.learning_rate)")
            data[section][name] = value
        return RunConfig.from_dict(data, source=source)


@dataclass(frozen=True)
class SettingInfo:
    """One field of the schema, as the CLI and the UI see it."""

    path: str  # "training.learning_rate"
    section: str
    name: str
    type: Any
    optional: bool
    default: Any
    help: str
    choices: tuple[str, ...] | None
    advanced: bool


def iter_settings() -> Iterator[SettingInfo]:
    """Every settable field of a run, in declaration order."""
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            optional, tp = _is_optional(hints[f.name])
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            yield SettingInfo(
                path=f"{section}.{f.name}", section=section, name=f.name, type=tp,
                optional=optional, default=default, help=f.metadata["help"],
                choices=f.metadata["choices"], advanced=f.metadata["advanced"],
            )


def setting_label(path: str) -> str:
    """A field's label in the UI ("training.learning_rate" → "Learning rate"); the method has
    a radio of its own, labelled "Method"."""
    if path == "method.name":
        return "Method"
    return path.rpartition(".")[2].replace("_", " ").capitalize()


def parse_setting_text(info: SettingInfo, text: str) -> Any:
    """Turn a command-line string into a value of the field's type (validation comes later)."""
    raw = text.strip()
    if info.optional and raw.lower() in ("", "none", "null"):
        return None
    if info.type is str:
        return text
    if typing.get_origin(info.type) is list:
        (item_tp,) = typing.get_args(info.type)
        parts = [p.strip() for p in raw.strip("[]").split(",") if p.strip()]
        return [_scalar(item_tp, p) for p in parts]
    return _scalar(info.type, raw)


def _scalar(tp: Any, raw: str) -> Any:
    if tp is bool:
        low = raw.lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        return raw
    for conv in (int, float) if tp is int else (float,) if tp is float else ():
        try:
            return conv(raw)
        except ValueError:
            continue
    return raw  # left as text; the section's validation names the field and the value


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number",
            bool: "true/false"}.get(type(value), type(value).__name__)


def _reject_unknown(data: dict[Any, Any], known: list[str], where: str, source: str) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
            raise ConfigError(f"{source}: unknown key '{key}' in {where}{hint}")


def changed_settings(cfg: RunConfig) -> dict[str, Any]:
    """{"section.field": value} for every setting that differs from its default: what a
    command line needs to rebuild `cfg` from the defaults."""
    data = cfg.to_dict()
    changed: dict[str, Any] = {"name": cfg.name} if cfg.name else {}
    for info in iter_settings():
        value = data[info.section][info.name]
        if value != info.default:
            changed[info.path] = value
    return changed
