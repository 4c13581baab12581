"""The run config's method section: `name` picks a registered method, and that method's own
settings dataclass (`settings`) is what the run reads and validates against.

The YAML keeps one flat `method:` mapping (`method.lora_r`), as it always had: the section
holds the values of every registered method's settings, so a form or a file can switch
methods without losing them, and each value is checked by the settings class that declares
it. Its fields are the registry's at the moment they are read: a method registered later
(a plug-in, a test's toy method) is in the YAML, the CLI flags and the UI at once.

To the rest of the code it looks like every other section: `dataclasses.fields` and
`dataclasses.asdict` work on it (a small metaclass answers `__dataclass_fields__` from the
registry), and `cfg.method.lora_r` reads a value whichever method is chosen.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, ClassVar

from workbench.core.errors import ConfigError
from workbench.core.methods.base import MethodSettings, field_names
from workbench.core.methods.registry import REGISTRY, get_method, settings_classes
from workbench.core.settings import setting, shown

DEFAULT_METHOD = "lora"
NAME_HELP = ("How to inject: lora, qlora (4-bit base), dora, rslora, full fine-tuning, located "
             "(chosen modules only) or prompt_distillation.")


def schema() -> type:
    """A plain dataclass of the section's fields now: `name`, then each registered settings
    class's fields in registry order (a field two classes share is listed once)."""
    return _schema(tuple((name, m.settings) for name, m in REGISTRY.items()))


@functools.lru_cache(maxsize=8)
def _schema(methods: tuple[tuple[str, type[MethodSettings]], ...]) -> type:
    specs: list[tuple[str, Any, Any]] = [
        ("name", str, setting(DEFAULT_METHOD, NAME_HELP, choices=tuple(n for n, _ in methods),
                              label="Method"))]
    seen = {"name"}
    for cls in dict.fromkeys(cls for _, cls in methods):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in seen:
                continue
            seen.add(f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else f.default
            specs.append((f.name, hints[f.name], setting(default, **_options(f.metadata))))
    return dataclasses.make_dataclass("MethodFields", specs)


def _options(meta: Any) -> dict[str, Any]:
    return {key: meta[key] for key in ("help", "choices", "minimum", "maximum", "above",
                                       "below", "advanced", "label") if key in meta}


class _RegistryFields(type):
    """Answers `MethodConfig.__dataclass_fields__` from the registry, so `dataclasses.fields`
    lists the section's current fields."""

    @property
    def __dataclass_fields__(cls) -> dict[str, dataclasses.Field[Any]]:
        return schema().__dataclass_fields__  # type: ignore[attr-defined, no-any-return]


class MethodConfig(metaclass=_RegistryFields):
    """The method and the settings of every registered method, flat as in the YAML."""

    section: ClassVar[str] = "method"

    def __init__(self, name: str = DEFAULT_METHOD, **values: Any) -> None:
        if name is None:
            raise ConfigError("method.name must be set (it has no empty value), got None")
        if not isinstance(name, str):
            raise ConfigError(f"method.name must be text, got {shown(name)}")
        if name not in REGISTRY:
            raise ConfigError(f"method.name must be one of {', '.join(REGISTRY)}, "
                              f"got {shown(name)}")
        unknown = [key for key in values if key not in self.names()]
        if unknown:
            raise TypeError(f"MethodConfig got an unexpected keyword argument {unknown[0]!r}")
        self.name = name
        self._parts: dict[type[MethodSettings], MethodSettings] = {}
        self._values: dict[str, Any] = {}
        for cls in settings_classes():
            part = cls(**{k: values[k] for k in field_names(cls) if k in values})
            self._parts[cls] = part
            for key in field_names(cls):
                self._values.setdefault(key, getattr(part, key))

    @property
    def __dataclass_fields__(self) -> dict[str, dataclasses.Field[Any]]:
        return schema().__dataclass_fields__  # type: ignore[attr-defined, no-any-return]

    @classmethod
    def names(cls) -> list[str]:
        return list(schema().__dataclass_fields__)  # type: ignore[attr-defined]

    @property
    def settings(self) -> MethodSettings:
        """The chosen method's settings: the member of the union that this run uses."""
        return self.settings_for(self.name)

    def settings_for(self, name: str) -> MethodSettings:
        cls = get_method(name).settings
        if cls not in self._parts:  # registered after this section was built
            self._parts[cls] = cls(**{k: self._values[k] for k in field_names(cls)
                                      if k in self._values})
        return self._parts[cls]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{key: list(value) if isinstance(value, list) else value
                                      for key, value in self._values.items()}}

    def __getattr__(self, attr: str) -> Any:
        values = self.__dict__.get("_values")
        if values is not None and attr in values:
            return values[attr]
        raise AttributeError(f"{type(self).__name__} has no setting {attr!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MethodConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass sections

    def __repr__(self) -> str:
        inner = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items())
        return f"MethodConfig({inner})"
