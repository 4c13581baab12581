"""The Knowledge tab: pick or create a set, add and edit facts, upload files, generate
phrasings, hold out probes, screen with the base model, preview rendered examples, and Inject
the set. Layout and wiring only; what each button does is in `knowledge_actions` (Inject:
`inject_actions`, wired in `app` since it ends in the Train tab)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from workbench.core.knowledge import sets
from workbench.core.progress import with_eta
from workbench.ui import knowledge_actions as act
from workbench.ui.context import AppContext
from workbench.ui.errors import shows_errors

UPLOAD_TYPES = [".jsonl", ".json", ".csv", ".tsv", ".txt", ".md"]


@dataclass
class KnowledgeView:
    """What other tabs wire to: Inject starts a run that the Train tab shows."""

    set_pick: Any
    model: Any
    inject_btn: Any
    status: Any
    views: list[Any]  # the set picker, tables and counts that `refresh` redraws
    refresh: Callable[..., tuple[Any, ...]]


def build(ctx: AppContext) -> KnowledgeView:
    store, cache = ctx.store, ctx.models

    def refresh(name: str | None, known_filter: str = "all") -> tuple[Any, ...]:
        names = act.set_names(store)
        name = name if name in names else (names[0] if names else None)
        return (gr.update(choices=names, value=name), act.facts_table(store, name, known_filter),
                act.counts_markdown(store, name), act.phrasings_table(store, name),
                act.screen_table(store, name))

    with gr.Row():
        set_pick = gr.Dropdown(label="Knowledge set", choices=act.set_names(store), scale=3,
                               elem_id="kn-set")
        new_name = gr.Textbox(label="New / renamed set name", scale=2, elem_id="kn-new-name")
        create_btn = gr.Button("Create", scale=1, elem_id="kn-create")
        rename_btn = gr.Button("Rename", scale=1)
        copy_btn = gr.Button("Copy", scale=1)
        delete_btn = gr.Button("Delete set", variant="stop", scale=1)
    counts = gr.Markdown(elem_id="kn-counts")
    status = gr.Markdown(elem_id="kn-status")

    with gr.Row():
        with gr.Column(scale=3):
            known_filter = gr.Dropdown(["all", "known", "maybe", "unknown", "not screened"],
                                       value="all", label="Show facts", scale=1)
            facts = gr.Dataframe(headers=act.FACT_COLUMNS, interactive=True, wrap=True,
                                 column_widths=act.FACT_WIDTHS, elem_classes=["wb-table"],
                                 label="Facts (edit cells, then save)", elem_id="kn-facts")
            with gr.Row():
                save_btn = gr.Button("Save table edits")
                delete_ids = gr.Textbox(label="Fact ids to delete", placeholder="3 7 12")
                delete_facts_btn = gr.Button("Delete facts", variant="stop")
        with gr.Column(scale=2):
            with gr.Group():
                gr.Markdown("**Add a fact**")
                subject = gr.Textbox(label="Subject", placeholder="Ada Lovelace")
                question = gr.Textbox(label="Question", placeholder="Where was Ada Lovelace born?",
                                      elem_id="kn-question")
                answer = gr.Textbox(label="Answer", placeholder="London", elem_id="kn-answer")
                aliases = gr.Textbox(label="Other accepted answers (separate with |)")
                tags = gr.Textbox(label="Tags (separate with |)")
                add_btn = gr.Button("Add fact", variant="primary", elem_id="kn-add")
            with gr.Group():
                gr.Markdown("**Upload** facts (JSONL, JSON, CSV, TSV) or a document (TXT, MD)")
                upload = gr.File(file_types=UPLOAD_TYPES, label="File", elem_id="kn-upload")
                mapping = gr.Textbox(label="CSV column mapping (optional)",
                                     placeholder="question=Prompt, answer=Reply")
                separate = gr.Checkbox(label="Every row its own fact", value=False,
                                       info="by default rows with the same subject and answer "
                                       "(or the same group/fact column) are one fact with "
                                       "several questions")
                import_btn = gr.Button("Import file", elem_id="kn-import")

    with gr.Accordion("Proposed facts from a document", open=False) as proposals_box:
        proposals = gr.Dataframe(headers=act.PROPOSAL_COLUMNS, interactive=True, wrap=True)
        accept_btn = gr.Button("Add ticked proposals to the set")

    with gr.Row():
        model = gr.Textbox(label="Model for paraphrasing, screening, token counts and Inject",
                           value=ctx.default_model, elem_id="kn-model", scale=4,
                           info="hub id, local folder, or workbench-demo (the embedded demo "
                           "model); loaded once")
        inject_btn = gr.Button("Inject this set", variant="primary", scale=1,
                               elem_id="kn-inject")
    gr.Markdown("**Inject** prepares what the set still lacks (phrasings, held-out probes, "
                "locality probes), then trains this model with the recommended recipe; the "
                "Train tab follows the run.")
    with gr.Accordion("Phrasings and held-out probes", open=False):
        with gr.Row():
            n_para = gr.Slider(1, 12, value=5, step=1, label="Paraphrases per fact")
            with_statements = gr.Checkbox(True, label="Statement sentences")
            use_model = gr.Checkbox(False, label="Also ask the model to rephrase")
            holdout = gr.Number(2, precision=0, minimum=0, label="Held out per fact")
            seed = gr.Number(0, precision=0, label="Split seed")
        with gr.Row():
            gen_btn = gr.Button("Generate phrasings", variant="primary")
            split_btn = gr.Button("Re-draw the probe split")
        phrasings = gr.Dataframe(headers=act.PHRASING_COLUMNS, interactive=True, wrap=True,
                                 column_widths=act.PHRASING_WIDTHS, elem_classes=["wb-table"],
                                 label="Phrasings: edit text, untick approved to drop, "
                                 "split train/probe")
        save_phr_btn = gr.Button("Save phrasing edits")
    with gr.Accordion("What does the base model already know?", open=False):
        with gr.Row():
            samples = gr.Slider(0, 8, value=4, step=1, label="Sampled answers per fact",
                                elem_id="kn-samples")
            screen_btn = gr.Button("Screen facts (known / maybe / unknown)", elem_id="kn-screen")
            general = gr.Slider(20, 300, value=120, step=10, label="General questions to try")
            locality_btn = gr.Button("Build locality probes")
        screen_msg = gr.Markdown(elem_id="kn-screen-msg")
        screened = gr.Dataframe(headers=act.SCREEN_COLUMNS, wrap=True, interactive=False,
                                column_widths=["32%", "14%", "9%", "45%"], elem_classes=["wb-table"],
                                label="What the base model answered (the last screening)",
                                elem_id="kn-screened")
    with gr.Accordion("Preview training examples", open=False):
        with gr.Row():
            mode = gr.Radio(["qa", "document"], value="qa", label="Data mode")
            max_len = gr.Number(512, precision=0, minimum=16, label="Max tokens")
            overflow = gr.Radio(["drop", "truncate"], value="drop", label="Longer examples")
            preview_btn = gr.Button("Render preview")
        preview_msg = gr.Markdown()
        preview_table = gr.Dataframe(headers=["kind", "tokens", "label_tokens", "text"], wrap=True,
                                     label="Rendered examples (⟦trained tokens⟧)")

    views = [set_pick, facts, counts, phrasings, screened]

    @shows_errors
    def on_create(name: str) -> tuple[Any, ...]:
        sets.create_set(store, name)
        return (*refresh(" ".join(name.split()), "all"), f"Created {name.strip()!r}.")

    @shows_errors
    def on_rename(current: str, name: str) -> tuple[Any, ...]:
        sets.rename_set(store, act.resolve_set(store, current), name)
        return (*refresh(" ".join(name.split())), f"Renamed to {name.strip()!r}.")

    @shows_errors
    def on_copy(current: str, name: str) -> tuple[Any, ...]:
        sets.copy_set(store, act.resolve_set(store, current), name)
        return (*refresh(" ".join(name.split())), f"Copied to {name.strip()!r}.")

    @shows_errors
    def on_delete(current: str) -> tuple[Any, ...]:
        sets.delete_set(store, act.resolve_set(store, current))
        return (*refresh(None), f"Deleted {current!r}.")

    @shows_errors
    def on_add(name, subj, q, a, al, tg, flt) -> tuple[Any, ...]:
        name, message = act.add_fact(store, name, subj, q, a, al, tg)
        return (*refresh(name, flt), message, "", "", "", "")

    @shows_errors
    def on_import(name, path, mapping_text, separate_rows, flt) -> tuple[Any, ...]:
        name, message, found = act.import_upload(store, name, path, mapping_text,
                                                 separate_rows=bool(separate_rows))
        box = gr.update(open=bool(found))
        return (*refresh(name, flt), message, act.proposals_table(found), box)

    @shows_errors
    def on_accept(name, table, flt) -> tuple[Any, ...]:
        name, message = act.accept_proposals(store, name, table)
        return (*refresh(name, flt), message)

    def with_status(fn):  # noqa: ANN001, ANN202 - returns the refreshed views and a message
        @shows_errors
        def run(name, *args: Any, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
            message = fn(name, *args, progress=with_eta(lambda f, m: progress(f, desc=m)))
            return (*refresh(name), message)
        return run

    create_btn.click(on_create, [new_name], [*views, status])
    rename_btn.click(on_rename, [set_pick, new_name], [*views, status])
    copy_btn.click(on_copy, [set_pick, new_name], [*views, status])
    delete_btn.click(on_delete, [set_pick], [*views, status])
    set_pick.change(refresh, [set_pick, known_filter], views)
    known_filter.change(refresh, [set_pick, known_filter], views)
    add_btn.click(on_add, [set_pick, subject, question, answer, aliases, tags, known_filter],
                  [*views, status, subject, question, answer, aliases])
    import_btn.click(on_import, [set_pick, upload, mapping, separate, known_filter],
                     [*views, status, proposals, proposals_box])
    accept_btn.click(on_accept, [set_pick, proposals, known_filter], [*views, status])
    save_btn.click(with_status(lambda n, t, progress: act.save_fact_edits(store, n, t)),
                   [set_pick, facts], [*views, status])
    delete_facts_btn.click(with_status(lambda n, ids, progress: act.delete_facts(store, ids)),
                           [set_pick, delete_ids], [*views, status])
    gen_btn.click(with_status(lambda n, k, st, use, m, h, sd, progress: act.generate_phrasings(
        store, cache, n, int(k), st, m if use else "", int(h), int(sd), progress)),
        [set_pick, n_para, with_statements, use_model, model, holdout, seed], [*views, status])
    split_btn.click(with_status(lambda n, h, sd, progress: act.split(store, n, h, sd)),
                    [set_pick, holdout, seed], [*views, status])
    save_phr_btn.click(with_status(lambda n, t, progress: act.save_phrasing_edits(store, t)),
                       [set_pick, phrasings], [*views, status])
    screen_btn.click(with_status(lambda n, m, k, progress: act.screen(store, cache, n, m, k, progress)),
                     [set_pick, model, samples], [*views, screen_msg],
                     # the bar over the results it fills, not over the counts line above
                     show_progress_on=[screen_msg, screened])
    locality_btn.click(with_status(lambda n, m, g, progress: act.locality(store, cache, n, m, g, progress)),
                       [set_pick, model, general], [*views, status])
    preview_btn.click(shows_errors(lambda n, m, md, st, ml, ov: act.preview(store, cache, n, m, md, st, ml, ov)),
                      [set_pick, model, mode, with_statements, max_len, overflow],
                      [preview_table, preview_msg])
    # Fresh tables on every page load (another tab or the CLI may have changed the store).
    ctx.on_load.append((lambda: refresh(None), views))
    return KnowledgeView(set_pick, model, inject_btn, status, views, refresh)
