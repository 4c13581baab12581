"""The served app answers through gradio_client and keeps the workspace off its file routes."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
from gradio_client import Client

from conftest import ServedApp


@pytest.fixture(scope="module")
def client(served_app: ServedApp) -> Client:
    return Client(served_app.url, verbose=False)


def test_status_endpoint_reports_device_workspace_and_schema(client: Client, served_app) -> None:
    status = client.predict(api_name="/status")
    assert status["workspace"] == str(served_app.workspace.resolve())
    assert status["device"]["kind"] in ("cpu", "cuda", "mps")
    assert status["device"]["total_memory"] > 0
    assert status["schema_version"] >= 1
    assert set(status["counts"]) >= {"knowledge_sets", "facts", "runs", "metrics"}
    assert (served_app.workspace / "workbench.db").is_file()


def test_header_names_the_device_and_the_workspace(client: Client, served_app) -> None:
    header = client.predict(api_name="/header")
    assert "Knowledge Workbench" in header
    assert ("CPU:" in header) or ("GPU:" in header) or ("MPS" in header)
    assert str(served_app.workspace.resolve()) in header


def _status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_workspace_database_is_not_served_as_a_file(served_app: ServedApp) -> None:
    db = str(served_app.workspace.resolve() / "workbench.db")
    for path in (db, urllib.parse.quote(db)):
        assert _status_of(f"{served_app.url}gradio_api/file={path}") in (403, 404)


def test_every_table_layout_fits_its_frame() -> None:
    """Each fixed table layout gives every column a share and the shares add up to 100%."""
    from workbench.ui import export_actions, knowledge_actions, runs_tab

    layouts = [(knowledge_actions.FACT_COLUMNS, knowledge_actions.FACT_WIDTHS),
               (knowledge_actions.PHRASING_COLUMNS, knowledge_actions.PHRASING_WIDTHS),
               (runs_tab.COLUMNS, runs_tab.WIDTHS),
               (export_actions.DELTA_COLUMNS, export_actions.DELTA_WIDTHS)]
    for columns, widths in layouts:
        assert len(columns) == len(widths), columns
        assert sum(float(w.rstrip("%")) for w in widths) == 100, columns
