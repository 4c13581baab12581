"""The Method tab: model, knowledge set, method and its settings, the settings recommended for
this model and set (`recipe_actions`), a memory estimate against the device, the run as YAML
and as a command line, saved configs, and Start.

The settings widgets are generated from the config dataclasses (`settings_form`); this module
only lays out the few that get a special widget and wires the buttons to `method_actions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.core import presets
from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.ui import method_actions as act
from workbench.ui import recipe_actions
from workbench.ui.context import AppContext
from workbench.ui.errors import shows_errors
from workbench.ui.settings_form import SettingsForm, build_form

# Fields with a widget of their own (a picker with recent choices, the set list, the methods
# with their advice); every other field comes from the generated form.
OWN_WIDGETS = ("model.name_or_path", "data.knowledge_set", "method.name")


@dataclass
class MethodView:
    inputs: list[Any]  # [model, set, method, name, *form widgets]: what make_config reads
    form: SettingsForm
    start_btn: Any
    status: Any

    def config(self, values: tuple[Any, ...]) -> RunConfig:
        model, knowledge_set, method, name, *rest = values
        return act.make_config(model, knowledge_set, method, self.form.values(rest), name)

    def fill(self, ctx: AppContext, cfg: RunConfig) -> list[Any]:
        """Updates that show `cfg` in the inputs (loading a saved or a past run's config)."""
        models = act.model_choices(ctx)
        if cfg.model.name_or_path not in models:
            models.append(cfg.model.name_or_path)
        sets_ = act.set_names(ctx)
        return [gr.update(choices=models, value=cfg.model.name_or_path),
                gr.update(choices=sets_, value=cfg.data.knowledge_set or None),
                cfg.method.name, cfg.name, *self.form.fill(cfg)]


def build(ctx: AppContext) -> MethodView:
    cfg = act.default_config(ctx)
    with gr.Row():
        model = gr.Dropdown(act.model_choices(ctx), value=cfg.model.name_or_path, scale=3,
                            allow_custom_value=True, label="Model", elem_id="method-model",
                            info="The embedded demo model, a Hugging Face hub id (e.g. "
                            "Qwen/Qwen2.5-0.5B-Instruct) or a local model folder; recent "
                            "choices are listed.")
        knowledge_set = gr.Dropdown(act.set_names(ctx), value=cfg.data.knowledge_set or None,
                                    label="Knowledge set", scale=2, elem_id="method-set")
        name = gr.Textbox(cfg.name, label="Run name (optional)", scale=2, elem_id="method-run-name")
    with gr.Row():
        method = gr.Radio(act.method_choices(), value=cfg.method.name, label="Method", scale=3,
                          elem_id="method-name")
        advanced = gr.Checkbox(False, label="Advanced settings", scale=1,
                               elem_id="method-advanced")
    advice = gr.Markdown(act.method_advice(cfg.method.name), elem_id="method-advice")
    with gr.Accordion("Recommended for this model and set", open=True):
        recipe_panel = gr.HTML(elem_id="method-recipe")
        with gr.Row():
            apply_btn = gr.Button("Apply recommended", size="sm", scale=0,
                                  elem_id="method-apply-recipe")
            recipe_note = gr.Markdown(elem_id="method-recipe-note")
    applied = gr.State(None)  # what the recipe last put in the form: still untouched?
    memory = gr.HTML(elem_id="method-memory")
    with gr.Row():
        start_btn = gr.Button("Start training", variant="primary", elem_id="method-start")
        yaml_btn = gr.Button("Show run YAML / command line")
    status = gr.Markdown(elem_id="method-status")
    with gr.Accordion("Run YAML and command line", open=False) as yaml_box:
        yaml_code = gr.Code(language="yaml", label="run.yaml", elem_id="method-yaml")
        cli_code = gr.Code(language="shell", label="Command line", elem_id="method-cli")
    form = build_form(cfg, OWN_WIDGETS)
    with gr.Accordion("Save or load a config", open=False):
        with gr.Row():
            save_name = gr.Textbox(label="Save as", placeholder="my qlora run", scale=2)
            save_btn = gr.Button("Save config", scale=1)
        with gr.Row():
            saved = gr.Dropdown(presets.saved_configs(ctx.workspace), label="Saved configs",
                                scale=2, elem_id="method-saved")
            upload = gr.File(file_types=[".yaml", ".yml"], label="…or a run YAML file", scale=2)
            load_btn = gr.Button("Load config", scale=1)

    view = MethodView([model, knowledge_set, method, name, *form.widgets], form, start_btn, status)

    def estimate(*values: Any) -> str:
        try:
            return act.estimate_html(ctx, view.config(values))
        except Exception as err:  # noqa: BLE001 - an estimate must never break the form
            return act.status_html(f"No memory estimate: {err}", "warning")

    @shows_errors
    def show_yaml(*values: Any) -> tuple[Any, ...]:
        cfg = view.config(values)
        return cfg.to_yaml(), act.cli_command(cfg), gr.update(open=True)

    @shows_errors
    def save(save_as: str, *values: Any) -> tuple[Any, ...]:
        message = act.save(ctx, save_as, view.config(values))
        return message, gr.update(choices=presets.saved_configs(ctx.workspace), value=save_as.strip())

    @shows_errors
    def load(saved_name: str | None, path: str | None) -> list[Any]:
        cfg = act.load(ctx, saved_name, path)
        return [*view.fill(ctx, cfg), f"Loaded {'the file' if path else repr(saved_name)}."]

    def show_recipe(*values: Any) -> str:
        try:
            return recipe_actions.panel_html(ctx, view.config(values))
        except WorkbenchError as err:  # a field the user is still typing
            return act.status_html(f"No recommendation: {err}", "warning")

    @shows_errors
    def apply_recipe(*values: Any) -> list[Any]:
        new, record = recipe_actions.applied(ctx, view.config(values))
        return [new.method.name, *form.fill(new), record,
                "Applied; every field can still be changed."]

    def auto_apply(last: recipe_actions.Applied | None, *values: Any) -> list[Any]:
        """A new model or set while the form holds only defaults or the last recommendation:
        the new recommendation replaces it (nothing the user typed is overwritten)."""
        try:
            done = recipe_actions.auto_applied(ctx, view.config(values), last)
        except WorkbenchError:
            done = None
        if done is None:
            return [gr.skip()] * (len(form.widgets) + 3)
        new, record = done
        return [new.method.name, *form.fill(new), record,
                "Applied automatically for this model and set; every field can still be "
                "changed."]

    def on_method(choice: str, show_advanced: bool) -> list[Any]:
        return [act.method_advice(choice), *form.visibility(choice, show_advanced)]

    def on_load(choice: str, show_advanced: bool) -> list[Any]:
        sets_ = act.set_names(ctx)
        return [gr.update(choices=act.model_choices(ctx)), gr.update(choices=sets_),
                gr.update(choices=presets.saved_configs(ctx.workspace)),
                *on_method(choice, show_advanced)]

    method.change(on_method, [method, advanced], [advice, *form.widgets])
    advanced.change(on_method, [method, advanced], [advice, *form.widgets])
    # The run name is the one input that cannot change the estimate: typing it re-estimates
    # nothing.
    gr.on([w.change for w in view.inputs if w is not name], estimate, view.inputs, memory,
          trigger_mode="always_last", show_progress="hidden", api_visibility="private")
    gr.on([w.change for w in view.inputs if w is not name], show_recipe, view.inputs,
          recipe_panel, trigger_mode="always_last", show_progress="hidden",
          api_visibility="private")
    recipe_outputs = [method, *form.widgets, applied, recipe_note]
    apply_btn.click(apply_recipe, view.inputs, recipe_outputs)
    # Only the user's own pick (`input`, not `change`): loading a saved config sets the set too.
    gr.on([knowledge_set.input, model.input], auto_apply, [applied, *view.inputs],
          recipe_outputs, show_progress="hidden", api_visibility="private")
    yaml_btn.click(show_yaml, view.inputs, [yaml_code, cli_code, yaml_box])
    save_btn.click(save, [save_name, *view.inputs], [status, saved])
    load_btn.click(load, [saved, upload], [*view.inputs, status])
    ctx.on_load.append((lambda: on_load(cfg.method.name, False),
                        [model, knowledge_set, saved, advice, *form.widgets]))
    ctx.on_load.append((lambda: estimate(*_initial(view, cfg)), [memory]))
    ctx.on_load.append((lambda: show_recipe(*_initial(view, cfg)), [recipe_panel]))
    return view


def _initial(view: MethodView, cfg: RunConfig) -> list[Any]:
    return [cfg.model.name_or_path, cfg.data.knowledge_set, cfg.method.name, cfg.name,
            *view.form.fill(cfg)]
