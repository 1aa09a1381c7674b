"""The sync state's SQLite file: recognised as ours, created (0600), upgraded, and opened.

A state is an SQLite file with PRAGMA application_id "OSYN" and a schema version (PRAGMA
user_version); any other SQLite file, or one a newer release wrote, is refused with one line.
The queries on it are `state.py`'s.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

from orchestrator.errors import ConfigError
from orchestrator.fsutil import PRIVATE_FILE_MODE

#: The schema this code reads and writes (PRAGMA user_version). Version 1 (no `raw` columns) is
#: upgraded in place when a sync opens it.
SCHEMA_VERSION: Final = 2
#: PRAGMA application_id of a sync state ("OSYN"): tells our files from any other SQLite file.
APPLICATION_ID: Final = 0x4F53594E

# users.slot numbers each user once for good (meta next_slot): a night's diff marks the slots it saw
# in a bitmap in memory, so finding missing users needs no write to the 10-million-row table.
_SCHEMA: Final = """
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE nights (
    id INTEGER PRIMARY KEY,
    run_dir TEXT NOT NULL,
    run_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('diffing', 'uploading', 'done', 'abandoned')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    counts TEXT
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    night INTEGER NOT NULL REFERENCES nights (id),
    chunk INTEGER NOT NULL,
    job_id TEXT,
    external_id TEXT NOT NULL,
    completed_at TEXT
);
CREATE TABLE users (
    key TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    slot INTEGER NOT NULL,
    job INTEGER NOT NULL REFERENCES jobs (id),
    raw BLOB
) WITHOUT ROWID;
CREATE TABLE pending (
    position INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    slot INTEGER NOT NULL,
    raw BLOB
);
"""
# `users.raw` is the fingerprint of the user's text as the export had it (see diff.raw_fingerprint):
# when tonight's text has the same one, the user is unchanged without being judged again. NULL for
# users synced by a version 1 state, until a night sees them.
_UPGRADE_FROM_1: Final = (
    "ALTER TABLE users ADD COLUMN raw BLOB",
    "ALTER TABLE pending ADD COLUMN raw BLOB",
    "PRAGMA user_version = 2",
)


def connect(path: Path) -> sqlite3.Connection:
    """The state at `path`, created empty (0600) if there is no file, upgraded if older.

    Raises:
        ConfigError: the file is not a sync state, was written by a newer release, or cannot be
            created or written.
    """
    if not path.exists():
        if not path.parent.is_dir():
            raise ConfigError(f"--state {path}: directory {path.parent} does not exist")
        # Created 0600 before SQLite touches it: it holds every user's email or id.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        except OSError as exc:
            raise ConfigError(f"--state {path} cannot be created: {exc.strerror or exc}") from None
    try:
        db = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(f"--state {path} cannot be opened: {exc}") from exc
    try:
        _configure(db, path)
    except sqlite3.OperationalError as exc:
        db.close()
        raise ConfigError(
            f"--state {path} cannot be written ({exc}): a sync records its progress there; "
            "put the state on a writable file system"
        ) from None
    except BaseException:
        db.close()
        raise
    return db


def connect_read_only(path: Path) -> sqlite3.Connection:
    """The state at `path`, to read only: nothing is written or created.

    Without a write-ahead log beside the file (no sync running, none interrupted) the file is read
    as immutable, which creates no side files; with one, SQLite reads through it.

    Raises:
        ConfigError: the file is not a sync state, or was written by a newer release.
    """
    wal = path.with_name(path.name + "-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)
    except sqlite3.Error as exc:
        raise ConfigError(f"--state {path} cannot be opened: {exc}") from exc
    try:
        _check_ours(db, path)
    except BaseException:
        db.close()
        raise
    return db


def connect_in_memory() -> sqlite3.Connection:
    """An empty state that is never saved."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    _create_schema(db)
    return db


def _configure(db: sqlite3.Connection, path: Path) -> None:
    """Check the file is a state of ours (creating the schema in an empty one, upgrading an older
    one) and set it up."""
    if _check_ours(db, path):
        _pragmas(db)
        _create_schema(db)
        return
    _pragmas(db)
    if db.execute("PRAGMA user_version").fetchone()[0] == 1:
        db.execute("BEGIN IMMEDIATE")
        for statement in _UPGRADE_FROM_1:
            db.execute(statement)
        db.execute("COMMIT")


def _check_ours(db: sqlite3.Connection, path: Path) -> bool:
    """Check the file is a state of ours; True when it is an empty file (no schema yet)."""
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"--state {path} is not a sync state file ({exc}); point --state at the file an "
            "earlier sync created, or at a new path"
        ) from exc
    if application_id == 0 and tables == 0:
        return True
    if application_id != APPLICATION_ID:
        raise ConfigError(
            f"--state {path} is an SQLite file of another program, not a sync state; "
            "point --state at the file an earlier sync created, or at a new path"
        )
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"--state {path} has schema version {version}, newer than this orchestrator's "
            f"({SCHEMA_VERSION}); use the release that wrote it"
        )
    if version < 1:
        raise ConfigError(f"--state {path} is damaged (schema version {version})")
    return False


def _pragmas(db: sqlite3.Connection) -> None:
    # WAL: readers (an operator's sqlite3 shell) never block the sync. synchronous=FULL: a commit
    # survives power loss, so a night marked `uploading` really was recorded before its first POST.
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache: the B-tree's upper levels
    db.execute("PRAGMA busy_timeout = 5000")


def _create_schema(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.execute("INSERT INTO meta (name, value) VALUES ('next_slot', '0')")
    db.execute("COMMIT")
