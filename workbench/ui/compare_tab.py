"""The Compare tab: one question to 2–4 panes (base, tuned runs, no-training baselines),
streamed side by side; the fact scorecard; presentation mode; the HTML report.

The chat itself is the core's `ChatSession` (one per page, in a gr.State): it runs the batched
generation and yields what each pane has written so far; this tab only draws those frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.core.compare.pool import Sampling
from workbench.core.compare.session import MAX_PANES, ChatSession, Frame
from workbench.core.errors import WorkbenchError
from workbench.core.progress import with_eta
from workbench.ui import compare_actions as act
from workbench.ui import compare_views as views
from workbench.ui.context import AppContext
from workbench.ui.errors import shows_errors

# Presentation mode: large type for a projector; toggled on the page so no re-render is needed.
# (State values do not reach the browser, so the class flips on its own, in step with the
# server-side flag: both start off.)
PRESENT_JS = "(on, keys) => { document.body.classList.toggle('wb-present'); return [on, keys]; }"


@dataclass
class CompareView:
    refresh: Any  # a function returning updates for `refreshed` (after a run finishes)
    refreshed: list[Any]


def _pane_updates(chat: ChatSession, keys: list[str], labels: list[str],
                  frame: Frame | None = None) -> list[Any]:
    """One update per pane slot: the chosen panes with their messages, the rest hidden."""
    shown = chat.panes(keys, frame)
    return [gr.update(value=shown[i], label=labels[i], visible=True) if i < len(keys)
            else gr.update(visible=False) for i in range(MAX_PANES)]


def build(ctx: AppContext) -> CompareView:
    gr.Markdown("Ask the base model and tuned runs the same question, side by side. "
                "Runs trained on the same base answer in one batched generation.")
    with gr.Row():
        panes = gr.Dropdown(act.pane_choices(ctx), value=act.default_panes(ctx), multiselect=True,
                            max_choices=MAX_PANES, label="Panes (up to 4)", scale=3,
                            elem_id="compare-panes")
        set_pick = gr.Dropdown(act.set_choices(ctx), value=act.default_set(ctx, act.default_panes(ctx)),
                               label="Knowledge set (scorecard, baselines)", scale=1,
                               elem_id="compare-set")
        present_btn = gr.Button("Presentation mode", scale=0, elem_id="compare-present")
    fact_md = gr.Markdown(visible=False, elem_id="compare-fact", elem_classes=["wb-fact-card"])
    with gr.Accordion("Generation settings (the same for every pane)", open=False) as settings:
        system = gr.Textbox(label="System prompt (optional)", lines=2, elem_id="compare-system")
        with gr.Row():
            max_tokens = gr.Slider(8, 512, value=64, step=8, label="Max new tokens",
                                   elem_id="compare-max-tokens")
            temperature = gr.Slider(0, 1.5, value=0, step=0.05,
                                    label="Temperature (0 = greedy, as the scorecard asks)",
                                    elem_id="compare-temperature")
            top_p = gr.Slider(0.05, 1, value=1, step=0.05, label="Top-p", elem_id="compare-top-p")
    with gr.Row(elem_id="compare-chat"):
        bots = [gr.Chatbot(label=f"Pane {i + 1}", height=360, visible=i < 2,
                           elem_id=f"compare-pane-{i}", elem_classes=["wb-pane"])
                for i in range(MAX_PANES)]
    with gr.Row():
        question = gr.Textbox(placeholder="Ask every pane the same question…", show_label=False,
                              scale=4, elem_id="compare-input", max_length=4000)
        send = gr.Button("Ask", variant="primary", scale=0, elem_id="compare-send")
        regen = gr.Button("Regenerate", scale=0, elem_id="compare-regenerate")
        clear = gr.Button("Clear", scale=0, elem_id="compare-clear")
    gr.Markdown("### Fact scorecard")
    with gr.Row():
        score_btn = gr.Button("Score every fact", variant="primary", scale=0, elem_id="compare-score")
        fresh = gr.Checkbox(False, label="Ask again (ignore stored answers)", scale=0)
        report_btn = gr.Button("HTML report of the first run", scale=0, elem_id="compare-report")
    with gr.Accordion("Abstention probes: questions whose right answer is \"I don't know\"",
                      open=False):
        abstain_text = gr.Textbox(lines=3, elem_id="compare-abstain",
                                  label="One question per line, about people or things the set "
                                        "never mentions")
        abstain_btn = gr.Button("Add to the knowledge set", size="sm", elem_id="compare-abstain-add")
    summary_md = gr.Markdown(elem_id="compare-summary-text")
    summary_plot = gr.Plot(show_label=False, elem_id="compare-summary")
    report_file = gr.File(label="Report", visible=False, elem_id="compare-report-file")
    table = gr.Dataframe(interactive=False, wrap=True, elem_id="compare-table",
                         elem_classes=["wb-table"],
                         label="Per fact: ✓ counts, ✗ does not (click a row to ask it above)")
    chat = gr.State(lambda: act.chat_session(ctx))  # one per page: its panes' histories
    card_state = gr.State(None)
    presenting = gr.State(False)

    def draw(c: ChatSession, frames: Iterator[Frame]) -> Iterator[list[Any]]:
        labels: list[str] = []
        for frame in frames:
            labels = labels or act.pane_labels(ctx, frame.keys)
            yield [*_pane_updates(c, frame.keys, labels, frame), "" if frame.done else gr.skip()]

    @shows_errors
    def ask(c: ChatSession, keys: list[str], set_name: str | None, text: str, sys_prompt: str,
            n_tokens: float, temp: float, p: float) -> Iterator[list[Any]]:
        sampling = Sampling(int(n_tokens), float(temp), float(p))
        yield from draw(c, c.stream(keys or [], text, sampling, system=sys_prompt,
                                    set_name=set_name))

    @shows_errors
    def regenerate(c: ChatSession, keys: list[str], set_name: str | None, sys_prompt: str,
                   n_tokens: float, temp: float, p: float) -> Iterator[list[Any]]:
        sampling = Sampling(int(n_tokens), float(temp), float(p))
        yield from draw(c, c.regenerate(keys or [], sampling, system=sys_prompt,
                                        set_name=set_name))

    settings_in = [system, max_tokens, temperature, top_p]
    inputs = [chat, panes, set_pick, question, *settings_in]
    outputs = [*bots, question]
    send.click(ask, inputs, outputs, concurrency_id="compare")
    question.submit(ask, inputs, outputs, concurrency_id="compare")
    regen.click(regenerate, [chat, panes, set_pick, *settings_in], outputs,
                concurrency_id="compare")

    def clear_all(c: ChatSession, keys: list[str]) -> list[Any]:
        c.clear()
        return [*_pane_updates(c, keys or [], act.pane_labels(ctx, keys or [])), ""]

    clear.click(clear_all, [chat, panes], outputs)

    @shows_errors
    def change_panes(c: ChatSession, keys: list[str], current_set: str | None) -> list[Any]:
        keys = keys or []
        if len(keys) > MAX_PANES:
            raise WorkbenchError(f"at most {MAX_PANES} panes side by side")
        return [*_pane_updates(c, keys, act.pane_labels(ctx, keys)),
                gr.update(value=act.set_for_panes(ctx, keys, current_set))]

    panes.change(change_panes, [chat, panes, set_pick], [*bots, set_pick])

    @shows_errors
    def score(keys: list[str], set_name: str | None, again: bool,
              progress: gr.Progress = gr.Progress()) -> list[Any]:
        card, notes = act.scorecard(ctx, keys, set_name, fresh=again,
                                    progress=with_eta(lambda f, message: progress(f, desc=message)))
        text = views.summary_markdown(card)
        if notes:
            text += "\n\n" + "\n".join(f"- ⚠ {v}" for v in notes.values())
        return [text, views.summary_figure(card),
                gr.Dataframe(value=views.styled_table(card), column_widths=views.table_widths(card)),
                card, views.fact_card(card)]

    score_btn.click(score, [panes, set_pick, fresh],
                    [summary_md, summary_plot, table, card_state, fact_md], concurrency_id="compare")

    @shows_errors
    def add_abstention(set_name: str | None, text: str) -> list[Any]:
        if not set_name:
            raise WorkbenchError("choose a knowledge set first")
        added = act.add_abstention(ctx, set_name, text)
        gr.Info(f"Added {added} abstention probe(s) to {set_name}; score again to see them.")
        return [""]

    abstain_btn.click(add_abstention, [set_pick, abstain_text], [abstain_text])

    def pick_fact(card: Any, evt: gr.SelectData) -> list[Any]:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        q = card.rows[row].item.question if card is not None and row < len(card.rows) else ""
        return [q, views.fact_card(card, q)]

    table.select(pick_fact, [card_state], [question, fact_md]).then(
        ask, inputs, outputs, concurrency_id="compare")

    def toggle(on: bool, keys: list[str]) -> list[Any]:
        on = not on
        n = len(keys or [])
        return [on, gr.update(visible=not on), gr.update(visible=on),
                gr.update(value="Leave presentation mode" if on else "Presentation mode"),
                *[gr.update(visible=(i < n and (not on or i < 2))) for i in range(2, MAX_PANES)],
                gr.update(visible=not on)]

    present_btn.click(toggle, [presenting, panes],
                      [presenting, settings, fact_md, present_btn, *bots[2:], table],
                      js=PRESENT_JS)

    @shows_errors
    def report(keys: list[str], card: Any) -> Any:
        subjects = act.subjects_of(keys)
        run_id = act.first_run(subjects)
        if run_id is None:
            raise WorkbenchError("add a run to the panes: the report is about a run")
        path = act.write_run_report(ctx, run_id, card)
        return gr.update(value=str(path), visible=True)

    report_btn.click(report, [panes, card_state], [report_file], concurrency_id="compare")

    def refresh() -> list[Any]:
        return [gr.update(choices=act.pane_choices(ctx)), gr.update(choices=act.set_choices(ctx))]

    def initial() -> list[Any]:
        """A fresh page: base vs the newest trained run, on that run's set."""
        keys = act.default_panes(ctx)
        return [gr.update(choices=act.pane_choices(ctx), value=keys),
                gr.update(choices=act.set_choices(ctx), value=act.default_set(ctx, keys))]

    ctx.on_load.append((initial, [panes, set_pick]))
    return CompareView(refresh, [panes, set_pick])
