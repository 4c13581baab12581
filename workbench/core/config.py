"""Typed run configuration: model, data, method and training settings in one `RunConfig`.

These sections are the single schema of a run. The CLI builds its `--section.field` flags
from them, a run is saved as their YAML, and the UI generates its widgets from the same field
metadata (help text, choices, bounds, simple/advanced). The model, data and training sections
are declared in sections.py; the method section is the registry's (methods/section.py): each
method module declares its own settings dataclass, and a method's rules about the rest of the
run live in its `validate`. Adding a setting means adding one field; nothing else keeps a list
of names.

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
from typing import TYPE_CHECKING, Any, Iterator

import yaml

from workbench.core.errors import ConfigError
from workbench.core.methods.registry import METHODS, get_method
from workbench.core.methods.section import MethodConfig, schema
from workbench.core.sections import DEFAULT_MODEL, DataConfig, ModelConfig, TrainingConfig
from workbench.core.settings import _is_optional, shown

if TYPE_CHECKING:
    from workbench.core.data.records import Run

__all__ = ["DEFAULT_MODEL", "METHODS", "SECTIONS", "DataConfig", "MethodConfig", "ModelConfig",
           "RunConfig", "SettingInfo", "TrainingConfig", "changed_settings", "iter_settings",
           "parse_setting_text", "setting_label"]

SECTIONS: dict[str, type[Any]] = {
    "model": ModelConfig,
    "data": DataConfig,
    "method": MethodConfig,
    "training": TrainingConfig,
}

# Keys a run config once had and no longer has, dropped when a saved config is read so that
# every stored run and exported YAML still loads. `data.paraphrases_per_fact` and
# `data.holdout_per_fact` were never read by a run: phrasings and the held-out split belong to
# the knowledge set (its Paraphrase and Split steps, or `inject`'s preparation), shared by
# every run on it so that their scores compare; as run settings they only misled.
RETIRED: dict[str, frozenset[str]] = {
    "data": frozenset({"paraphrases_per_fact", "holdout_per_fact"}),
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
        # Rules that tie the method to the other sections belong to the method (its
        # settings' validate), so a new method brings its own.
        self.method.settings.validate(self)
        if self.training.distributed == "fsdp" and self.training.protect_known:
            raise ConfigError(
                "training.protect_known projects each whole LoRA matrix, which a sharded "
                "(fsdp) run never holds in one process",
                hint="set training.protect_known to 0 or training.distributed to ddp")

    @property
    def effective_quantization(self) -> str:
        """The base's precision: a method may always train on one (QLoRA: 4-bit), whatever
        model.quantization says."""
        return get_method(self.method.name).base_quantization or self.model.quantization

    # ---- dict / YAML -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": dataclasses.asdict(self.model),
                "data": dataclasses.asdict(self.data), "method": self.method.to_dict(),
                "training": dataclasses.asdict(self.training)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config") -> RunConfig:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of sections, got {_kind(data)}")
        _reject_unknown(data, ["name", *SECTIONS], "top level", source)
        sections: dict[str, Any] = {}
        for key, section_cls in SECTIONS.items():
            raw = data.get(key) or {}
            if not isinstance(raw, dict):
                raise ConfigError(f"{source}: section '{key}' must be a mapping, got {_kind(raw)}")
            raw = {k: v for k, v in raw.items() if k not in RETIRED.get(key, ())}
            names = [f.name for f in dataclasses.fields(section_cls)]
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

    @classmethod
    def from_run(cls, run: Run) -> RunConfig:
        """The config a run was started with, parsed from its stored YAML. Parsed here and
        not by `Run` itself: the data layer sits below this module, which knows the methods."""
        return cls.from_yaml(run.config_yaml, source=f"run {run.id}")

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
            if name in RETIRED.get(section, ()):
                raise ConfigError(f"'{dotted}' is no longer a run setting: phrasings and the "
                                  "held-out split are the knowledge set's (its Paraphrase and "
                                  "Split steps)")
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
    label: str = ""

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.type) is list


def iter_settings() -> Iterator[SettingInfo]:
    """Every settable field of a run, in declaration order (the method section's as the
    registry has them now)."""
    for section, cls in SECTIONS.items():
        fields_of = schema() if cls is MethodConfig else cls
        hints = typing.get_type_hints(fields_of)
        for f in dataclasses.fields(fields_of):
            optional, tp = _is_optional(hints[f.name])
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            yield SettingInfo(
                path=f"{section}.{f.name}", section=section, name=f.name, type=tp,
                optional=optional, default=default, help=f.metadata["help"],
                choices=f.metadata["choices"], advanced=f.metadata["advanced"],
                label=f.metadata.get("label", ""),
            )


def setting_label(path: str) -> str:
    """A field's label for people: the one its `setting(label=…)` gives. A field without one
    (a plug-in method's) falls back to its name in words ("lora_r" → "Lora r")."""
    label = next((info.label for info in iter_settings() if info.path == path), "")
    return label or path.rpartition(".")[2].replace("_", " ").capitalize()


def parse_setting_text(info: SettingInfo, text: str) -> Any:
    """Turn a command-line string into a value of the field's type (validation comes later)."""
    raw = text.strip()
    if info.optional and raw.lower() in ("", "none", "null"):
        return None
    if info.type is str:
        return text
    if info.is_list:
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
