"""What the Method tab's "Recommended for this model and set" panel does: the recipe
(`core/recipe.py`) for the form's model, set and device, shown line by line beside the form's
values, and the form's config with it applied. Plain functions; the tab wires them."""

from __future__ import annotations

import html
from typing import Any

from workbench.core import recipe
from workbench.core.config import RunConfig
from workbench.core.errors import WorkbenchError
from workbench.ui.context import AppContext
from workbench.ui.method_actions import device_for, status_html

Applied = dict[str, Any]  # what the recipe last put in the form (path → value)


def recommendation(ctx: AppContext, cfg: RunConfig) -> tuple[recipe.Situation,
                                                              list[recipe.Choice]]:
    """The recipe for `cfg`'s model and set on the device it would run on (the model's config
    is read, never its weights)."""
    if not cfg.data.knowledge_set:
        raise WorkbenchError("Choose a knowledge set to see the settings recommended for it.")
    return recipe.recommend_for(ctx.store, cfg, device_for(ctx, cfg))


def panel_html(ctx: AppContext, cfg: RunConfig) -> str:
    """One line per choice (label, value, why), the ones the form does not hold marked, under
    a heading that says what it was judged from; a problem is one line instead."""
    try:
        situation, choices = recommendation(ctx, cfg)
    except WorkbenchError as err:
        if not cfg.data.knowledge_set:
            return status_html(str(err), "info")
        return status_html(f"No recommendation: {err}", "warning")
    except Exception as err:  # noqa: BLE001 - like the estimate, the panel never breaks the form
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return status_html(f"No recommendation: {first}", "warning")
    lines = recipe.describe(choices, cfg)
    differ = sum(line.differs for line in lines)
    head = f"For {recipe.summary(situation)}: " + (
        "applied, the form holds every recommended value." if not differ else
        f"{differ} of {len(lines)} differ from the form (marked ●); Apply recommended sets them.")
    items = "".join(_item(line) for line in lines)
    return (f'<div class="wb-recipe" id="wb-recipe">{status_html(head, "info" if differ else "ok")}'
            f'<ul class="wb-recipe-lines">{items}</ul></div>')


def _item(line: recipe.ChoiceLine) -> str:
    state = "differs" if line.differs else "same"
    now = (f' <span class="wb-recipe-now">(form: {html.escape(line.current)})</span>'
           if line.differs else "")
    return (f'<li class="wb-recipe-{state}" data-path="{line.path}">'
            f'<span class="wb-recipe-mark">{"●" if line.differs else "✓"}</span> '
            f'<b>{html.escape(line.label)}</b> <code>{html.escape(line.value)}</code>{now}'
            f' — {html.escape(line.why)}</li>')


def applied(ctx: AppContext, cfg: RunConfig) -> tuple[RunConfig, Applied]:
    """`cfg` with the recipe applied, and what it set (for `auto_applied` later)."""
    _, choices = recommendation(ctx, cfg)
    new = recipe.apply(cfg, choices)
    return new, recipe.applied_values(new, choices)


def auto_applied(ctx: AppContext, cfg: RunConfig,
                 last: Applied | None) -> tuple[RunConfig, Applied] | None:
    """The recipe applied when the form holds nothing the user chose in the fields it sets
    (their defaults, or what the recipe last put there); None otherwise, or when there is no
    recommendation (the panel says why)."""
    try:
        _, choices = recommendation(ctx, cfg)
    except Exception:  # noqa: BLE001 - a convenience: without a recipe the form stays as it is
        return None
    if not recipe.untouched(cfg, choices, last):
        return None
    new = recipe.apply(cfg, choices)
    return new, recipe.applied_values(new, choices)
