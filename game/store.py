"""The deployment's game database: one DuckDB file in the workspace, changed only by an atomic rename.

DuckDB 1.5.5 does not always keep its file whole when a writer is killed: a writer killed at a random
point left a file DuckDB could not read, once in CI and twice in ad-hoc loops of the durability test's kill
on this machine (docs/performance.md; `bench/store_kills.py` has not reproduced it). So no process ever
writes the deployment's file in place. A transaction copies
the file to a draft beside it, runs on the draft, closes it (DuckDB checkpoints the draft), syncs it to
disk and renames it over the real file. A process killed at any point leaves the last renamed file
whole; its draft is removed by the next transaction. A transaction that changed nothing leaves the file
as it was.

One transaction at a time: a lock file (`game.duckdb.lock`) serialises processes, and a lock serialises the
threads of one process. A process that waits longer than `LOCK_WAIT_S` seconds gets `DatabaseBusy`.

Timestamps are server time in UTC, stored without a zone. The schema is versioned: `MIGRATIONS[n]`
brings a database from version n to n + 1, in one transaction; `transaction()` applies any missing ones
first. A database written by a newer Pinhole is refused.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import filelock

from pinhole.workspace import workspace

DB_FILE = "game.duckdb"
LOCK_WAIT_S = 30.0
_process_lock = threading.Lock()
_held = threading.local()

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
    """Another process held the game database for longer than `LOCK_WAIT_S`."""


class DatabaseCorrupt(RuntimeError):
    """The game database file cannot be read (written by something other than `transaction()`)."""


def database_path(root: Path | None = None) -> Path:
    """The deployment's game database (in the workspace unless `root` is given)."""
    return (root or workspace()) / DB_FILE


def _draft_glob(path: Path) -> str:
    return f".{path.name}.*.draft*"


@contextlib.contextmanager
def _exclusive(path: Path, wait_s: float) -> Iterator[None]:
    """Hold the database for this thread and process; say who waited how long if it cannot be had."""
    if getattr(_held, "path", None) is not None:
        raise RuntimeError(f"{path}: a game-database transaction opened inside another one (they would not see "
                           "each other's changes); finish the outer one first")
    with _process_lock:
        try:
            with filelock.FileLock(f"{path}.lock", timeout=wait_s, thread_local=False):
                _held.path = path
                try:
                    yield
                finally:
                    _held.path = None
        except filelock.Timeout:
            raise DatabaseBusy(f"{path}: another process has held the game database for over {wait_s:.0f} s "
                               f"(lock file {path}.lock)") from None


def _open_draft(path: Path) -> tuple[Path, duckdb.DuckDBPyConnection]:
    for stale in path.parent.glob(_draft_glob(path)):  # left by a killed process; we hold the lock
        stale.unlink(missing_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.draft")
    if path.exists():
        shutil.copyfile(path, draft)
    try:
        return draft, duckdb.connect(str(draft))
    except duckdb.Error as err:
        draft.unlink(missing_ok=True)
        if "corrupt" in str(err).lower() or "not a valid duckdb" in str(err).lower():
            raise DatabaseCorrupt(f"{path}: the game database cannot be read ({err}); restore it from a "
                                  "backup, or move it aside to start an empty one") from None
        raise


def _wal(draft: Path) -> Path:
    return Path(f"{draft}.wal")


def _written(draft: Path, before: os.stat_result | None) -> bool:
    """Whether DuckDB wrote the closed draft (a transaction that only read leaves it untouched)."""
    after = draft.stat()
    return before is None or (after.st_mtime_ns, after.st_size) != (before.st_mtime_ns, before.st_size)


def _publish(draft: Path, path: Path) -> None:
    """Make a closed draft the database: synced, then renamed over it."""
    if _wal(draft).exists():
        raise RuntimeError(f"{path}: DuckDB left a write-ahead log on closing the draft, so the draft may lack "
                           "committed rows; the database was left as it was")
    with open(draft, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(draft, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.contextmanager
def transaction(path: Path | None = None, wait_s: float = LOCK_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction on the database (migrated to the current schema); all or nothing.

    The block's changes reach the file when the block returns: after that, a killed process loses none of
    them. A block that raises changes nothing.
    """
    path = path or database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path, wait_s):
        draft, connection = _open_draft(path)
        before = draft.stat() if path.exists() else None
        try:
            with contextlib.closing(connection), migrated_transaction(connection, path):
                yield connection
            if _written(draft, before):
                _publish(draft, path)
        finally:
            draft.unlink(missing_ok=True)
            _wal(draft).unlink(missing_ok=True)


@contextlib.contextmanager
def migrated_transaction(connection: duckdb.DuckDBPyConnection, path: Path) -> Iterator[None]:
    """On an open connection: bring the schema up to date, then run the block in one transaction."""
    _migrate(connection, path)
    connection.execute("BEGIN TRANSACTION")
    yield
    connection.execute("COMMIT")


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
