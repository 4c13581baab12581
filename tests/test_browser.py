"""A real headless Chromium opens the app: four tabs, the device header, a screenshot."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import ARTIFACTS, ServedApp

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network: no background fetches, no sandbox (CI runs as root).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def page():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        yield page
        browser.close()


def test_page_shows_four_tabs_and_the_device_header(page, served_app: ServedApp) -> None:
    from playwright.sync_api import expect

    page.goto(served_app.url, wait_until="networkidle")
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_count(4, timeout=30_000)
    assert [t.strip() for t in tabs.all_inner_texts()] == ["Knowledge", "Method", "Train", "Compare"]
    header = page.locator(".wb-header")
    expect(header).to_contain_text("Knowledge Workbench")
    expect(header.locator(".wb-device")).to_contain_text("CPU" if "CPU" in header.inner_text() else "GPU")
    expect(header).to_contain_text(str(served_app.workspace.resolve()))
    # A tab that is not built yet says so instead of showing dead controls.
    page.get_by_role("tab", name="Train").click()
    panel = page.get_by_role("tabpanel")
    expect(panel).to_contain_text("Not built yet.")
    expect(panel).to_contain_text("Run training in a background process")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "app.png"
    page.get_by_role("tab", name="Knowledge").click()
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_fresh_launch_opens_on_the_demo_set_and_the_demo_model(page, served_app: ServedApp) -> None:
    """No hub, no GPU: a fresh workspace holds the demo set, and the demo model answers."""
    from playwright.sync_api import expect

    page.goto(served_app.url, wait_until="networkidle")
    page.get_by_role("tab", name="Knowledge").click()
    expect(page.locator("#kn-set input")).to_have_value("Demo: new people", timeout=20_000)
    expect(page.locator("#kn-counts")).to_contain_text("Facts 100")
    expect(page.locator("#kn-facts")).to_contain_text("Where was")
    expect(page.locator("#kn-model textarea")).to_have_value("workbench-demo")
    # Screening asks the demo model every fact: it has never seen these people.
    page.get_by_text("What does the base model already know?").click()
    page.locator("#kn-samples input[type=number]").fill("0")
    page.locator("#kn-screen").click()
    expect(page.locator("#kn-status")).to_contain_text("unknown", timeout=120_000)
    status = page.locator("#kn-status").inner_text()
    unknown = int(status.split("unknown")[1].split(".")[0])
    assert unknown >= 80, status
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)


def test_knowledge_tab_add_a_fact_and_upload_a_csv(page, served_app: ServedApp, tmp_path) -> None:
    from playwright.sync_api import expect

    page.goto(served_app.url, wait_until="networkidle")
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
