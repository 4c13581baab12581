"""Widgets generated from the run config's fields (`config.iter_settings`).

One widget per setting, typed by the field: a dropdown for choices, a checkbox for a bool, a
number for int/float, a text box for text and comma-separated lists. Labels and help come from
the field, so a new setting appears in the UI by being declared (in sections.py, or in a
method's settings dataclass in core/methods/). Advanced fields hide in the simple view; a
method's own settings show only while that method is chosen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.core.config import RunConfig, SettingInfo, iter_settings, setting_label
from workbench.core.errors import ConfigError
from workbench.core.methods.registry import REGISTRY


def elem_id(path: str) -> str:
    return "cfg-" + path.replace(".", "-").replace("_", "-")


def _widget(info: SettingInfo, value: Any) -> Any:
    common = {"label": setting_label(info.path), "info": info.help,
              "elem_id": elem_id(info.path), "visible": not info.advanced}
    if info.choices and info.is_list:
        return gr.CheckboxGroup(list(info.choices), value=value, **common)
    if info.choices:
        return gr.Dropdown(list(info.choices), value=value, **common)
    if info.type is bool:
        return gr.Checkbox(value=value, **common)
    if info.type is int:
        return gr.Number(value=value, precision=0, **common)
    if info.type is float:
        return gr.Number(value=value, **common)
    return gr.Textbox(value=to_text(value), **common)


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def method_specific() -> dict[str, set[str]]:
    """method.<field> → the methods that read it (the fields of each method's settings
    dataclass); fields absent here apply to every method."""
    readers: dict[str, set[str]] = {}
    for method in REGISTRY.values():
        for f in dataclasses.fields(method.settings):  # type: ignore[arg-type]
            readers.setdefault(f"method.{f.name}", set()).add(method.name)
    return readers


@dataclass
class SettingsForm:
    """The generated widgets, in `iter_settings()` order, minus those a tab builds itself."""

    infos: list[SettingInfo]
    widgets: list[Any]

    def values(self, raw: Sequence[Any]) -> dict[str, Any]:
        """Widget values → {"section.field": value} with the field's type (checked later by
        RunConfig, which names the field in any error)."""
        return {info.path: from_widget(info, value) for info, value in zip(self.infos, raw)}

    def fill(self, cfg: RunConfig) -> list[Any]:
        """The widgets' values for `cfg` (for loading a saved or a past run's config)."""
        data = cfg.to_dict()
        return [_display(info, data[info.section][info.name]) for info in self.infos]

    def visibility(self, method: str, advanced: bool) -> list[Any]:
        readers = method_specific()
        return [gr.update(visible=(advanced or not info.advanced)
                          and method in readers.get(info.path, {method}))
                for info in self.infos]


def _display(info: SettingInfo, value: Any) -> Any:
    if info.type in (bool, int, float) or info.choices:
        return value
    return to_text(value)


def from_widget(info: SettingInfo, value: Any) -> Any:
    if value is None:
        if info.optional:
            return None
        raise ConfigError(f"{info.path} is empty; it needs a value (default: {info.default!r})")
    if info.type is int and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{info.path} must be a whole number, got {value:g}")
        return int(value)
    if info.choices and info.is_list:
        return list(value)
    if info.type in (bool, int, float) or info.choices:
        return value
    text = str(value)
    if info.optional and not text.strip():
        return None
    if info.type is str:
        return text
    parts = [p.strip() for p in text.strip("[] ").split(",") if p.strip()]
    (item,) = getattr(info.type, "__args__", (str,))
    if item is int:
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"{info.path} must be whole numbers separated by commas, "
                              f"got {text!r}") from None
    return parts


def build_form(cfg: RunConfig, skip: Sequence[str]) -> SettingsForm:
    """Widgets for every setting but `skip`, grouped by section in the current layout."""
    data = cfg.to_dict()
    infos = [i for i in iter_settings() if i.path not in skip]
    widgets: list[Any] = []
    titles = {"model": "Model loading", "data": "Data", "method": "Method settings",
              "training": "Training"}
    for section, title in titles.items():
        group = [i for i in infos if i.section == section]
        if not group:
            continue
        with gr.Group():
            gr.Markdown(f"**{title}**", elem_classes=["wb-form-title"])
            for start in range(0, len(group), 3):
                with gr.Row():
                    for info in group[start:start + 3]:
                        widgets.append(_widget(info, _display(info, data[section][info.name])))
    ordered = [i for s in titles for i in infos if i.section == s]
    return SettingsForm(ordered, widgets)

