"""The workspace database: one SQLite file, opened through sqlite-utils.

Concurrency model (the UI process, its polling threads and one training worker per run all
share the file):
- WAL journal, so readers never block the writer and the writer never blocks readers;
- a busy timeout, so a writer waits for another writer instead of failing at once;
- every read-then-write goes through `Store.write()`, which opens `BEGIN IMMEDIATE`: the write
  lock is taken *before* the read, so two writers can never both read the old value and the
  second one never hits the un-retryable SQLITE_BUSY of a deferred transaction upgrading to a
  write;
- one connection per thread (sqlite3 connections must not be shared across threads mid
  transaction; Gradio runs callbacks on a thread pool).

The schema is versioned with `PRAGMA user_version`; `MIGRATIONS[i]` moves version i to i+1
(`data/migrations.py`, re-exported here). Later features append migrations, never edit
applied ones.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from workbench.core.data.migrations import MIGRATIONS, SCHEMA_VERSION
from workbench.core.errors import StoreError

BUSY_TIMEOUT_S = 30.0

TABLES = (
    "knowledge_sets",
    "facts",
    "probes",
    "runs",
    "metrics",
    "probe_results",
    "chat_logs",
    "prefs",
    "scorecard_answers",
)



class Store:
    """The workspace database. Cheap to construct; connections open lazily per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.migrate()

    # ---- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite_utils.Database:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit BEGINs from the sqlite3 module; we open
            # transactions ourselves (write()) and sqlite-utils nests savepoints inside them.
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash or
            # power cut can lose the last commits. FULL would fsync every metrics row.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"cannot open the workspace database {self.path}: {err}",
                hint="check the folder is writable, or pass another --workspace",
            ) from err
        return sqlite_utils.Database(conn)

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ---- transactions ------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A read-then-write transaction holding the write lock from its first statement.

        Nested use joins the outer transaction (sqlite-utils uses savepoints inside)."""
        conn = self.db.conn
        if conn.in_transaction:
            yield self.db
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    # ---- schema ------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Bring the schema to `SCHEMA_VERSION`; safe to race from several processes."""
        with self.write() as db:  # the lock is held while the version is read
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the workspace database {self.path} has schema version {current}, newer "
                    f"than this Knowledge Workbench understands ({SCHEMA_VERSION})",
                    hint="upgrade knowledge-workbench, or use another --workspace",
                )
            for version in range(current, SCHEMA_VERSION):
                MIGRATIONS[version](db.conn)
                db.execute(f"PRAGMA user_version = {version + 1}")
        return SCHEMA_VERSION

    # ---- small helpers used across features --------------------------------------------
    def counts(self) -> dict[str, int]:
        """Row count of every table, for the UI header and health checks."""
        return {t: int(self.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def now() -> float:
    """Timestamps in the store are Unix seconds (REAL)."""
    return time.time()
