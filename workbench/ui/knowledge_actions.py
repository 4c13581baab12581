"""What the Knowledge tab's buttons do: plain functions over the core that return what the
tab displays (tables as DataFrames, summaries as Markdown). No gradio here, so each is
unit-testable; the tab module only wires them to components. Inject, which ends in the Train
tab, is `inject_actions`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench.core.config import ModelConfig
from workbench.core.errors import KnowledgeError, quoted
from workbench.core.knowledge import probes, sets, transfer
from workbench.core.knowledge.checklist import checklist_markdown, steps_for
from workbench.core.knowledge.io import parse_mapping
from workbench.core.knowledge.documents import Proposal
from workbench.core.knowledge.render import examples_from_phrasings, preview_rows, render_set
from workbench.core.knowledge.types import FactDraft
from workbench.core.model_cache import ModelCache
from workbench.core.store import Store
from workbench.core.progress import Progress

FACT_COLUMNS = ["id", "subject", "question", "answer", "aliases", "tags", "known"]
PHRASING_COLUMNS = ["id", "fact", "kind", "split", "origin", "approved", "text"]
# Widths that keep every header on one line: the narrow columns got a few pixels each and
# "subject" broke into one letter per line.
# Shares of the table's width, summing to 100% so the last column is never cut off.
FACT_WIDTHS = ["6%", "13%", "30%", "20%", "12%", "9%", "10%"]
PHRASING_WIDTHS = ["6%", "6%", "11%", "8%", "10%", "10%", "49%"]
PROPOSAL_COLUMNS = ["accept", "question", "answer", "method", "source"]
DEFAULT_SET = "My facts"


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in str(text or "").split("|") if part.strip()]


def _row_id(row: dict[str, Any]) -> int | None:
    """The id cell of an edited table row; None for rows the user typed in without one."""
    try:
        return int(row["id"])
    except (TypeError, ValueError):
        return None


def set_names(store: Store) -> list[str]:
    return [s.name for s in sets.list_sets(store)]


def resolve_set(store: Store, name: str | None) -> int:
    """The chosen set's id; adding facts creates one instead (`sets.ensuring_set`)."""
    if not name:
        raise KnowledgeError("choose or create a knowledge set first")
    return sets.set_id(store, name)


def facts_table(store: Store, name: str | None, known_filter: str = "all") -> pd.DataFrame:
    if not name:
        return pd.DataFrame(columns=FACT_COLUMNS)
    facts = sets.list_facts(store, sets.set_id(store, name))
    if known_filter == "not screened":
        facts = [f for f in facts if not f.known]
    elif known_filter != "all":
        facts = [f for f in facts if f.known == known_filter]
    rows = [[f.id, f.subject, f.question, f.answer, " | ".join(f.aliases), " | ".join(f.tags),
             f.known or "—"] for f in facts]
    return pd.DataFrame(rows, columns=FACT_COLUMNS)


SCREEN_COLUMNS = ["question", "right answer", "label", "what the base model said"]


def screen_table(store: Store, name: str | None) -> pd.DataFrame:
    """The screened facts with the base model's own answer beside each label, unknown first:
    the wrong-and-confident answers are the point of screening."""
    if not name or name not in set_names(store):
        return pd.DataFrame(columns=SCREEN_COLUMNS)
    order = {"unknown": 0, "maybe": 1, "known": 2}
    facts = sorted((f for f in sets.list_facts(store, sets.set_id(store, name)) if f.known),
                   key=lambda f: order.get(f.known, 3))
    return pd.DataFrame([[f.question, f.answer, f.known, f.known_detail] for f in facts],
                        columns=SCREEN_COLUMNS)


def counts_markdown(store: Store, name: str | None) -> str:
    if not name:
        return "No knowledge set yet: add a fact or upload a file to start one."
    summary = next((s for s in sets.list_sets(store) if s.name == name), None)
    if summary is None:
        return f"No knowledge set {name!r}."
    counts = probes.split_counts(store, summary.id)
    facts = sets.list_facts(store, summary.id)
    known = {label: sum(f.known == label for f in facts) for label in ("known", "maybe", "unknown")}
    screened = (f" · known {known['known']} / maybe {known['maybe']} / unknown {known['unknown']}"
                if any(known.values()) else "")
    return (f"Facts **{summary.facts}** · training phrasings **{counts['train']}** "
            f"(statements {counts['statements']}) · held-out probes **{counts['probe']}** · "
            f"locality probes **{counts['locality']}**{screened}\n\n"
            + checklist_markdown(steps_for(name, len(facts), counts)))


def add_fact(store: Store, name: str | None, subject: str, question: str, answer: str,
             aliases: str, tags: str) -> tuple[str, str]:
    """Returns (the set's name, a message)."""
    with sets.ensuring_set(store, name or DEFAULT_SET) as sid:
        sets.add_fact(store, sid, FactDraft(question=question or "", answer=answer or "",
                                            subject=subject or "", aliases=_split_list(aliases),
                                            tags=_split_list(tags)))
    return sets_name(store, sid), f"Added: {question.strip()} → {answer.strip()}"


def sets_name(store: Store, sid: int) -> str:
    return next(s.name for s in sets.list_sets(store) if s.id == sid)


def save_fact_edits(store: Store, name: str | None, table: pd.DataFrame) -> str:
    """Apply edits made in the facts table; rows removed from the table are not deleted
    (deleting is explicit, by id)."""
    sid = resolve_set(store, name)
    stored = {f.id: f for f in sets.list_facts(store, sid)}
    changed = 0
    for row in table.to_dict("records"):
        fid = _row_id(row)
        fact = stored.get(fid) if fid is not None else None
        if fact is None:
            continue
        new = {"subject": str(row["subject"] or "").strip(),
               "question": str(row["question"] or "").strip(),
               "answer": str(row["answer"] or "").strip(),
               "aliases": _split_list(row["aliases"]), "tags": _split_list(row["tags"])}
        if any(new[k] != getattr(fact, k) for k in new):
            sets.update_fact(store, fid, **new)
            changed += 1
    return f"Saved {changed} edited fact{'s' * (changed != 1)}."


MAX_ID = 2**63 - 1  # SQLite's largest integer: a longer number would overflow, not miss


def delete_facts(store: Store, ids_text: str) -> str:
    text = str(ids_text)
    try:
        ids = [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise KnowledgeError(f"fact ids are whole numbers, got {quoted(text)}") from None
    if not ids:
        raise KnowledgeError("enter the ids of the facts to delete")
    if any(not 0 < fid <= MAX_ID for fid in ids):
        raise KnowledgeError("fact ids are the positive numbers in the id column, got "
                             f"{quoted(text)}")
    return f"Deleted {sets.delete_facts(store, ids)} facts."


def import_upload(store: Store, name: str | None, path: str | None, mapping_text: str, *,
                  separate_rows: bool = False) -> tuple[str, str, list[Proposal]]:
    """(set name, message, document proposals to review). Documents give proposals, facts
    files are imported straight away (all or nothing); rows asking the same fact become one
    fact with several questions unless `separate_rows`."""
    if not path:
        raise KnowledgeError("choose a file to upload first")
    filename = str(path).rsplit("/", 1)[-1]
    data = transfer.read_upload(path)
    if transfer.is_document(filename):
        proposals = transfer.propose_from_document(data, filename)
        return name or "", (f"{filename}: {len(proposals)} proposed QA pairs below; untick "
                            "any you do not want, then add them."), proposals
    mapping = parse_mapping(str(mapping_text or "").split(","))
    with sets.ensuring_set(store, name or DEFAULT_SET) as sid:  # a refused file adds no set
        summary = transfer.import_bytes(store, sid, data, filename, mapping,
                                        separate_rows=separate_rows)
    return sets_name(store, sid), summary.message(), []


def proposals_table(proposals: list[Proposal]) -> pd.DataFrame:
    return pd.DataFrame([[True, p.question, p.answer, p.method, p.source[:120]] for p in proposals],
                        columns=PROPOSAL_COLUMNS)


def accept_proposals(store: Store, name: str | None, table: pd.DataFrame) -> tuple[str, str]:
    drafts = [FactDraft(question=str(r["question"]), answer=str(r["answer"]), source=str(r["source"]))
              for r in table.to_dict("records") if r["accept"] in (True, "true", "True", 1)]
    if not drafts:
        raise KnowledgeError("no proposals are ticked")
    with sets.ensuring_set(store, name or DEFAULT_SET) as sid:
        sets.add_facts(store, sid, drafts, origin="document proposals")
    return sets_name(store, sid), f"Added {len(drafts)} facts from the document."


def phrasings_table(store: Store, name: str | None) -> pd.DataFrame:
    if not name:
        return pd.DataFrame(columns=PHRASING_COLUMNS)
    sid = sets.set_id(store, name)
    rows = [[p.id, p.fact_id, p.kind, p.split, p.origin, p.approved, p.question]
            for p in probes.list_phrasings(store, sid) if p.fact_id is not None]
    return pd.DataFrame(rows, columns=PHRASING_COLUMNS)


def save_phrasing_edits(store: Store, table: pd.DataFrame) -> str:
    changed = 0
    for row in table.to_dict("records"):
        pid = _row_id(row)
        if pid is None:
            continue
        approved = row["approved"] in (True, "true", "True", 1, "1")
        probes.update_phrasing(store, pid, question=str(row["text"]), approved=approved,
                               split=str(row["split"]).strip())
        changed += 1
    return f"Saved {changed} phrasings."


def generate_phrasings(store: Store, cache: ModelCache, name: str | None, n: int,
                       statements: bool, model: str, holdout: int, seed: int,
                       progress: Progress) -> str:
    sid = resolve_set(store, name)
    added = probes.generate_template_phrasings(store, sid, n=n, include_statements=statements,
                                               progress=lambda f, m: progress(0.5 * f, m))
    if model.strip():
        from workbench.core.generate import asker

        loaded = cache.get(ModelConfig(name_or_path=model.strip()), progress=progress)
        added += probes.generate_model_phrasings(store, sid, asker(loaded), n=n,
                                                 progress=lambda f, m: progress(0.5 + 0.5 * f, m))
    counts = probes.split_probes(store, sid, holdout=holdout, seed=seed)
    return (f"Added {added} phrasings; {counts['train']} training, {counts['probe']} held out"
            + short_note(counts, holdout) + ".")


def short_note(counts: dict[str, int], holdout: int) -> str:
    short = counts.get("facts_short_of_probes", 0)
    return f" ({short} facts have fewer than {holdout} paraphrases to hold out)" if short else ""


def split(store: Store, name: str | None, holdout: int, seed: int) -> str:
    counts = probes.split_probes(store, resolve_set(store, name), holdout=int(holdout), seed=int(seed))
    return (f"{counts['train']} training phrasings, {counts['probe']} held-out probes"
            + short_note(counts, int(holdout)) + ".")


def screen(store: Store, cache: ModelCache, name: str | None, model: str, samples: int,
           progress: Progress) -> str:
    from workbench.core.knowledge.screen import screen_facts

    loaded = cache.get(ModelConfig(name_or_path=model.strip()), progress=progress)
    counts = screen_facts(store, resolve_set(store, name), loaded, samples=int(samples),
                          progress=progress)
    return (f"Known {counts['known']}, maybe {counts['maybe']}, unknown {counts['unknown']} "
            "(each fact's answer in the table below).")


def locality(store: Store, cache: ModelCache, name: str | None, model: str, general: int,
             progress: Progress) -> str:
    from workbench.core.knowledge.locality import build_locality

    loaded = cache.get(ModelConfig(name_or_path=model.strip()), progress=progress)
    counts = build_locality(store, resolve_set(store, name), loaded, general=int(general),
                            progress=progress)
    return counts.message()


def preview(store: Store, cache: ModelCache, name: str | None, model: str, mode: str,
            statements: bool, max_len: int, overflow: str) -> tuple[pd.DataFrame, str]:
    sid = resolve_set(store, name)
    tokenizer = cache.get(ModelConfig(name_or_path=model.strip())).tokenizer
    examples = examples_from_phrasings(sets.list_facts(store, sid), probes.training_phrasings(store, sid),
                                       mode=mode, include_statements=statements)
    report = render_set(examples, tokenizer, int(max_len), overflow=overflow)
    rows: list[dict[str, Any]] = preview_rows(report, tokenizer, n=20)
    table = pd.DataFrame(rows, columns=["kind", "tokens", "label_tokens", "text"])
    message = (f"{len(report.rendered)} training examples, {report.total_tokens} tokens "
               f"({report.label_tokens} trained on); {report.dropped} dropped and "
               f"{report.truncated} truncated at {int(max_len)} tokens.")
    return table, message
