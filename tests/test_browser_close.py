"""Closing the browser does not stall a run: a real Chromium starts a run from the Method tab,
then the page and its browser context are closed; with no page open the run's worker writes
far more output than a pipe holds (256 KiB to each of stdout and stderr, where a pipe blocks
its writer at 64 KiB) while its step counter keeps advancing; a fresh page re-attaches to the
run (running, at a step at least as far as the one reached with no page open), and Stop ends
the worker.

The flood comes from outside the app, so production code carries no test hook: the app is
served with a `sitecustomize.py` on PYTHONPATH, which every Python process of the app imports
at start. In each it waits for two things, that fd 1 has become a run's `debug.log` (a fresh
worker, or the standby spare once it has taken a job) and that the test has created a trigger
file, and then writes the flood. The log must hold every flood line, tagged with the worker's
pid: proof that the output went somewhere that never blocks the worker.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ServedApp, serve_app
from test_browser import chromium, start_demo_run
from workbench.core.store import Store
from workbench.core.train import jobs
from workbench.core.workspace import resolve_workspace

pytestmark = pytest.mark.browser

RUN_NAME = "browser close"
FLOOD_ENV = "WORKBENCH_TEST_FLOOD_TRIGGER"
FLOOD_LINES = 256  # per stream, of FLOOD_LINE_BYTES each: 256 KiB, four pipes' worth
FLOOD_LINE_BYTES = 1024
PIPE_BYTES = 64 * 1024  # Linux's default pipe capacity
STEPS_WITHOUT_PAGE = 5  # the run must advance at least this far while no page is open
STEP_TIMEOUT_S = 180.0

# Imported at start by every Python process of the served app (server, standby, workers).
SITECUSTOMIZE = f'''
"""Test hook: once this process is a run's worker and the trigger file exists, flood its
stdout and stderr. Never installed outside tests/test_browser_close.py."""
import os
import sys
import threading
import time

_TRIGGER = os.environ.get({FLOOD_ENV!r}, "")


def _is_run_worker() -> bool:
    try:
        return os.readlink("/proc/self/fd/1").endswith("debug.log")
    except OSError:
        return False


def _flood() -> None:
    while not (_is_run_worker() and os.path.exists(_TRIGGER)):
        time.sleep(0.2)
    pid = os.getpid()
    for i in range({FLOOD_LINES}):
        for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            head = f"flood {{name}} {{pid}} {{i:04d}} "
            stream.write(head + "x" * ({FLOOD_LINE_BYTES} - len(head) - 1) + "\\n")
            stream.flush()
        time.sleep(0.01)


if _TRIGGER:
    threading.Thread(target=_flood, name="test-log-flood", daemon=True).start()
'''


class FloodApp(ServedApp):
    def __init__(self, url: str, workspace: Path, log: Path, trigger: Path, pid: int) -> None:
        super().__init__(url, workspace, log)
        self.trigger, self.pid = trigger, pid


@pytest.fixture(scope="module")
def flood_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FloodApp]:
    """The app on its own port and workspace, with the flood hook on PYTHONPATH."""
    root = tmp_path_factory.mktemp("browser-close")
    hooks, workspace = root / "hooks", root / "workspace"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, FLOOD_ENV: str(root / "flood-now")}
    try:
        with serve_app(workspace, root / "server.log", env) as (app, proc):
            yield FloodApp(app.url, workspace, app.log, root / "flood-now", proc.pid)
    finally:
        _end_workers(workspace)


def _wait_for_spare(app: FloodApp, timeout: float = 60) -> None:
    """The app starts its standby spare a few seconds after it serves; a run started before
    that gets a fresh worker. Waiting makes the run take the spare, whose output is pointed at
    the log only after it took the job, as it is for a user who did not click at once."""
    import psutil

    def has_spare() -> bool:
        try:
            return any("standby" in child.cmdline()
                       for child in psutil.Process(app.pid).children(recursive=True))
        except psutil.Error:  # a child ended while being looked at
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not has_spare():
        time.sleep(0.5)
    # No spare (it is an optimisation): the run gets a fresh worker, which must behave the same.


def _end_workers(workspace: Path) -> None:
    """Workers run in sessions of their own and outlive the server: end any left behind."""
    store = Store(resolve_workspace(workspace).db_path)
    for row in store.db.execute_returning_dicts("SELECT pid FROM runs WHERE pid IS NOT NULL"):
        if jobs.pid_alive(row["pid"]):
            os.kill(row["pid"], signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def _open(browser, url: str):
    """A page in a browser context of its own, so closing it leaves no tab or session open."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(url, wait_until="load")
    return page


def _shown_step(page) -> int:
    """The step the Train tab's progress line shows ("step 12 / 900 · …"); 0 before any."""
    text = page.locator("#train-progress").inner_text()
    match = re.search(r"step (\d+)", text)
    return int(match.group(1)) if match else 0


def _wait_for_shown_step(page, at_least: int, timeout: float = STEP_TIMEOUT_S) -> int:
    deadline = time.monotonic() + timeout
    while (step := _shown_step(page)) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"the Train tab stayed at step {step}, waiting for {at_least}")
        page.wait_for_timeout(500)
    return step


def _run(store: Store) -> dict:
    rows = store.db.execute_returning_dicts("SELECT * FROM runs WHERE name = ? ORDER BY id DESC",
                                            [RUN_NAME])
    assert rows, "the browser started no run"
    return rows[0]


def _stored_step(store: Store, run_id: int) -> int:
    row = store.db.execute("SELECT max(step) FROM metrics WHERE run_id = ?", [run_id]).fetchone()
    return int(row[0] or 0)


def _flood_lines(log: Path, pid: int) -> dict[str, int]:
    """Complete flood lines in the run's log, per stream, from the worker `pid` only."""
    pattern = re.compile(rf"^flood (stdout|stderr) {pid} \d{{4}} x+$", re.MULTILINE)
    counts = {"stdout": 0, "stderr": 0}
    for match in pattern.finditer(log.read_text(errors="replace")):
        if len(match.group(0)) == FLOOD_LINE_BYTES - 1:
            counts[match.group(1)] += 1
    return counts


def _wait_with_no_page(store: Store, run: dict, from_step: int) -> tuple[int, dict[str, int]]:
    """Until the whole flood is in the log and the run moved STEPS_WITHOUT_PAGE steps on."""
    log = Path(run["run_dir"]) / jobs.DEBUG_FILE
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while True:
        step, lines = _stored_step(store, run["id"]), _flood_lines(log, run["pid"])
        if step >= from_step + STEPS_WITHOUT_PAGE and min(lines.values()) >= FLOOD_LINES:
            return step, lines
        if time.monotonic() > deadline or not jobs.pid_alive(run["pid"]):
            raise AssertionError(
                f"with no page open: step {step} (closed at {from_step}), flood lines {lines}, "
                f"log {log.stat().st_size} bytes, worker alive {jobs.pid_alive(run['pid'])}\n"
                f"{jobs.log_tail(run['run_dir'])}")
        time.sleep(0.5)


def _worker_kind(pid: int) -> str:
    """Whether the run went to the app's standby spare or a freshly started worker."""
    import psutil

    return "standby spare" if "standby" in psutil.Process(pid).cmdline() else "fresh worker"


def _wait_for_exit(pid: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while jobs.pid_alive(pid):
        assert time.monotonic() < deadline, f"worker {pid} still runs {timeout} s after Stop"
        time.sleep(0.5)


def test_a_run_keeps_training_and_logging_with_the_page_closed_and_a_new_page_reattaches(
        browser, flood_app: FloodApp) -> None:
    from playwright.sync_api import expect

    store = Store(resolve_workspace(flood_app.workspace).db_path)
    _wait_for_spare(flood_app)
    page = _open(browser, flood_app.url)
    start_demo_run(page, RUN_NAME)
    first = _wait_for_shown_step(page, 1)
    _wait_for_shown_step(page, first + 1)  # the page follows a moving counter
    run = _run(store)
    assert run["status"] == "running" and jobs.pid_alive(run["pid"]), run
    page.close()
    page.context.close()

    closed_at = _stored_step(store, run["id"])
    flood_app.trigger.touch()  # the worker's output flood starts only now, with no page open
    advanced, lines = _wait_with_no_page(store, run, closed_at)
    log = Path(run["run_dir"]) / jobs.DEBUG_FILE
    assert log.stat().st_size > FLOOD_LINES * FLOOD_LINE_BYTES > PIPE_BYTES, lines

    page = _open(browser, flood_app.url)
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-headline")).to_contain_text(RUN_NAME, timeout=30_000)
    expect(page.locator("#train-progress .kw-progress-status")).to_have_text("running",
                                                                              timeout=30_000)
    assert _wait_for_shown_step(page, advanced, timeout=30) >= advanced > closed_at
    print(f"browser close: {_worker_kind(run['pid'])} closed at step {closed_at}, "
          f"{advanced} with no page open, flood {lines} lines, log {log.stat().st_size} bytes")

    page.locator("#train-stop").click()
    expect(page.locator("#train-message")).to_contain_text("was stopped", timeout=90_000)
    _wait_for_exit(run["pid"])
    assert _run(store)["status"] == "stopped"
    page.context.close()
