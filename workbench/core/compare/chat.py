"""Side-by-side chat: one question to every pane, each pane with its own history.

Each pane keeps its own conversation (its own earlier answers), so a follow-up question is
asked of each model in the context it created. Baseline panes get their facts in the system
prompt for the current question. Every turn is saved to the store's `chat_logs` (session,
pane, role, text and the settings used), so a demo can be looked back at.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict

from workbench.core.compare.baselines import Baselines
from workbench.core.compare.pool import ComparePool, Sampling, Subject
from workbench.core.data import runs
from workbench.core.errors import WorkbenchError
from workbench.core.generate import Messages
from workbench.core.knowledge.types import text_problem
from workbench.core.store import Store, now

MAX_QUESTION_CHARS = 4000
MAX_SYSTEM_CHARS = 4000


def clean_question(text: str) -> str:
    question = (text or "").strip()
    if not question:
        raise WorkbenchError("type a question first")
    if len(question) > MAX_QUESTION_CHARS:
        raise WorkbenchError(f"the question is {len(question)} characters; the limit is "
                             f"{MAX_QUESTION_CHARS}", hint="shorten it; nothing was sent")
    if problem := text_problem(question):  # the tokenizer would fail on it with a TypeError
        raise WorkbenchError(f"the question {problem}", hint="retype it; nothing was sent")
    return question


def clean_system(text: str | None) -> str:
    """The optional system prompt, held to the question's rules: it goes into every pane's
    prompt, so an unbounded one would make every model read megabytes."""
    system = text or ""
    if len(system) > MAX_SYSTEM_CHARS:
        raise WorkbenchError(f"the system prompt is {len(system)} characters; the limit is "
                             f"{MAX_SYSTEM_CHARS}", hint="shorten it; nothing was sent")
    if problem := text_problem(system):
        raise WorkbenchError(f"the system prompt {problem}", hint="retype it; nothing was sent")
    return system


def pane_messages(subject: Subject, history: Sequence[Mapping[str, str]], question: str,
                  system: str, baselines: Baselines | None) -> Messages:
    system = system or ""
    if subject.kind in ("in_context", "retrieval") and baselines is not None:
        system = baselines.system(subject.kind, question, system)
    prefix: Messages = [{"role": "system", "content": system}] if system.strip() else []
    past = [{"role": m["role"], "content": m["content"]} for m in history
            if m.get("role") in ("user", "assistant")]
    return [*prefix, *past, {"role": "user", "content": question}]


def ask_panes(pool: ComparePool, subjects: Sequence[Subject],
              histories: Mapping[str, Sequence[Mapping[str, str]]], question: str,
              sampling: Sampling, *, system: str = "", baselines: Baselines | None = None,
              on_text: Callable[[int, str], None] | None = None) -> list[str]:
    """Every available pane answers `question` after its own history, in one batched call
    per model group. Unavailable panes are skipped (their reply is '')."""
    question, system = clean_question(question), clean_system(system)
    live = [i for i, s in enumerate(subjects) if s.key not in pool.unavailable]
    requests = [(subjects[i], pane_messages(subjects[i], histories.get(subjects[i].key, ()),
                                            question, system, baselines)) for i in live]

    def relay(row: int, text: str) -> None:
        if on_text is not None:
            on_text(live[row], text)

    replies = pool.generate(requests, sampling, on_text=relay) if requests else []
    out = [""] * len(subjects)
    for i, reply in zip(live, replies):
        out[i] = reply
    return out


def save_turn(store: Store, session: str, subjects: Sequence[Subject], question: str,
              replies: Sequence[str], sampling: Sampling, system: str = "") -> None:
    settings = {**asdict(sampling), "system": system}
    rows = []
    for subject, reply in zip(subjects, replies):
        extra = json.dumps({**settings, "subject": subject.key})
        rows.append({"session": session, "pane": subject.key, "role": "user", "content": question,
                     "settings": extra, "created_at": now()})
        rows.append({"session": session, "pane": subject.key, "role": "assistant",
                     "content": reply, "settings": extra, "created_at": now()})
    runs.add_chat_rows(store, rows)


def chat_log(store: Store, session: str) -> list[dict[str, str]]:
    return runs.chat_rows(store, session)
