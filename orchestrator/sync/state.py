"""The sync state: one SQLite file holding every synced user's fingerprint and the nights that sent it.

Owns the schema (versioned with PRAGMA user_version, recognised by PRAGMA application_id), every
transaction, and the queries the diff and the promotion need. It never reads exports, chunk files or
the network: `diff.py` and `promote.py` hand it plain rows.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, NamedTuple, Self

import orjson

from orchestrator.errors import ConfigError
from orchestrator.fsutil import PRIVATE_FILE_MODE, utc_now_iso

#: The schema this code reads and writes (PRAGMA user_version). Version 1 (no `raw` columns) is
#: upgraded in place when a sync opens it.
SCHEMA_VERSION: Final = 2
#: PRAGMA application_id of a sync state ("OSYN"): tells our files from any other SQLite file.
APPLICATION_ID: Final = 0x4F53594E
#: Keys per lookup statement: well under SQLite's smallest host-parameter limit (999).
LOOKUP_BATCH: Final = 500
#: Pending rows written per transaction while diffing: few fsyncs, a bounded WAL.
PENDING_COMMIT_ROWS: Final = 100_000

#: Free space worth a VACUUM after a night, if it is also a third of the file (see `_reclaim`).
RECLAIM_BYTES: Final = 8 << 20

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

_UPSERT_RANGE: Final = """
INSERT INTO users (key, fingerprint, slot, job, raw)
SELECT key, fingerprint, slot, ?, raw FROM pending WHERE position BETWEEN ? AND ?
ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, job = excluded.job,
    raw = excluded.raw
"""


class Known(NamedTuple):
    """What the state holds about one user: the fingerprint last synced, its slot, and the
    fingerprint of its text as read (None when not known yet).

    A NamedTuple rather than a frozen dataclass: one is built per user of every night's export,
    and building a tuple costs a third as much.
    """

    fingerprint: bytes
    slot: int
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class Night:
    """One sync invocation's import: its run directory and how far it got."""

    id: int
    run_dir: Path
    run_id: str | None
    status: str
    started_at: str


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """A completed chunk of tonight's run, as the promotion needs it.

    Attributes:
        first_position: line of its first user in the night's input (1-based).
        last_position: line of its last user.
        users: users in the chunk (must equal the pending rows in the range).
        failed_keys: keys of the users its job failed; every other user of the chunk is synced.
    """

    chunk: int
    job_id: str | None
    external_id: str
    completed_at: str | None
    first_position: int
    last_position: int
    users: int
    failed_keys: frozenset[str]


@dataclass(frozen=True, slots=True)
class Promotion:
    """What a promotion did: users marked synced, and chunks left out because they did not add up."""

    synced: int
    skipped_chunks: tuple[int, ...]


class SyncState:
    """A sync state file, open for one sync. Not thread-safe; one process at a time (see lock.py).

    Build one with `open` (a file, created if missing) or `in_memory` (an empty, throw-away state for
    a dry run without a state file); `close` it when done.
    """

    def __init__(self, db: sqlite3.Connection, path: Path | None) -> None:
        """Private: use `SyncState.open` or `SyncState.in_memory`."""
        self._db = db
        self.path = path
        self._uncommitted = 0
        # A version 1 state read by a dry run (not upgraded: nothing is written) has no `raw`.
        self._has_raw = db.execute("PRAGMA user_version").fetchone()[0] >= 2
        self._lookup_sql = _lookup_sql(LOOKUP_BATCH, raw=self._has_raw)

    @classmethod
    def open(cls, path: Path) -> SyncState:
        """Open the state at `path`, creating an empty one (0600) if there is no file.

        Raises:
            ConfigError: the file is not a sync state, or was written by a newer release.
        """
        if not path.exists():
            if not path.parent.is_dir():
                raise ConfigError(f"--state {path}: directory {path.parent} does not exist")
            # Created 0600 before SQLite touches it: it holds every user's email or id.
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
            except OSError as exc:
                raise ConfigError(
                    f"--state {path} cannot be created: {exc.strerror or exc}"
                ) from None
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
        return cls(db, path)

    @classmethod
    def open_read_only(cls, path: Path) -> SyncState:
        """Open the state at `path` to read it only (a dry run): nothing is written or created.

        Without a write-ahead log beside the file (no sync running, none interrupted) the file is
        read as immutable, which creates no side files; with one, SQLite reads through it.

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
        return cls(db, path)

    @classmethod
    def in_memory(cls) -> SyncState:
        """An empty state that is never saved."""
        db = sqlite3.connect(":memory:", isolation_level=None)
        _create_schema(db)
        return cls(db, None)

    def close(self) -> None:
        """Close the file; a transaction still open is rolled back (nothing half-written stays)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- settings kept with the state ------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self._transaction():
            self._set_meta(name, value)

    def _set_meta(self, name: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    @property
    def next_slot(self) -> int:
        """The slot the next new user gets; every slot below it may be in use."""
        return int(self.get_meta("next_slot") or 0)

    # -- what the diff reads ---------------------------------------------------------------------

    def user_count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM users").fetchone()
        return int(row[0])

    def lookup(self, keys: Sequence[str]) -> dict[str, Known]:
        """The state's row for each of `keys` that it holds (indexed lookups, LOOKUP_BATCH at a time).

        Args:
            keys: user keys; repeats are allowed.

        Returns:
            key -> Known, for the keys found.
        """
        found: dict[str, Known] = {}
        execute = self._db.execute
        sql = self._lookup_sql
        for start in range(0, len(keys), LOOKUP_BATCH):
            part = list(keys[start : start + LOOKUP_BATCH])
            # Padded with a repeat: one statement text, compiled once for the whole diff.
            part += part[-1:] * (LOOKUP_BATCH - len(part))
            for key, fingerprint, slot, raw in execute(sql, part):
                found[key] = Known(fingerprint, slot, raw)
        return found

    def text_fingerprints(self) -> Iterator[tuple[bytes, int]]:
        """The (text fingerprint, slot) of every user whose text is known, in one sequential scan
        (at most `next_slot` rows). A version 1 state read by a dry run has none yet."""
        if not self._has_raw:
            return iter(())
        return iter(self._db.execute("SELECT raw, slot FROM users WHERE raw IS NOT NULL"))

    def missing(self, seen: bytearray) -> Iterator[str]:
        """Keys of users whose slot is not marked in `seen`: in the state, absent from the export.

        One sequential scan; nothing is written.
        """
        size = len(seen)
        for key, slot in self._db.execute("SELECT key, slot FROM users"):
            if slot >= size or not seen[slot]:
                yield key

    # -- nights ------------------------------------------------------------------------------------

    def open_night(self) -> Night | None:
        """The night a previous sync left unfinished (diffing or uploading), if any."""
        row = self._db.execute(
            "SELECT id, run_dir, run_id, status, started_at FROM nights "
            "WHERE status IN ('diffing', 'uploading') ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else Night(row[0], Path(row[1]), row[2], row[3], row[4])

    def begin_night(self, run_dir: Path) -> Night:
        """Record a new night as `diffing` (durably) and forget pending rows of older nights."""
        started = utc_now_iso()
        with self._transaction():
            self._db.execute("DELETE FROM pending")
            cursor = self._db.execute(
                "INSERT INTO nights (run_dir, status, started_at) VALUES (?, 'diffing', ?)",
                (str(run_dir), started),
            )
        assert cursor.lastrowid is not None
        return Night(cursor.lastrowid, run_dir, None, "diffing", started)

    def add_pending(self, rows: Iterable[tuple[int, str, bytes, int, bytes | None]]) -> None:
        """Store (position, key, fingerprint, slot, raw) rows of tonight's users to send.

        Rows are committed every PENDING_COMMIT_ROWS and by `finish_diff`; a crash before that loses
        them, which is harmless: a night that did not finish diffing is discarded.
        """
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
        cursor = self._db.executemany(
            "INSERT INTO pending (position, key, fingerprint, slot, raw) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        self._uncommitted += cursor.rowcount
        if self._uncommitted >= PENDING_COMMIT_ROWS:
            self._db.execute("COMMIT")
            self._uncommitted = 0

    def refresh_raw(self, rows: Iterable[tuple[bytes, str]]) -> None:
        """Store (raw, key): users found unchanged by their content whose text had changed (key
        order, spacing) or was not known yet, so that the next night tells them by their text."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
        cursor = self._db.executemany("UPDATE users SET raw = ? WHERE key = ?", rows)
        self._uncommitted += cursor.rowcount
        if self._uncommitted >= PENDING_COMMIT_ROWS:
            self._db.execute("COMMIT")
            self._uncommitted = 0

    def finish_diff(self, night: Night, next_slot: int, counts: dict[str, object]) -> None:
        """Commit the night's pending rows, its counts and the slots it handed out."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            self._set_meta("next_slot", str(next_slot))
            self._db.execute("UPDATE nights SET counts = ? WHERE id = ?", (_json(counts), night.id))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._uncommitted = 0

    def abort_diff(self) -> None:
        """Drop the pending rows not yet committed (a diff that failed half-way)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._uncommitted = 0

    def mark_uploading(self, night: Night, run_id: str) -> Night:
        """Record, before anything is sent, that the night's run dir is being uploaded."""
        with self._transaction():
            self._db.execute(
                "UPDATE nights SET status = 'uploading', run_id = ? WHERE id = ?",
                (run_id, night.id),
            )
        return Night(night.id, night.run_dir, run_id, "uploading", night.started_at)

    def close_night(self, night: Night, counts: dict[str, object], *, status: str = "done") -> None:
        """End a night that promotes nothing (nothing to send, or abandoned); pending rows go."""
        if status not in ("done", "abandoned"):
            raise ValueError(f"a night ends done or abandoned, not {status!r}")
        with self._transaction():
            self._end_night(night, counts, status)
        self._reclaim()

    def _end_night(self, night: Night, counts: dict[str, object], status: str) -> None:
        self._db.execute("DELETE FROM pending")
        self._db.execute(
            "UPDATE nights SET status = ?, finished_at = ?, counts = ? WHERE id = ?",
            (status, utc_now_iso(), _json(counts), night.id),
        )

    def night_counts(self, night: Night) -> dict[str, object]:
        row = self._db.execute("SELECT counts FROM nights WHERE id = ?", (night.id,)).fetchone()
        if row is None or row[0] is None:
            return {}
        counts = orjson.loads(row[0])
        return counts if isinstance(counts, dict) else {}

    def pending_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])

    # -- promotion ---------------------------------------------------------------------------------

    def promote(
        self, night: Night, chunks: Sequence[ChunkResult], counts: dict[str, object]
    ) -> Promotion:
        """Mark the users of completed chunks synced and end the night, in one transaction.

        A chunk's users are its range of pending rows less `failed_keys`. A chunk whose range does
        not hold exactly `users` rows, or lacks one of its failed keys, is left out (its users stay
        unsynced and are sent again next night): promoting a guess could mark a user synced that
        was never imported.

        Args:
            night: the night being finished.
            chunks: its completed chunks.
            counts: the night's final counts, stored with it (`synced` is added here).

        Returns:
            Users marked synced and the chunks left out.
        """
        synced = 0
        skipped: list[int] = []
        with self._transaction():
            for chunk in chunks:
                promoted = self._promote_chunk(night, chunk)
                if promoted is None:
                    skipped.append(chunk.chunk)
                else:
                    synced += promoted
            self._end_night(night, {**counts, "synced": synced, "skipped_chunks": skipped}, "done")
        self._reclaim()
        return Promotion(synced, tuple(skipped))

    def _promote_chunk(self, night: Night, chunk: ChunkResult) -> int | None:
        span = (chunk.first_position, chunk.last_position)
        rows = self._db.execute(
            "SELECT count(*) FROM pending WHERE position BETWEEN ? AND ?", span
        ).fetchone()[0]
        if rows != chunk.users:
            return None
        if chunk.failed_keys:
            removed = self._db.executemany(
                "DELETE FROM pending WHERE position BETWEEN ? AND ? AND key = ?",
                [(*span, key) for key in chunk.failed_keys],
            ).rowcount
            if removed != len(chunk.failed_keys):
                return None  # a failed user we cannot find in the chunk: trust none of it
        job = self._db.execute(
            "INSERT INTO jobs (night, chunk, job_id, external_id, completed_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (night.id, chunk.chunk, chunk.job_id, chunk.external_id, chunk.completed_at),
        ).lastrowid
        return self._db.execute(_UPSERT_RANGE, (job, *span)).rowcount

    # -- information -------------------------------------------------------------------------------

    def synced_user(self, key: str) -> tuple[bytes, str | None, str | None] | None:
        """(fingerprint, job id, completed at) of the last sync of `key`, or None if never synced."""
        row = self._db.execute(
            "SELECT u.fingerprint, j.job_id, j.completed_at FROM users u "
            "LEFT JOIN jobs j ON j.id = u.job WHERE u.key = ?",
            (key,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def size_bytes(self) -> int:
        """Bytes on disk: the database and its WAL."""
        if self.path is None:
            return 0
        total = 0
        for suffix in ("", "-wal"):
            with suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    def _reclaim(self) -> None:
        """Compact the file when a third of it is free pages (after a first night of millions).

        A night's deleted pending rows leave free pages that the next night reuses; only a night
        far bigger than the usual ones (the first) leaves so many that rewriting the file pays.
        VACUUM also packs the users table, which random-order inserts leave about 70% full.
        """
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        page = self._db.execute("PRAGMA page_size").fetchone()[0]
        if free * page >= RECLAIM_BYTES and free * 3 > pages:
            self._db.execute("VACUUM")

    def checkpoint(self) -> None:
        """Fold the WAL into the database file and truncate it (after a big night)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._db.in_transaction:
            raise RuntimeError("a transaction is already open (diff not finished?)")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _lookup_sql(count: int, *, raw: bool) -> str:
    # One statement text per batch size: sqlite3 caches the compiled statements by text.
    marks = ",".join("?" * count)
    column = "raw" if raw else "NULL"
    return f"SELECT key, fingerprint, slot, {column} FROM users WHERE key IN ({marks})"


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


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
