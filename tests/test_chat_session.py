"""The Compare tab's chat as a core object: streaming, per-pane histories, Regenerate, Clear,
and what a failed turn leaves behind. No Gradio: the tiny random Llama answers."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from workbench.core.compare.chat import chat_log
from workbench.core.compare.pool import BASE, ComparePool, Sampling, Subject
from workbench.core.compare.session import ChatSession, Frame, has_run, subjects_of
from workbench.core.config import ModelConfig
from workbench.core.errors import WorkbenchError
from workbench.core.store import Store
from workbench.core.workspace import resolve_workspace

SAMPLING = Sampling(max_new_tokens=6)
MISSING = "run:999999"  # a run that does not exist: its pane says why instead of answering


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> SimpleNamespace:
    """A store and one pool with the tiny Llama as the base, prepared as the app does it."""
    ws = resolve_workspace(tmp_path_factory.mktemp("chat") / "ws")
    store = Store(ws.db_path)
    pool = ComparePool(store, ws)
    base = ModelConfig(name_or_path=str(tiny_llama), device="cpu")
    calls: list[list[Subject]] = []
    samplings: list[Sampling] = []
    real_generate = pool.generate

    def generate(requests: Any, sampling: Sampling, **kwargs: Any) -> list[str]:
        samplings.append(sampling)
        relay = kwargs.pop("on_text", None)

        def slow(i: int, text: str) -> None:  # long enough per token to see the text grow
            time.sleep(0.01)
            if relay is not None:
                relay(i, text)

        return real_generate(requests, sampling, on_text=slow, **kwargs)

    pool.generate = generate  # type: ignore[method-assign]

    @contextlib.contextmanager
    def prepare(subjects: Sequence[Subject], set_name: str | None,
                ) -> Iterator[tuple[ComparePool, None, None]]:
        calls.append(list(subjects))
        pool.prepare(subjects, base)
        yield pool, None, None

    return SimpleNamespace(store=store, prepare=prepare, calls=calls, samplings=samplings)


def session(models: SimpleNamespace) -> ChatSession:
    return ChatSession(models.store, models.prepare, redraw_s=0.001)


def test_a_turn_streams_growing_text_then_each_pane_keeps_its_own_history(models) -> None:
    chat = session(models)
    frames = list(chat.stream(["base", MISSING], "  Who wrote Hamlet? ", SAMPLING,
                              system="Be brief."))
    last = frames[-1]
    assert last.done and not any(f.done for f in frames[:-1])
    assert last.keys == ["base", MISSING] and last.question == "Who wrote Hamlet?"
    growing = [f.texts[0] for f in frames[:-1] if f.texts[0]]
    assert growing and all(last.texts[0].startswith(t.strip()) for t in growing)
    # While the turn runs, the pane shows the question and the reply so far.
    asking = chat.panes(["base"], frames[0])[0]
    assert asking[-2] == {"role": "user", "content": "Who wrote Hamlet?"}
    # Afterwards: the base pane holds the turn; the missing run holds nothing and says why.
    assert chat.history("base") == [{"role": "user", "content": "Who wrote Hamlet?"},
                                    {"role": "assistant", "content": last.texts[0]}]
    assert chat.history(MISSING) == [] and MISSING in last.notes
    assert chat.panes([MISSING], last)[0][0]["content"].startswith("⚠ ")
    log = chat_log(models.store, chat.session_id)
    assert [(r["pane"], r["role"]) for r in log] == [("base", "user"), ("base", "assistant")]

    # A follow-up is asked after the pane's own history.
    chat.ask(["base"], "And Macbeth?", SAMPLING)
    questions = [m["content"] for m in chat.history("base")][::2]
    assert questions == ["Who wrote Hamlet?", "And Macbeth?"]


def test_regenerate_replaces_the_last_turn_with_a_new_draw(models) -> None:
    chat = session(models)
    with pytest.raises(WorkbenchError, match="nothing to regenerate"):
        list(chat.regenerate(["base"], SAMPLING))
    chat.ask(["base"], "Where is Paris?", SAMPLING)
    first = chat.ask(["base"], "Where is Tokyo?", SAMPLING)
    before = chat.history("base")
    frames = list(chat.regenerate(["base"], SAMPLING))
    # During the new draw the pane shows the turn before it, not the answer being replaced.
    if len(frames) > 1:
        assert chat.panes(["base"], frames[0])[0][:2] == before[:2]
        assert len(chat.panes(["base"], frames[0])[0]) == 4
    after = chat.history("base")
    assert len(after) == 4 and after[:3] == before[:3]
    assert frames[-1].texts == first.texts  # greedy: the same answer again
    assert models.samplings[-1].seed == len(before) + 1 != models.samplings[-2].seed
    assert len(chat_log(models.store, chat.session_id)) == 6  # three turns, each saved


def test_a_failed_turn_leaves_the_chat_as_it_was(models) -> None:
    chat = session(models)
    chat.ask(["base"], "Who wrote Hamlet?", SAMPLING)
    kept = copy.deepcopy(chat.histories)

    @contextlib.contextmanager
    def broken(subjects: Sequence[Subject], set_name: str | None) -> Iterator[Any]:
        raise WorkbenchError("no model for you")
        yield

    chat.prepare = broken
    with pytest.raises(WorkbenchError, match="no model for you"):
        list(chat.regenerate(["base"], SAMPLING))
    assert chat.histories == kept
    calls = len(models.calls)
    chat.prepare = models.prepare
    for keys, question, why in [(["base"], "   ", "type a question"),
                                ([], "Hi?", "at least one pane"),
                                (["base"] * 5, "Hi?", "at most 4 panes"),
                                (["nonsense"], "Hi?", "is not a pane")]:
        with pytest.raises(WorkbenchError, match=why):
            list(chat.stream(keys, question, SAMPLING))
    assert len(models.calls) == calls  # refused before any model was asked
    assert chat.histories == kept


def test_clear_and_a_pages_copy(models) -> None:
    chat = session(models)
    chat.ask(["base"], "Hi?", SAMPLING)
    page = copy.deepcopy(chat)  # what Gradio does to a page's state
    assert page.store is chat.store and page.prepare is chat.prepare
    assert page.histories == chat.histories and page.histories["base"] is not chat.histories["base"]
    chat.clear()
    assert chat.histories == {} and chat.last_question == ""
    assert chat.panes(["base", "retrieval"]) == [[], []]
    assert page.history("base")


def test_pane_keys() -> None:
    assert subjects_of(["base", "run:3", "in-context"]) == [
        BASE, Subject("run", 3), Subject("in_context")]
    assert has_run(["base", "run:3"]) and not has_run(["base", "retrieval"]) and not has_run(None)


def test_a_frame_without_texts_shows_an_ellipsis(models) -> None:
    chat = session(models)
    frame = Frame(["base", "retrieval"], "Hi?", ["", ""], {"retrieval": "needs a set"})
    assert [p[-1]["content"] for p in chat.panes(frame.keys, frame)] == ["…", "needs a set"]
