"""One page's side-by-side chat: the panes' histories, and the turn that streams into them.

The Compare tab only lays out widgets and draws what a `ChatSession` yields. A turn runs the
batched generation (`ask_panes`) in a worker thread while `stream` yields a `Frame` of every
pane's text so far every `redraw_s` seconds; a UI redraws from the frames and needs no thread
of its own. Histories change only when a turn finishes, so a failed turn leaves the chat as
it was, and every finished turn is saved to the store (`save_turn`).

The models come from `prepare`, a context manager the caller owns: in the app it holds the
one Compare pool on the app's model cache and one lock, so two pages never generate at once
on the shared model.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from workbench.core.compare.baselines import Baselines
from workbench.core.compare.chat import ask_panes, clean_question, clean_system, save_turn
from workbench.core.compare.pool import ComparePool, Sampling, Subject
from workbench.core.errors import WorkbenchError
from workbench.core.store import Store

MAX_PANES = 4
REDRAW_S = 0.15  # often enough to look like streaming, rare enough not to flood the page
Message = dict[str, str]
# (subjects, knowledge set name) → a context manager giving the prepared pool, the baselines'
# context (None without baseline panes) and the set id.
Prepare = Callable[[Sequence[Subject], str | None],
                   AbstractContextManager[tuple[ComparePool, Baselines | None, int | None]]]


def subjects_of(keys: Sequence[str] | None) -> list[Subject]:
    """The panes' subjects from their keys ('base', 'run:3', …), at least one, at most
    MAX_PANES."""
    subjects = [Subject.parse(k) for k in (keys or [])]
    if not subjects:
        raise WorkbenchError("choose at least one pane (the base model, a run or a baseline)")
    if len(subjects) > MAX_PANES:
        raise WorkbenchError(f"at most {MAX_PANES} panes side by side; remove one")
    return subjects


def has_run(keys: Sequence[str] | None) -> bool:
    """Whether any pane is a tuned run (then the run's knowledge set is the one to show)."""
    return any(Subject.parse(k).kind == "run" for k in keys or [])


@dataclass
class Frame:
    """What the panes show at one moment of a turn: the question being answered, each pane's
    reply so far (in the order of `keys`), why a pane cannot answer (by key), and the
    histories the turn continues (Regenerate's are trimmed of the turn it replaces)."""

    keys: list[str]
    question: str
    texts: list[str]
    notes: dict[str, str] = field(default_factory=dict)
    done: bool = False
    before: dict[str, list[Message]] = field(default_factory=dict, repr=False)


@dataclass
class ChatSession:
    """The chat of one page: each pane's own history (keyed 'base', 'run:3', …), the last
    question asked (for Regenerate) and the id its turns are saved under."""

    store: Store
    prepare: Prepare
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    histories: dict[str, list[Message]] = field(default_factory=dict)
    last_question: str = ""
    redraw_s: float = REDRAW_S

    def __deepcopy__(self, memo: dict[int, Any]) -> ChatSession:
        # Gradio deep-copies a page's state when the page opens. The store and the models
        # behind `prepare` belong to the app (a database connection, loaded weights): a copy
        # shares them and copies only the chat itself.
        return dataclasses.replace(self, histories=copy.deepcopy(self.histories, memo))

    def history(self, key: str) -> list[Message]:
        return list(self.histories.get(key, []))

    def stream(self, keys: Sequence[str], question: str, sampling: Sampling, *,
               system: str = "", set_name: str | None = None) -> Iterator[Frame]:
        """Ask every pane `question` after its own history; yields frames while the replies
        grow, the last one with `done` set once the histories hold the new turn. Bad input
        raises WorkbenchError before anything is generated."""
        subjects = subjects_of(keys)
        question, system = clean_question(question), clean_system(system)
        self.last_question = question
        yield from self._turn(subjects, self.histories, question, sampling, system, set_name)

    def regenerate(self, keys: Sequence[str], sampling: Sampling, *, system: str = "",
                   set_name: str | None = None) -> Iterator[Frame]:
        """Ask the last question again in place of its answers: each pane whose history ends
        with it drops that turn first. The seed changes with the history's length, so sampling
        draws anew while greedy answers stay the same."""
        if not self.last_question:
            raise WorkbenchError("nothing to regenerate yet: ask a question first")
        subjects = subjects_of(keys)
        question, system = self.last_question, clean_system(system)
        trimmed = {k: (v[:-2] if len(v) >= 2 and v[-2]["content"] == question else v)
                   for k, v in self.histories.items()}
        seed = sum(len(v) for v in self.histories.values()) + 1
        yield from self._turn(subjects, trimmed, question, dataclasses.replace(sampling, seed=seed),
                              system, set_name)

    def ask(self, keys: Sequence[str], question: str, sampling: Sampling, *, system: str = "",
            set_name: str | None = None) -> Frame:
        """`stream` run to its end: the finished turn's frame."""
        frame = None
        for frame in self.stream(keys, question, sampling, system=system, set_name=set_name):
            pass
        assert frame is not None and frame.done
        return frame

    def clear(self) -> None:
        self.histories, self.last_question = {}, ""

    def panes(self, keys: Sequence[str], frame: Frame | None = None) -> list[list[Message]]:
        """The messages each pane in `keys` shows: its history, then, during a turn, the
        question with the reply so far (or why the pane cannot answer); after a turn, a
        warning line in the panes that could not answer."""
        notes = frame.notes if frame is not None else {}
        pending = frame if frame is not None and not frame.done else None
        out = []
        for i, key in enumerate(keys):
            messages = list(pending.before.get(key, [])) if pending else self.history(key)
            if pending:
                reply = notes.get(key) or (pending.texts[i] if i < len(pending.texts) else "") \
                    or "…"
                messages += [{"role": "user", "content": pending.question},
                             {"role": "assistant", "content": reply}]
            elif key in notes:
                messages.append({"role": "assistant", "content": f"⚠ {notes[key]}"})
            out.append(messages)
        return out

    def _turn(self, subjects: list[Subject], histories: dict[str, list[Message]], question: str,
              sampling: Sampling, system: str, set_name: str | None) -> Iterator[Frame]:
        """Generate in a worker thread (the models block for seconds) and yield what it has
        written every `redraw_s`; on success `histories` plus the new turn become the chat."""
        keys = [s.key for s in subjects]
        texts, box, done = [""] * len(subjects), {}, threading.Event()

        def work() -> None:
            try:
                with self.prepare(subjects, set_name) as (pool, baselines, _sid):
                    box["notes"] = dict(pool.unavailable)
                    box["replies"] = ask_panes(pool, subjects, histories, question, sampling,
                                               system=system, baselines=baselines,
                                               on_text=texts.__setitem__)
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread below
                box["error"] = err
            finally:
                done.set()

        threading.Thread(target=work, daemon=True).start()
        while not done.wait(self.redraw_s):
            yield Frame(keys, question, list(texts), dict(box.get("notes", {})), before=histories)
        if "error" in box:
            raise box["error"]
        replies, notes = box["replies"], box["notes"]
        new = {k: list(v) for k, v in histories.items()}
        answered = [(s, r) for s, r in zip(subjects, replies) if s.key not in notes]
        for s, reply in answered:
            new.setdefault(s.key, []).extend([{"role": "user", "content": question},
                                              {"role": "assistant", "content": reply}])
        save_turn(self.store, self.session_id, [s for s, _ in answered], question,
                  [r for _, r in answered], sampling, system)
        self.histories = new
        yield Frame(keys, question, list(replies), notes, done=True)
