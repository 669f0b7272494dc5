"""The deployment's game database: one DuckDB file in the workspace, opened for one short transaction at a time.

DuckDB lets one process at a time open a file for writing. The game master's CLI and the UI server both
write (a new team, a submission), so neither keeps the file open: every operation opens it, runs one
transaction, and closes it. A process that finds the file locked by another retries with back-off for up to
`LOCK_WAIT_S` seconds, then says who holds it. Inside a process, a lock serialises transactions (DuckDB's
own per-process instance would otherwise raise write conflicts between threads).

Timestamps are server time in UTC, stored without a zone. The schema is versioned: `MIGRATIONS[n]`
brings a database from version n to n + 1, in one transaction; `transaction()` applies any missing ones
first. A database written by a newer Pinhole is refused.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from pinhole.workspace import workspace

DB_FILE = "game.duckdb"
LOCK_WAIT_S = 30.0
_process_lock = threading.RLock()

MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
    CREATE TABLE games (
        game_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, state VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL, started_at TIMESTAMP, deadline TIMESTAMP,
        closed_at TIMESTAMP, revealed_at TIMESTAMP);
    CREATE TABLE game_organisms (
        game_id VARCHAR NOT NULL, label VARCHAR NOT NULL, organism_dir VARCHAR NOT NULL,
        organism_id VARCHAR NOT NULL, commitment VARCHAR NOT NULL, membership_blind BOOLEAN NOT NULL,
        warnings VARCHAR NOT NULL, commitment_verified BOOLEAN, PRIMARY KEY (game_id, label));
    CREATE TABLE teams (
        team_id VARCHAR PRIMARY KEY, game_id VARCHAR NOT NULL, name VARCHAR NOT NULL,
        token_sha256 VARCHAR NOT NULL UNIQUE, created_at TIMESTAMP NOT NULL, revoked_at TIMESTAMP,
        UNIQUE (game_id, name));
    CREATE TABLE access (
        team_id VARCHAR NOT NULL, label VARCHAR NOT NULL, tier VARCHAR NOT NULL, PRIMARY KEY (team_id, label));
    CREATE TABLE submissions (
        submission_id VARCHAR PRIMARY KEY, team_id VARCHAR NOT NULL, label VARCHAR NOT NULL,
        version INTEGER NOT NULL, report VARCHAR NOT NULL, submitted_at TIMESTAMP NOT NULL,
        UNIQUE (team_id, label, version));
    CREATE TABLE tool_calls (
        call_id VARCHAR PRIMARY KEY, team_id VARCHAR NOT NULL, label VARCHAR NOT NULL, tool VARCHAR NOT NULL,
        arguments VARCHAR NOT NULL, called_at TIMESTAMP NOT NULL, duration_s DOUBLE NOT NULL,
        outcome VARCHAR NOT NULL, detail VARCHAR NOT NULL);
    CREATE TABLE judgements (
        judgement_id VARCHAR PRIMARY KEY, submission_id VARCHAR NOT NULL, matcher VARCHAR NOT NULL,
        status VARCHAR NOT NULL, score DOUBLE, result VARCHAR NOT NULL, judged_at TIMESTAMP NOT NULL);
    """,
    """
    CREATE TABLE overrides (
        override_id VARCHAR PRIMARY KEY, submission_id VARCHAR NOT NULL, score DOUBLE NOT NULL,
        reason VARCHAR NOT NULL, made_by VARCHAR NOT NULL, made_at TIMESTAMP NOT NULL);
    CREATE TABLE notes (
        note_id VARCHAR PRIMARY KEY, team_id VARCHAR NOT NULL, label VARCHAR NOT NULL, text VARCHAR NOT NULL,
        written_at TIMESTAMP NOT NULL);
    """,
    """
    ALTER TABLE teams ADD COLUMN max_tool_calls INTEGER;
    """,
    """
    ALTER TABLE teams ADD COLUMN max_generated_tokens BIGINT;
    ALTER TABLE tool_calls ADD COLUMN generated_tokens BIGINT DEFAULT 0;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class DatabaseBusy(RuntimeError):
    """Another process kept the game database locked for longer than `LOCK_WAIT_S`."""


def database_path(root: Path | None = None) -> Path:
    """The deployment's game database (in the workspace unless `root` is given)."""
    return (root or workspace()) / DB_FILE


def _connect(path: Path, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as err:
            if "lock" not in str(err).lower() or time.monotonic() > deadline:
                if "lock" in str(err).lower():
                    raise DatabaseBusy(f"{path}: another process has held the game database for over {wait_s:.0f} s "
                                       f"({err})") from None
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)


@contextlib.contextmanager
def transaction(path: Path | None = None, wait_s: float = LOCK_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database, run the block in one transaction (migrated to the current schema), close it."""
    path = path or database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _process_lock:
        connection = _connect(path, wait_s)
        try:
            _migrate(connection, path)
            connection.execute("BEGIN TRANSACTION")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()


def schema_version(connection: duckdb.DuckDBPyConnection) -> int:
    """The schema version of an open database (0 for an empty one)."""
    tables = {row[0] for row in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "meta" not in tables:
        return 0
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _migrate(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    version = schema_version(connection)
    if version > SCHEMA_VERSION:
        raise ValueError(f"{path}: game database schema {version} was written by a newer Pinhole "
                         f"(this one knows up to {SCHEMA_VERSION})")
    for index in range(version, SCHEMA_VERSION):
        connection.execute("BEGIN TRANSACTION")
        connection.execute(MIGRATIONS[index])
        connection.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(index + 1)])
        connection.execute("COMMIT")
