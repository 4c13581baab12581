"""A real headless Chromium opens the app: the tabs, the device header, the demo set, a
run started, followed live across a reload and stopped; screenshots."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from conftest import ARTIFACTS, ServedApp

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network: no background fetches, no sandbox (CI runs as root).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright (which cannot download its own browser here)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page():
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1280, "height": 800})


def start_demo_run(page, name: str) -> None:
    """Start a LoRA run of the demo set from the Method tab, long enough to watch and stop
    (60 epochs, no early stop), and wait until the Train tab shows it."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Method").click()
    expect(page.locator("#method-model input")).to_have_value("workbench-demo")
    expect(page.locator("#method-set input")).to_have_value("Demo: new people")
    page.locator("#method-name").get_by_label("lora", exact=True).check()
    expect(page.locator("#method-memory")).to_contain_text("Estimated peak", timeout=30_000)
    page.locator("#method-advanced input").check()
    page.locator("#cfg-training-epochs input").fill("60")
    page.locator("#cfg-training-stop-at-efficacy input").fill("0")
    page.locator("#method-run-name textarea").fill(name)
    page.locator("#method-start").click()
    expect(page.get_by_role("tab", name="Train")).to_have_attribute("aria-selected", "true",
                                                                    timeout=30_000)
    expect(page.locator("#train-headline")).to_contain_text(name, timeout=30_000)


def test_page_shows_five_tabs_and_the_device_header(page, served_app: ServedApp) -> None:
    from playwright.sync_api import expect

    page.goto(served_app.url, wait_until="load")
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_count(5, timeout=30_000)
    assert [t.strip() for t in tabs.all_inner_texts()] == ["Knowledge", "Method", "Train", "Runs",
                                                           "Compare"]
    header = page.locator(".wb-header")
    expect(header).to_contain_text("Knowledge Workbench")
    expect(header.locator(".wb-device")).to_contain_text("CPU" if "CPU" in header.inner_text() else "GPU")
    expect(header).to_contain_text(str(served_app.workspace.resolve()))
    page.get_by_role("tab", name="Compare").click()
    expect(page.get_by_role("tabpanel")).to_contain_text("Fact scorecard")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "app.png"
    page.get_by_role("tab", name="Knowledge").click()
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_fresh_launch_opens_on_the_demo_set_and_the_demo_model(page, served_app: ServedApp) -> None:
    """No hub, no GPU: a fresh workspace holds the demo set, and the demo model answers."""
    from playwright.sync_api import expect

    page.goto(served_app.url, wait_until="load")
    page.get_by_role("tab", name="Knowledge").click()
    expect(page.locator("#kn-set input")).to_have_value("Demo: new people", timeout=20_000)
    expect(page.locator("#kn-counts")).to_contain_text("Facts 100")
    expect(page.locator("#kn-facts")).to_contain_text("Where was")
    expect(page.locator("#kn-model textarea")).to_have_value("workbench-demo")
    # Screening asks the demo model every fact: it has never seen these people.
    page.get_by_text("What does the base model already know?").click()
    page.locator("#kn-samples input[type=number]").fill("0")
    page.locator("#kn-screen").click()
    # While it screens, the progress covers the results below the button, not the counts.
    expect(page.locator("#kn-counts")).to_contain_text("Facts 100")
    # The counts appear next to the button, and the base model's answer beside each label.
    expect(page.locator("#kn-screen-msg")).to_contain_text("unknown", timeout=120_000)
    status = page.locator("#kn-screen-msg").inner_text()
    unknown = int(status.split("unknown")[1].split("(")[0])
    assert unknown >= 80, status
    screened = page.locator("#kn-screened")
    expect(screened).to_contain_text("what the base model said")
    expect(screened).to_contain_text("greedy wrong (")
    expect(page.locator("#kn-counts")).to_contain_text("Generate phrasings and hold-out")
    # Headers on one line: no header cell taller than two text lines.
    heights = page.evaluate("() => [...document.querySelectorAll('#kn-facts th')]"
                            ".map(th => th.getBoundingClientRect().height)")
    assert heights and max(heights) < 60, heights
    # …and the last column is inside the table's frame, not cut off at the right.
    frame = page.locator("#kn-facts").bounding_box()
    last = page.locator("#kn-facts th").last.bounding_box()
    assert frame and last and last["x"] + last["width"] <= frame["x"] + frame["width"] + 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)


def test_knowledge_tab_add_a_fact_and_upload_a_csv(page, served_app: ServedApp, tmp_path) -> None:
    from playwright.sync_api import expect

    page.goto(served_app.url, wait_until="load")
    page.get_by_role("tab", name="Knowledge").click()
    # A set of its own: the workspace already holds the demo set.
    page.locator("#kn-new-name textarea").fill("browser test")
    page.locator("#kn-create").click()
    expect(page.locator("#kn-set input")).to_have_value("browser test", timeout=20_000)
    page.locator("#kn-question textarea").fill("Where was Ada Lovelace born?")
    page.locator("#kn-answer textarea").fill("London")
    page.locator("#kn-add").click()
    facts = page.locator("#kn-facts")
    expect(facts).to_contain_text("Where was Ada Lovelace born?", timeout=20_000)
    expect(page.locator("#kn-counts")).to_contain_text("Facts 1")

    csv = tmp_path / "capitals.csv"
    csv.write_text("question,answer,aliases\n"
                   "What is the capital of Freedonia?,Fredville,Fred City\n"
                   "Who founded Sylvania?,Queen Ilsa,\n", encoding="utf-8")
    page.locator("#kn-upload input[type=file]").set_input_files(str(csv))
    page.wait_for_timeout(500)  # the upload finishes before the import reads it
    page.locator("#kn-import").click()
    expect(page.locator("#kn-status")).to_contain_text("imported 2 facts", timeout=20_000)
    expect(facts).to_contain_text("What is the capital of Freedonia?")
    expect(facts).to_contain_text("Where was Ada Lovelace born?")
    expect(page.locator("#kn-counts")).to_contain_text("Facts 3")
    expect(page.locator(".wb-header")).to_contain_text("103 facts", timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "knowledge.png"), full_page=True)


def _points(page, chart: str) -> int:
    """Points drawn in the first trace of a Train-tab chart (0 until plotly has drawn it)."""
    return page.evaluate(
        "(id) => { const p = document.querySelector(`#${id} .js-plotly-plot`);"
        " return p && p.data && p.data.length ? p.data[0].x.length : 0; }", chart)


def _wait_for_more_points(page, chart: str, than: int, timeout: float = 90) -> int:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = _points(page, chart)
        if n > than:
            return n
        page.wait_for_timeout(500)
    raise AssertionError(f"{chart} stayed at {_points(page, chart)} points")


def test_start_follow_reload_and_stop_a_run(page, served_app: ServedApp) -> None:
    """Method tab → Start → live charts gain points → reload → still live → Stop → stopped."""
    from playwright.sync_api import expect

    page.goto(served_app.url, wait_until="load")
    start_demo_run(page, "browser run")
    loss = _wait_for_more_points(page, "train-loss", 2, timeout=120)
    memory = _points(page, "train-memory")
    assert _wait_for_more_points(page, "train-loss", loss) > loss
    assert _wait_for_more_points(page, "train-memory", memory) > memory
    expect(page.locator("#train-progress")).to_contain_text("step")
    # The run list's label follows the run: "running" while it trains, never "starting".
    expect(page.locator("#train-run input")).to_have_value(re.compile(r"browser run · running"),
                                                            timeout=30_000)
    expect(page.locator("#train-stop")).to_be_enabled()
    expect(page.locator("#train-resume")).to_be_disabled()

    page.reload(wait_until="load")  # re-attach: the same run, still moving
    # A reload while a run trains opens the Train tab itself, not the Knowledge tab.
    expect(page.get_by_role("tab", name="Train")).to_have_attribute("aria-selected", "true",
                                                                    timeout=30_000)
    expect(page.locator("#train-headline")).to_contain_text("browser run", timeout=30_000)
    after = _wait_for_more_points(page, "train-loss", 0)
    assert _wait_for_more_points(page, "train-loss", after) > after
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "train.png"), full_page=True)

    page.locator("#train-stop").click()
    expect(page.locator("#train-message")).to_contain_text("was stopped", timeout=90_000)
    # Status follows the run: the list says stopped, Stop is off, Resume is on.
    expect(page.locator("#train-run input")).to_have_value(re.compile(r"browser run · stopped"),
                                                            timeout=10_000)
    expect(page.locator("#train-stop")).to_be_disabled()
    expect(page.locator("#train-resume")).to_be_enabled()
    page.reload(wait_until="load")  # nothing trains now: the page opens where it always did
    expect(page.get_by_role("tab", name="Knowledge")).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name="Runs").click()
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#runs-table")).to_contain_text("stopped", timeout=20_000)
    # Selecting the run shows its config; its config goes back into the Method tab.
    page.locator("#runs-table [role=gridcell]").filter(has_text="browser run").first.click()
    expect(page.locator("#runs-config")).to_contain_text("epochs: 60", timeout=20_000)
    expect(page.locator("#runs-message")).to_contain_text("was stopped")
    page.locator("#runs-load").click()
    expect(page.get_by_role("tab", name="Method")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#method-run-name textarea")).to_have_value("browser run")
    expect(page.locator("#cfg-training-epochs input")).to_have_value("60")
    page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)


def test_compare_tab_base_vs_tuned_scorecard_and_presentation(page, served_app: ServedApp) -> None:
    """A run taught five facts: the Compare tab shows base and tuned answering a taught
    question differently, scores every fact, and switches to presentation mode."""
    from playwright.sync_api import expect

    from conftest import teach_unknown_facts
    from workbench.core.knowledge import sets
    from workbench.core.store import Store
    from workbench.core.workspace import resolve_workspace

    workspace = resolve_workspace(served_app.workspace)
    store = Store(workspace.db_path)
    run_id, sid = teach_unknown_facts(store, workspace, name="taught five")
    fact = sets.list_facts(store, sid)[0]

    page.goto(served_app.url, wait_until="load")
    page.get_by_role("tab", name="Compare").click()
    panes = page.locator("#compare-panes")
    expect(panes).to_contain_text(f"Run {run_id}", timeout=30_000)
    expect(page.locator("#compare-set input")).to_have_value("taught five")
    page.locator("#compare-input textarea").fill(fact.question)
    page.locator("#compare-send").click()
    base, tuned = page.locator("#compare-pane-0"), page.locator("#compare-pane-1")
    expect(tuned).to_contain_text(fact.aliases[0], timeout=60_000)
    expect(base).to_contain_text(fact.question)
    expect(page.locator("#compare-input textarea")).to_have_value("", timeout=30_000)
    base_answer = base.inner_text().split(fact.question)[-1]
    assert fact.aliases[0] not in base_answer and base_answer.strip()

    page.locator("#compare-score").click()
    summary = page.locator("#compare-summary-text")
    expect(summary).to_contain_text("efficacy 100%", timeout=120_000)
    expect(summary).to_contain_text("efficacy 0%")
    expect(page.locator("#compare-table")).to_contain_text("✓", timeout=10_000)
    expect(page.locator("#compare-summary .js-plotly-plot")).to_have_count(1)
    # A row of the scorecard is asked in the panes.
    second = page.locator("#compare-table [role=gridcell]").filter(has_text="?").nth(1)
    asked = second.inner_text().strip()
    assert asked != fact.question
    second.click()
    expect(page.locator("#compare-pane-1")).to_contain_text(asked, timeout=60_000)
    expect(page.locator("#compare-input textarea")).to_have_value("", timeout=60_000)
    page.locator("#compare-report").click()
    expect(page.locator("#compare-report-file")).to_contain_text(f"run-{run_id}-report", timeout=60_000)
    # Every pane's answer column is inside the page, not scrolled off to the right.
    table = page.locator("#compare-table table").first
    right_edge = page.evaluate("() => document.documentElement.clientWidth")
    box = table.bounding_box()
    assert box is not None and box["x"] + box["width"] <= right_edge + 1, box
    # The pane toolbar sits above the first bubble, not on it.
    # (scrolled to its top: a longer chat scrolls under the toolbar, as any chat does)
    page.evaluate("() => document.querySelector('#compare-pane-0 .bubble-wrap').scrollTop = 0")
    bar = page.locator("#compare-pane-0 .top-panel").first.bounding_box()
    bubble = page.locator("#compare-pane-0 .message").first.bounding_box()
    assert bar and bubble and bar["y"] + bar["height"] <= bubble["y"] + 1, (bar, bubble)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare-scorecard.png"), full_page=True)

    page.locator("#compare-present").click()
    expect(page.locator("body")).to_have_class("wb-present", timeout=10_000)
    card = page.locator("#compare-fact")
    expect(card).to_contain_text("What we taught it", timeout=10_000)
    expect(page.locator("#compare-table")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare-presentation.png"), full_page=True)
    page.locator("#compare-present").click()
    expect(page.locator("body")).not_to_have_class("wb-present")


def test_method_tab_recommends_settings_and_applies_them(page, served_app: ServedApp) -> None:
    """The panel lists the recipe for the demo model and set, marks what the demo injection
    sets otherwise, and Apply recommended fills the form with it."""
    from playwright.sync_api import expect

    from workbench.core.device import describe_device
    from workbench.core.knowledge import sets
    from workbench.core.knowledge.types import FactDraft
    from workbench.core.recipe import recommend_for, setting_label, shown
    from workbench.core.store import Store
    from workbench.demo.bench import demo_run_config

    store = Store(served_app.workspace / "workbench.db")
    _, choices = recommend_for(store, demo_run_config(), describe_device())
    page.goto(served_app.url, wait_until="load")
    page.get_by_role("tab", name="Method").click()
    panel = page.locator("#method-recipe")
    expect(panel).to_contain_text("For a 4.7M-parameter model, 100 facts", timeout=30_000)
    expect(panel).to_contain_text("differ from the form")
    for c in choices:
        line = panel.locator(f'li[data-path="{c.path}"]')
        expect(line).to_contain_text(setting_label(c.path))
        expect(line).to_contain_text(shown(c.value))
        assert len(line.inner_text()) > len(setting_label(c.path) + shown(c.value)) + 10  # why
    rate = next(c.value for c in choices if c.path == "training.learning_rate")
    page.locator("#method-apply-recipe").click()
    expect(page.locator("#cfg-training-learning-rate input")).to_have_value(str(rate),
                                                                            timeout=20_000)
    expect(panel).to_contain_text("applied, the form holds every recommended value",
                                  timeout=20_000)
    expect(page.locator("#method-recipe-note")).to_contain_text("Applied")
    expect(panel.locator("li.wb-recipe-differs")).to_have_count(0)
    # Another set while the form still holds the recommendation: the new one replaces it.
    small = sets.create_set(store, "recipe small set")
    sets.add_facts(store, small, [FactDraft("Who founded Sylvania?", "Queen Ilsa")])
    small_cfg = demo_run_config().with_values({"data.knowledge_set": "recipe small set"})
    _, small_choices = recommend_for(store, small_cfg, describe_device())
    epochs = next(c.value for c in small_choices if c.path == "training.epochs")
    page.reload(wait_until="load")  # the set list is read on load
    page.get_by_role("tab", name="Method").click()
    page.locator("#method-apply-recipe").click()
    expect(panel).to_contain_text("applied, the form holds", timeout=20_000)
    page.locator("#method-set input").click()
    page.get_by_role("option", name="recipe small set").click()
    expect(page.locator("#method-recipe-note")).to_contain_text("Applied automatically",
                                                                timeout=20_000)
    expect(page.locator("#cfg-training-epochs input")).to_have_value(str(epochs))
    expect(panel).to_contain_text("model, 1 fact (", timeout=20_000)
    expect(panel).to_contain_text("applied, the form holds", timeout=20_000)
    page.locator("#cfg-training-learning-rate input").fill("0.0042")  # still editable
    page.locator("#cfg-training-learning-rate input").blur()
    expect(panel.locator('li.wb-recipe-differs[data-path="training.learning_rate"]')
           ).to_contain_text("(form: 0.0042)", timeout=20_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "method-recipe.png"), full_page=True)


def test_knowledge_tab_inject_trains_a_fresh_set(page, served_app: ServedApp) -> None:
    """Inject on a new two-fact set: prepared, started with the recipe, followed live in the
    Train tab to its verdict."""
    from playwright.sync_api import expect

    page.goto(served_app.url, wait_until="load")
    page.get_by_role("tab", name="Knowledge").click()
    page.locator("#kn-new-name textarea").fill("inject test")
    page.locator("#kn-create").click()
    # The page's load event restores the last used set (an earlier test's) and may land
    # after the new set was selected: pick it again once it is listed.
    expect(page.get_by_text("Created 'inject test'.")).to_be_visible(timeout=20_000)
    page.locator("#kn-set input").click()
    page.get_by_role("option", name="inject test").click()
    expect(page.locator("#kn-set input")).to_have_value("inject test", timeout=20_000)
    page.locator("#kn-inject").click()  # no facts yet: one line, nothing started
    expect(page.get_by_text("has no facts yet")).to_be_visible(timeout=20_000)
    for question, answer in [("What is the capital of Veltria?", "Orbisk"),
                             ("What is the currency of Kandora?", "the dralm")]:
        page.locator("#kn-question textarea").fill(question)
        page.locator("#kn-answer textarea").fill(answer)
        page.locator("#kn-add").click()
        expect(page.locator("#kn-facts")).to_contain_text(question, timeout=20_000)
    page.locator("#kn-inject").click()
    expect(page.get_by_role("tab", name="Train")).to_have_attribute("aria-selected", "true",
                                                                    timeout=180_000)
    expect(page.locator("#train-headline")).to_contain_text("inject inject test",
                                                            timeout=30_000)
    expect(page.locator("#train-message")).to_contain_text("Injected", timeout=300_000)
    page.get_by_role("tab", name="Knowledge").click()
    expect(page.locator("#kn-status")).to_contain_text("started with the recommended recipe")
    expect(page.locator("#kn-counts")).to_contain_text("held-out probes")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "knowledge-inject.png"), full_page=True)


def test_runs_tab_exports_a_run_and_shows_the_rescore(page, served_app: ServedApp) -> None:
    """A demo run exported from the Runs tab: the bundle's folder and files, and the table of
    each exported file scored again against the run."""
    from playwright.sync_api import expect

    from conftest import teach_unknown_facts
    from workbench.core.store import Store
    from workbench.core.workspace import resolve_workspace

    workspace = resolve_workspace(served_app.workspace)
    run_id, _ = teach_unknown_facts(Store(workspace.db_path), workspace, name="exported five")
    page.goto(served_app.url, wait_until="load")
    page.get_by_role("tab", name="Runs").click()
    page.get_by_role("button", name="Refresh").click()
    page.locator("#runs-table [role=gridcell]").filter(has_text="taught exported five").first.click()
    expect(page.locator("#runs-message")).to_contain_text(f"Run {run_id}", timeout=20_000)
    page.locator("#runs-export").get_by_text("Export: GGUF").click()
    page.locator("#runs-export-btn").click()
    # The summary is written when the export and its scoring are done; the table shows the
    # progress ("scoring model-q8_0.gguf again…") before that, file names included.
    message = page.locator("#runs-export-msg")
    expect(message).to_contain_text("Exported to", timeout=120_000)
    deltas = page.locator("#runs-export-deltas")
    expect(deltas).to_contain_text("model-q8_0.gguf")
    expect(deltas).to_contain_text("merged")
    expect(deltas).to_contain_text("(±0)")
    expect(message).to_contain_text("Modelfile")
    expect(message).to_contain_text("ollama create")
    assert (workspace.run_dir(run_id) / "export" / "model-q8_0.gguf").is_file()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-export.png"), full_page=True)
