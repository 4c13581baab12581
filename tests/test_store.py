from __future__ import annotations

import sqlite3
import threading

import pytest

from workbench.core.errors import StoreError
from workbench.core.store import SCHEMA_VERSION, TABLES, Store, now
from workbench.core.workspace import resolve_workspace


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(resolve_workspace(tmp_path / "ws").db_path)


def test_new_store_has_the_schema_wal_and_a_busy_timeout(store: Store) -> None:
    db = store.db
    assert store.schema_version == SCHEMA_VERSION
    assert set(TABLES) <= set(db.table_names())
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.integrity_ok()
    assert store.counts() == {t: 0 for t in TABLES}


def test_migrate_is_idempotent_and_reopening_keeps_data(store: Store) -> None:
    with store.write() as db:
        db["knowledge_sets"].insert({"name": "capitals", "created_at": now(), "updated_at": now()})
    assert store.migrate() == SCHEMA_VERSION
    again = Store(store.path)
    assert again.counts()["knowledge_sets"] == 1


def test_a_database_from_a_newer_version_is_refused(store: Store) -> None:
    store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store.close()
    with pytest.raises(StoreError, match="newer than this Knowledge Workbench understands"):
        Store(store.path)


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "workbench.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the workspace database"):
        Store(bad)


def test_write_rolls_back_everything_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.write() as db:
            db["knowledge_sets"].insert({"name": "a", "created_at": now(), "updated_at": now()})
            with store.write():  # nested use joins the outer transaction
                db["knowledge_sets"].insert({"name": "b", "created_at": now(), "updated_at": now()})
            raise RuntimeError("boom")
    assert store.counts()["knowledge_sets"] == 0
    assert not store.db.conn.in_transaction


def test_deleting_a_set_cascades_to_its_facts(store: Store) -> None:
    with store.write() as db:
        set_id = db["knowledge_sets"].insert(
            {"name": "s", "created_at": now(), "updated_at": now()}).last_pk
        db["facts"].insert({"set_id": set_id, "question": "q", "answer": "a",
                            "created_at": now(), "updated_at": now()})
    with store.write() as db:
        db.execute("DELETE FROM knowledge_sets WHERE id = ?", [set_id])
    assert store.counts()["facts"] == 0


def test_concurrent_read_then_write_transactions_lose_no_update(store: Store) -> None:
    """Regression test for BEGIN IMMEDIATE: each thread (own connection) reads a counter and
    writes it back incremented. With deferred transactions two writers read the same value
    (lost update) or the upgrade to a write lock fails with 'database is locked'."""
    with store.write() as db:
        db["runs"].insert({"id": 1, "name": "counter", "status": "running", "method": "lora",
                           "model": "m", "config_yaml": "", "created_at": now(), "pid": 0})
    threads, per_thread, errors = 4, 25, []

    def bump() -> None:
        try:
            for _ in range(per_thread):
                with store.write() as db:
                    value = db.execute("SELECT pid FROM runs WHERE id = 1").fetchone()[0]
                    db.execute("UPDATE runs SET pid = ? WHERE id = 1", [value + 1])
        except sqlite3.Error as err:  # "database is locked" would land here
            errors.append(err)
        finally:
            store.close()

    workers = [threading.Thread(target=bump) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert store.db.execute("SELECT pid FROM runs WHERE id = 1").fetchone()[0] == threads * per_thread


def test_workspace_resolution_order(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "from-env"))
    assert resolve_workspace().root == (tmp_path / "from-env").resolve()
    assert resolve_workspace(tmp_path / "flag").root == (tmp_path / "flag").resolve()
    assert (tmp_path / "flag" / "runs").is_dir()
    monkeypatch.delenv("WORKBENCH_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_workspace().root == (tmp_path / "home" / "knowledge-workbench").resolve()


def test_a_file_in_place_of_the_workspace_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "ws").write_text("oops")
    from workbench.core.errors import WorkbenchError

    with pytest.raises(WorkbenchError, match="exists but is a file"):
        resolve_workspace(tmp_path / "ws")
