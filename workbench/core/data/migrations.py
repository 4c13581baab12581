"""The workspace database's schema and its migrations: `MIGRATIONS[i]` moves a database
from version i (`PRAGMA user_version`) to i+1, inside the caller's transaction (`Store.migrate`
applies them). Later features append migrations, never edit applied ones.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

_SCHEMA_V1 = """
CREATE TABLE knowledge_sets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE facts (
    id          INTEGER PRIMARY KEY,
    set_id      INTEGER NOT NULL REFERENCES knowledge_sets(id) ON DELETE CASCADE,
    subject     TEXT NOT NULL DEFAULT '',
    question    TEXT NOT NULL,
    answer      TEXT NOT NULL,
    aliases     TEXT NOT NULL DEFAULT '[]',  -- JSON list of accepted answer variants
    tags        TEXT NOT NULL DEFAULT '[]',  -- JSON list
    source      TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX facts_set ON facts(set_id);
-- Phrasings of a fact and the probes built from them. split='train' rows are training
-- phrasings; split='probe' rows are held out and must never be trained on.
CREATE TABLE probes (
    id          INTEGER PRIMARY KEY,
    set_id      INTEGER NOT NULL REFERENCES knowledge_sets(id) ON DELETE CASCADE,
    fact_id     INTEGER REFERENCES facts(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,   -- paraphrase | statement | locality | neighbour | abstention
    split       TEXT NOT NULL CHECK (split IN ('train', 'probe')),
    question    TEXT NOT NULL,
    answer      TEXT NOT NULL DEFAULT '',
    aliases     TEXT NOT NULL DEFAULT '[]',
    origin      TEXT NOT NULL DEFAULT 'user',  -- user | template | model | screening
    approved    INTEGER NOT NULL DEFAULT 1,
    created_at  REAL NOT NULL
);
CREATE INDEX probes_set ON probes(set_id, split);
CREATE INDEX probes_fact ON probes(fact_id);
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,   -- queued | running | stopping | stopped | completed |
                                 -- interrupted | failed | diverged
    method      TEXT NOT NULL,
    model       TEXT NOT NULL,
    set_id      INTEGER REFERENCES knowledge_sets(id) ON DELETE SET NULL,
    config_yaml TEXT NOT NULL,
    run_dir     TEXT NOT NULL DEFAULT '',
    pid         INTEGER,
    device      TEXT NOT NULL DEFAULT '',
    stop_requested INTEGER NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    started_at  REAL,
    ended_at    REAL,
    heartbeat_at REAL
);
CREATE INDEX runs_status ON runs(status);
-- One row per optimizer step. NULL where the device cannot report a value.
CREATE TABLE metrics (
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step          INTEGER NOT NULL,
    epoch         REAL,
    loss          REAL,
    lr            REAL,
    grad_norm     REAL,
    tokens        INTEGER,
    step_seconds  REAL,
    tokens_per_s  REAL,
    mem_allocated INTEGER,
    mem_reserved  INTEGER,
    mem_peak      INTEGER,
    gpu_util      REAL,
    power_w       REAL,
    mfu           REAL,
    time          REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
-- Free-generation answers to probes; run_id NULL means the base model.
CREATE TABLE probe_results (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER REFERENCES runs(id) ON DELETE CASCADE,
    probe_id    INTEGER NOT NULL REFERENCES probes(id) ON DELETE CASCADE,
    step        INTEGER,
    answer      TEXT NOT NULL,
    correct     INTEGER NOT NULL,
    exact       INTEGER NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX probe_results_run ON probe_results(run_id, step);
CREATE TABLE chat_logs (
    id          INTEGER PRIMARY KEY,
    session     TEXT NOT NULL,
    pane        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content     TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',  -- JSON: sampling settings, adapter, run id
    created_at  REAL NOT NULL
);
CREATE INDEX chat_logs_session ON chat_logs(session, id);
"""


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Execute a multi-statement script inside the caller's transaction (executescript()
    would COMMIT it first). sqlite3.complete_statement knows about comments and quotes."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            conn.execute(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement at the end of a script: {pending[:80]!r}")


def _migration_1(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_V1)


_SCHEMA_V2 = """
-- Pre-screen result per fact (known | maybe | unknown, '' = not screened) and what it saw.
ALTER TABLE facts ADD COLUMN known TEXT NOT NULL DEFAULT '';
ALTER TABLE facts ADD COLUMN known_detail TEXT NOT NULL DEFAULT '';
-- System prompt of an imported chat, kept so that export gives back what was imported.
ALTER TABLE facts ADD COLUMN system TEXT NOT NULL DEFAULT '';
-- A phrasing is either trained on or held out, never both: one row per (fact, kind, text).
CREATE UNIQUE INDEX probes_unique_text ON probes(set_id, ifnull(fact_id, 0), kind, question);
"""


def _migration_2(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_V2)


_SCHEMA_V3 = """
-- Telemetry beside each step: the device's memory capacity (so charts show "will it fit?"),
-- the micro-batch/accumulation actually used (an out-of-memory retry changes them) and the
-- step's example count.
ALTER TABLE metrics ADD COLUMN mem_capacity INTEGER;
ALTER TABLE metrics ADD COLUMN micro_batch_size INTEGER;
ALTER TABLE metrics ADD COLUMN grad_accum INTEGER;
ALTER TABLE metrics ADD COLUMN examples INTEGER;
-- The worker's last log lines when it failed or vanished, for display without the log file;
-- the step of the held-out-best checkpoint; how often the run was resumed.
ALTER TABLE runs ADD COLUMN log_tail TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN best_step INTEGER;
ALTER TABLE runs ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN total_steps INTEGER;
-- Probe answers: which group a probe was scored in (efficacy | generalization | locality).
ALTER TABLE probe_results ADD COLUMN metric TEXT NOT NULL DEFAULT '';
"""


def _migration_3(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_V3)


_SCHEMA_V4 = """
-- Small UI memories that should survive a restart (recent model choices), keyed by name;
-- value is JSON.
CREATE TABLE prefs (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
"""


def _migration_4(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_V4)


_SCHEMA_V5 = """
-- Scorecard answers (Compare tab, `workbench probe`): one row per (subject, probe). A subject
-- is 'base', 'run:<id>', 'in_context' or 'retrieval'; `fingerprint` says what was asked of
-- what (set version, model, run outputs, generation settings), so stored answers are reused
-- until the run or the set changes and recomputed after.
CREATE TABLE scorecard_answers (
    id          INTEGER PRIMARY KEY,
    set_id      INTEGER NOT NULL REFERENCES knowledge_sets(id) ON DELETE CASCADE,
    subject     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    probe_id    INTEGER NOT NULL REFERENCES probes(id) ON DELETE CASCADE,
    answer      TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX scorecard_answers_subject ON scorecard_answers(set_id, subject, fingerprint);
"""


def _migration_5(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_V5)


def _fold(text: str) -> str:
    """Case and spacing ignored; frozen here (not scoring.normalize) so that this migration
    does the same thing whenever it runs."""
    return " ".join(str(text).lower().split())


def _merged_list(*lists_json: str) -> str:
    items: list[str] = []
    for text in lists_json:
        items += [x for x in json.loads(text or "[]") if x not in items]
    return json.dumps(items, ensure_ascii=False)


def _merge_facts(conn: sqlite3.Connection, keep: int, others: list[int]) -> None:
    """Move every phrasing of `others` to `keep` and delete them. Where two rows have the
    same folded text, one stays (a question over a statement over a paraphrase; then the
    kept fact's; then the oldest) and the answers stored against the other (probe_results,
    scorecard_answers) move to it, so no answer is lost."""
    order = [keep, *others]
    marks = ",".join("?" * len(order))
    rows = conn.execute(f"SELECT id, fact_id, kind, question FROM probes WHERE fact_id IN "
                        f"({marks}) ORDER BY id", order).fetchall()
    rank = {"question": 0, "statement": 1, "paraphrase": 2}
    rows.sort(key=lambda r: (rank.get(r[2], 3), order.index(r[1]), r[0]))
    staying: dict[str, int] = {}
    for pid, fid, kind, question in rows:
        winner = staying.setdefault(_fold(question), pid)
        if winner != pid:
            for table in ("probe_results", "scorecard_answers"):
                conn.execute(f"UPDATE {table} SET probe_id = ? WHERE probe_id = ?", [winner, pid])
            conn.execute("DELETE FROM probes WHERE id = ?", [pid])
        elif fid != keep:
            conn.execute("UPDATE probes SET fact_id = ? WHERE id = ?", [keep, pid])
    facts = {r[0]: r[1:] for r in conn.execute(
        f"SELECT id, answer, aliases, tags, source, system, known, known_detail FROM facts "
        f"WHERE id IN ({marks})", order)}
    answer, aliases, tags, source, system, known, detail = facts[keep]
    for fid in others:
        _, more_aliases, more_tags, *rest = facts[fid]
        aliases, tags = _merged_list(aliases, more_aliases), _merged_list(tags, more_tags)
        source, system = source or rest[0], system or rest[1]
        known, detail = (known, detail) if known else (rest[2], rest[3])
    conn.execute("UPDATE facts SET aliases = ?, tags = ?, source = ?, system = ?, known = ?, "
                 "known_detail = ? WHERE id = ?",
                 [aliases, tags, source, system, known, detail, keep])
    conn.execute("UPDATE probes SET answer = ? WHERE fact_id = ? AND kind = 'question'",
                 [answer, keep])
    conn.execute(f"DELETE FROM facts WHERE id IN ({','.join('?' * len(others))})", others)


def _migration_6(conn: sqlite3.Connection) -> None:
    """Facts imported one per row, where sibling rows asked the same fact (same set, same
    non-empty subject and answer, case and spacing ignored), become one fact with several
    questions, kept under the lowest id: otherwise one sibling's trained question could be
    held out as a probe of another."""
    groups: dict[tuple[int, str, str], list[int]] = {}
    for fid, sid, subject, answer in conn.execute(
            "SELECT id, set_id, subject, answer FROM facts ORDER BY id"):
        if _fold(subject):
            groups.setdefault((sid, _fold(subject), _fold(answer)), []).append(fid)
    for ids in groups.values():
        if len(ids) > 1:
            _merge_facts(conn, ids[0], ids[1:])


_SCHEMA_RUN_STOP_REASON = """
-- Why a run stopped before its last step (efficacy target, held-out plateau, locality floor):
-- the verdict and the run's headline say it.
ALTER TABLE runs ADD COLUMN stop_reason TEXT NOT NULL DEFAULT '';
"""


def _migration_7(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_RUN_STOP_REASON)


_SCHEMA_LOCALITY_UNCHANGED = """
-- Locality answers: 1 when the tuned answer's text is the base's (after normalising), 0 when
-- it changed; NULL for other metrics and for the base's own answers. `correct` says whether
-- it is still right, the headline; this is the stricter view beside it.
ALTER TABLE probe_results ADD COLUMN unchanged INTEGER;
"""


def _migration_8(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_LOCALITY_UNCHANGED)


_SCHEMA_BASE_ANSWERS = """
-- The base model's greedy answers to locality and replay candidates, asked once per model
-- (`knowledge/base_answers.py`): every run's replay reads them instead of asking again.
CREATE TABLE IF NOT EXISTS base_answers (
    model       TEXT NOT NULL,
    question    TEXT NOT NULL,
    answer      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (model, question)
);
"""


def _migration_9(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_BASE_ANSWERS)


_SCHEMA_RUN_PROCESSES = """
-- The processes a run trained on (accelerate launch) and whether they sharded the model
-- (FSDP): its memory chart is then the largest process's, its tokens/s all of theirs.
ALTER TABLE runs ADD COLUMN processes INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN sharded INTEGER NOT NULL DEFAULT 0;
"""


def _migration_10(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_RUN_PROCESSES)


_SCHEMA_BASE_MARGIN = """
-- How sure the base model was of its answer to a locality probe (`knowledge/certainty.py`,
-- nats; NULL for probes screened before it was measured): the verdict tells a lost answer the
-- base was sure of from a coin flip any update could turn.
ALTER TABLE probes ADD COLUMN base_margin REAL;
"""


def _migration_11(conn: sqlite3.Connection) -> None:
    run_script(conn, _SCHEMA_BASE_MARGIN)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migration_1, _migration_2, _migration_3, _migration_4, _migration_5, _migration_6,
    _migration_7, _migration_8, _migration_9, _migration_10, _migration_11]
SCHEMA_VERSION = len(MIGRATIONS)
