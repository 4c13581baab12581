"""The workspace store under load: a training worker writing a metrics row every few
milliseconds, three UI threads polling the run as the Train tab does, and a UI thread making
knowledge edits and saving chat turns, all at the same time, for seconds (default suite) or
minutes (`-m slow`).

What it proves: no sqlite3 error ("database is locked" or any other) ever reaches a caller; no
write is lost (every metrics row the worker wrote is there, steps 1..n with no gap, every fact
edit and chat turn landed); every poll saw the steps in order with none skipped; and the file
passes `PRAGMA integrity_check` afterwards.

The worker is its own process, as in the app (`control` starts `core/train/worker.py`), and writes
through the worker's own `_record_step`. The readers and the UI writer are threads of a second
process sharing one `Store` (one connection per thread), as Gradio's callbacks do.
`test_store.py::test_concurrent_read_then_write_transactions_lose_no_update` is the small,
single-process version of the same promise.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import random
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import pytest

from workbench.core.compare.chat import save_turn
from workbench.core.compare.pool import Sampling, Subject
from workbench.core.knowledge import sets
from workbench.core.knowledge.types import FactDraft
from workbench.core.store import Store, now
from workbench.core.train import jobs
from workbench.core.train.run import _record_step
from workbench.core.workspace import resolve_workspace
from workbench.ui import run_view

LOAD_SECONDS = 12.0  # default suite
SOAK_SECONDS = 180.0  # `-m slow`
STEP_EVERY_S = 0.01  # the worker's pace: far faster than a real run's steps
POLL_EVERY_S = (0.05, 0.1)  # each reader sleeps a random time in this range between polls
EDIT_EVERY_S = 0.02
READERS = 3
STARTUP_TIMEOUT_S = 120.0  # spawned interpreters import the app's modules first
MAX_LIVE_FACTS = 20  # the UI writer deletes the oldest fact beyond this many
CHAT_SUBJECTS = 2  # panes per chat turn; each turn saves a question and a reply per pane
PARTICIPANTS = ("worker", "ui writer", *(f"reader {i}" for i in range(READERS)))


@dataclass
class Report:
    """What one participant did, sent back to the test through a queue."""

    name: str
    count: int = 0  # rows written, polls done or edits done
    max_op_s: float = 0.0  # the slowest single operation, waiting for the lock included
    errors: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def timed(self, started: float) -> None:
        self.max_op_s = max(self.max_op_s, time.monotonic() - started)

    def fail(self, err: BaseException) -> None:
        # The whole traceback: a "database is locked" must say which call raised it.
        self.errors.append("".join(traceback.format_exception(err)))


# ---- the worker process --------------------------------------------------------------------
def _metrics(step: int) -> dict[str, Any]:
    """A metrics dict shaped like the training loop's (what `_record_step` receives)."""
    return {"step": step, "epoch": step / 100, "loss": 2.0 / step, "lr": 1e-4, "grad_norm": 1.0,
            "tokens": 512, "step_seconds": STEP_EVERY_S, "tokens_per_s": 51_200.0,
            "mem_allocated": 1 << 20, "mem_reserved": 2 << 20, "mem_peak": 2 << 20,
            "mem_capacity": 8 << 30, "micro_batch_size": 4, "gradient_accumulation_steps": 1,
            "examples": 4}


def worker_process(db_path: str, run_id: int, seconds: float, start: Event, results: Any) -> None:
    """Claim the run like a worker, then per step: read the stop flag, write the step's row."""
    report = Report("worker")
    try:
        store = Store(db_path)
        jobs.claim(store, run_id, "cpu", resume=False)
        if not start.wait(STARTUP_TIMEOUT_S):
            raise TimeoutError("the test never gave the start signal")
        deadline, step = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            began = time.monotonic()
            try:
                if jobs.stop_requested(store, run_id):
                    raise AssertionError("nobody asked this run to stop")
                _record_step(store, run_id, _metrics(step + 1))
                step += 1  # only a committed row counts; a failed one is retried
            except Exception as err:  # anything reaching the worker would kill a real run
                report.fail(err)
            report.timed(began)
            time.sleep(STEP_EVERY_S)
        jobs.finish(store, run_id, "completed")
        report.count = step
    except Exception as err:
        traceback.print_exc()  # shown by pytest even when the test fails before reading reports
        report.fail(err)
    results.put(report)


# ---- the UI process: readers and a writer sharing one Store --------------------------------
def _reader(store: Store, run_id: int, set_id: int, index: int, done: Event, results: Any) -> None:
    """Poll like the Train tab (a feed of rows after the last drawn step) until the worker is
    done, now and then refreshing the Knowledge tab's lists; then one last poll."""
    report, rng = Report(f"reader {index}"), random.Random(index)
    feed: run_view.RunFeed | None = None
    try:
        while True:
            last = done.is_set()  # read before polling: the final poll comes after the worker ended
            began = time.monotonic()
            try:
                feed = _poll_checked(store, feed, run_id)
                if report.count % 10 == 0:
                    sets.list_sets(store)
                    sets.list_facts(store, set_id)
                report.count += 1
            except Exception as err:
                report.fail(err)
            report.timed(began)
            if last:
                break
            time.sleep(rng.uniform(*POLL_EVERY_S))
        report.detail = {"last_step": feed.last_step if feed else 0,
                         "status": feed.run.get("status") if feed else None}
    finally:
        store.close()
        results.put(report)


def _poll_checked(store: Store, feed: run_view.RunFeed | None, run_id: int) -> run_view.RunFeed:
    """`run_view.poll`, failing if the rows it added are not exactly the steps after the last."""
    before, drawn = (feed.last_step, len(feed.metrics)) if feed else (0, 0)
    feed, _ = run_view.poll(store, feed, run_id)
    new = [row["step"] for row in feed.metrics[drawn:]]
    if new != list(range(before + 1, feed.last_step + 1)):
        raise AssertionError(f"a poll after step {before} got steps {new[:5]}…: rows skipped")
    return feed


@dataclass
class _Edits:
    """The UI writer's record of what the database must hold afterwards."""

    live: dict[int, str] = field(default_factory=dict)  # fact id → its latest answer
    deleted: list[int] = field(default_factory=list)
    chat_turns: int = 0
    serial: int = 0


def _edit_once(store: Store, set_id: int, run_id: int, edits: _Edits, rng: random.Random) -> None:
    """One UI write through the real functions: add, edit or delete a fact, or a chat turn."""
    edits.serial += 1
    n, op = edits.serial, edits.serial % 4
    if op == 0:
        fid = sets.add_fact(store, set_id, FactDraft(f"Load question {n}?", f"answer {n}"))
        edits.live[fid] = f"answer {n}"
    elif op == 1 and edits.live:
        fid = rng.choice(sorted(edits.live))
        sets.update_fact(store, fid, answer=f"edited {n}")
        edits.live[fid] = f"edited {n}"
    elif op == 2 and len(edits.live) > MAX_LIVE_FACTS:
        fid = min(edits.live)
        sets.delete_facts(store, [fid])
        del edits.live[fid]
        edits.deleted.append(fid)
    else:
        subjects = [Subject("base"), Subject("run", run_id)][:CHAT_SUBJECTS]
        save_turn(store, "load", subjects, f"question {n}", [f"reply {n}"] * len(subjects),
                  Sampling())
        edits.chat_turns += 1


def _writer(store: Store, run_id: int, set_id: int, seconds: float, results: Any) -> None:
    report, rng, edits = Report("ui writer"), random.Random(7), _Edits()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            began = time.monotonic()
            try:
                _edit_once(store, set_id, run_id, edits, rng)
                report.count += 1
            except Exception as err:  # a failed write rolled back: the record stays as it was
                report.fail(err)
            report.timed(began)
            time.sleep(EDIT_EVERY_S)
        report.detail = {"live": edits.live, "deleted": edits.deleted,
                         "chat_turns": edits.chat_turns}
    finally:
        store.close()
        results.put(report)


def ui_process(db_path: str, run_id: int, set_id: int, seconds: float, start: Event,
               worker_done: Event, results: Any) -> None:
    store = Store(db_path)  # one Store, a connection per thread: as the app's context holds it
    threads = [threading.Thread(target=_reader, args=(store, run_id, set_id, i, worker_done,
                                                      results)) for i in range(READERS)]
    threads.append(threading.Thread(target=_writer, args=(store, run_id, set_id, seconds, results)))
    if not start.wait(STARTUP_TIMEOUT_S):
        return
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# ---- the test side ---------------------------------------------------------------------------
@dataclass
class Outcome:
    store: Store
    run_id: int
    set_id: int
    reports: dict[str, Report]
    seconds: float


def _prepare(tmp_path: Path) -> tuple[Store, int, int]:
    """A set with a few facts and a queued run (queued: `reap` leaves it alone until claimed)."""
    store = Store(resolve_workspace(tmp_path / "ws").db_path)
    sid = sets.create_set(store, "load")
    sets.add_facts(store, sid, [FactDraft(f"Seed question {i}?", f"seed {i}") for i in range(5)])
    with store.write() as db:
        run_id = int(db["runs"].insert({"name": "load", "status": "queued", "method": "lora",
                                        "model": "m", "config_yaml": "", "created_at": now(),
                                        "set_id": sid}).last_pk)
    return store, run_id, sid


def _collect(results: Any, reports: dict[str, Report], names: set[str], timeout: float) -> None:
    """Add reports from the queue to `reports` until all of `names` are in (or time runs out)."""
    deadline = time.monotonic() + timeout
    while not names <= set(reports):
        try:
            report = results.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            return
        reports[report.name] = report


def run_load(tmp_path: Path, seconds: float) -> Outcome:
    store, run_id, sid = _prepare(tmp_path)
    ctx = mp.get_context("spawn")  # fresh interpreters, like the app's worker
    start, worker_done, results = ctx.Event(), ctx.Event(), ctx.Queue()
    db = str(store.path)
    worker = ctx.Process(target=worker_process, args=(db, run_id, seconds, start, results))
    ui = ctx.Process(target=ui_process,
                     args=(db, run_id, sid, seconds, start, worker_done, results))
    procs = (worker, ui)
    reports: dict[str, Report] = {}
    try:
        for p in procs:
            p.start()
        _wait_until_claimed(store, run_id, worker)
        start.set()
        _collect(results, reports, {"worker"}, seconds + STARTUP_TIMEOUT_S)
        worker_done.set()  # the readers' last poll comes after the run's last row and its end
        _collect(results, reports, set(PARTICIPANTS), 60)
        for p in procs:
            p.join(30)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    return Outcome(store, run_id, sid, reports, seconds)


def _wait_until_claimed(store: Store, run_id: int, worker: Any) -> None:
    """The worker owns the run (status running, its pid) before anyone polls it."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while jobs.get_run(store, run_id)["status"] != "running":
        if not worker.is_alive() or time.monotonic() > deadline:
            raise AssertionError(f"the worker never claimed run {run_id}")
        time.sleep(0.1)


def summary(out: Outcome) -> str:
    r = out.reports
    readers = [r[f"reader {i}"] for i in range(READERS) if f"reader {i}" in r]
    writer, worker = r.get("ui writer", Report("ui writer")), r.get("worker", Report("worker"))
    errors = sum(len(x.errors) for x in r.values())
    return (f"store load {out.seconds:.0f} s: worker wrote {worker.count} metrics rows "
            f"(slowest {worker.max_op_s * 1000:.0f} ms); {len(readers)} readers polled "
            f"{sum(x.count for x in readers)} times (slowest "
            f"{max((x.max_op_s for x in readers), default=0) * 1000:.0f} ms); UI writer made "
            f"{writer.count} edits incl. {writer.detail.get('chat_turns', 0)} chat turns "
            f"(slowest {writer.max_op_s * 1000:.0f} ms); {errors} errors")


def check(out: Outcome) -> None:
    """Every promise of the module docstring, each with the counts in its message."""
    line = summary(out)
    print(line)
    assert sorted(out.reports) == sorted(PARTICIPANTS), f"missing reports: {line}"
    errors = {name: r.errors for name, r in out.reports.items() if r.errors}
    if errors:  # pytest.fail, not assert: the tracebacks read better than the dict's repr
        pytest.fail(f"{line}\nfirst error of each:\n" + "\n".join(
            f"--- {name} ({len(e)} errors):\n{e[0]}" for name, e in errors.items()))
    _check_metrics(out, line)
    _check_edits(out, line)
    assert out.store.integrity_ok(), line


def _check_metrics(out: Outcome, line: str) -> None:
    written = out.reports["worker"].count
    assert written > out.seconds, f"the worker barely ran: {line}"
    count, first, last = out.store.db.execute(
        "SELECT count(*), min(step), max(step) FROM metrics WHERE run_id = ?",
        [out.run_id]).fetchone()
    assert (count, first, last) == (written, 1, written), \
        f"{count} rows, steps {first}..{last}: {line}"
    assert jobs.get_run(out.store, out.run_id)["status"] == "completed", line
    for i in range(READERS):
        reader = out.reports[f"reader {i}"]
        # At least the Train tab's own pace (one poll a second), and the final poll saw it all.
        assert reader.count >= out.seconds, f"reader {i} was starved: {line}"
        assert reader.detail == {"last_step": written, "status": "completed"}, line


def _check_edits(out: Outcome, line: str) -> None:
    detail = out.reports["ui writer"].detail
    assert out.reports["ui writer"].count > out.seconds, f"the UI writer barely ran: {line}"
    stored = dict(out.store.db.execute(
        "SELECT id, answer FROM facts WHERE set_id = ? AND question LIKE 'Load question%'",
        [out.set_id]).fetchall())
    assert stored == detail["live"], f"fact edits lost or undone: {line}"
    deleted = detail["deleted"]
    marks = ",".join("?" * len(deleted))
    left = out.store.db.execute(f"SELECT count(*) FROM facts WHERE id IN ({marks})",
                                deleted).fetchone()[0] if deleted else 0
    assert left == 0, f"{left} of {len(deleted)} deleted facts came back: {line}"
    chat_rows = out.store.db.execute("SELECT count(*) FROM chat_logs WHERE session = 'load'"
                                     ).fetchone()[0]
    assert chat_rows == detail["chat_turns"] * CHAT_SUBJECTS * 2, f"chat rows {chat_rows}: {line}"


def test_worker_pollers_and_ui_writes_share_the_store_without_errors_or_lost_writes(
        tmp_path: Path) -> None:
    check(run_load(tmp_path, LOAD_SECONDS))


@pytest.mark.slow
def test_store_soak_for_minutes(tmp_path: Path) -> None:
    check(run_load(tmp_path, SOAK_SECONDS))
