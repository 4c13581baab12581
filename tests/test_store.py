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


def _schema_5_with_sibling_rows(path) -> dict[str, int]:
    """A database as schema version 5 left it: one fact per row of a two-phrasings file,
    with a probe of one sibling that is the other's trained question (the leak), answers
    stored against probes, and a fact without a subject that must stay on its own."""
    from workbench.core.store import MIGRATIONS

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for migration in MIGRATIONS[:5]:
        migration(conn)
    conn.execute("PRAGMA user_version = 5")
    t = now()
    conn.execute("INSERT INTO knowledge_sets (id, name, created_at, updated_at) VALUES (1, 's', ?, ?)", [t, t])
    conn.execute("INSERT INTO runs (id, name, status, method, model, config_yaml, created_at) "
                 "VALUES (1, 'r', 'completed', 'lora', 'm', '', ?)", [t])
    facts = [(1, "Veltria", "What is the capital of Veltria?", "Orsk", '["Orsk City"]', '["geo"]'),
             (2, "veltria ", "Which city is the capital of Veltria?", " ORSK", '["Orskgrad"]', '[]'),
             (3, "", "Which city is the capital of Veltria, again?", "Orsk", "[]", "[]"),
             (4, "Brimwell Labs", "Who founded Brimwell Labs?", "Ada Quill", "[]", "[]")]
    for fid, subject, question, answer, aliases, tags in facts:
        conn.execute("INSERT INTO facts (id, set_id, subject, question, answer, aliases, tags, "
                     "created_at, updated_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)",
                     [fid, subject, question, answer, aliases, tags, t, t])
    phrasings = [  # id, fact, kind, split, text
        (1, 1, "question", "train", "What is the capital of Veltria?"),
        (2, 2, "question", "train", "Which city is the capital of Veltria?"),
        (3, 3, "question", "train", "Which city is the capital of Veltria, again?"),
        (4, 4, "question", "train", "Who founded Brimwell Labs?"),
        (5, 1, "paraphrase", "probe", "which city is the capital of Veltria?"),  # = fact 2's
        (6, 1, "paraphrase", "train", "Do you know what the capital of Veltria is?"),
        (7, 2, "paraphrase", "probe", "Do you know what the capital of  Veltria is?"),  # = 6
        (8, 2, "paraphrase", "probe", "Can you name the city that is the capital of Veltria?"),
        (9, 2, "statement", "train", "Orsk is the capital of Veltria."),
    ]
    for pid, fid, kind, split, text in phrasings:
        conn.execute("INSERT INTO probes (id, set_id, fact_id, kind, split, question, answer, "
                     "origin, created_at) VALUES (?, 1, ?, ?, ?, ?, 'Orsk', 'user', ?)",
                     [pid, fid, kind, split, text, t])
    for pid in (2, 5, 7, 8):
        conn.execute("INSERT INTO probe_results (run_id, probe_id, step, answer, correct, exact, "
                     "created_at) VALUES (1, ?, 10, 'Orsk', 1, 1, ?)", [pid, t])
        conn.execute("INSERT INTO scorecard_answers (set_id, subject, fingerprint, probe_id, "
                     "answer, created_at) VALUES (1, 'base', 'fp', ?, 'Orsk', ?)", [pid, t])
    conn.close()
    return {"phrasings": len(phrasings), "answers": 4}


def test_migration_6_merges_sibling_facts_without_losing_anything(tmp_path) -> None:
    from workbench.core.knowledge import sets

    path = tmp_path / "old.db"
    before = _schema_5_with_sibling_rows(path)
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION and store.integrity_ok()
    facts = {f.id: f for f in sets.list_facts(store, 1)}
    assert sorted(facts) == [1, 3, 4]  # fact 2 joined fact 1; no subject, no merge
    assert facts[1].questions == ["What is the capital of Veltria?",
                                  "Which city is the capital of Veltria?"]
    assert (facts[1].aliases, facts[1].tags) == (["Orsk City", "Orskgrad"], ["geo"])
    texts = {" ".join(r[0].lower().split()): r[1:] for r in store.db.execute(
        "SELECT question, fact_id, kind, split FROM probes")}
    # Every text survives once; the sibling's question wins over the probe that leaked it.
    assert len(texts) == before["phrasings"] - 2
    assert texts["which city is the capital of veltria?"] == (1, "question", "train")
    assert texts["orsk is the capital of veltria."] == (1, "statement", "train")
    assert store.db.execute("SELECT count(*) FROM probes WHERE fact_id = 2").fetchone()[0] == 0
    for table in ("probe_results", "scorecard_answers"):
        n, orphans = store.db.execute(
            f"SELECT count(*), sum(probe_id NOT IN (SELECT id FROM probes)) FROM {table}").fetchone()
        assert (n, orphans) == (before["answers"], 0)
    assert store.db.execute("SELECT answer FROM probes WHERE id = 2").fetchone()[0] == "Orsk"
