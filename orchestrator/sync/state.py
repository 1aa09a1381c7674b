"""The sync state: one SQLite file holding every synced user's fingerprint and the nights that sent it.

Owns every transaction and the queries the diff and the promotion need; the file itself (its schema,
how it is recognised, created and upgraded) is `statefile.py`'s. It never reads exports, chunk files
or the network: `diff.py` and `promote.py` hand it plain rows.
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

from orchestrator.fsutil import utc_now_iso
from orchestrator.sync.statefile import connect, connect_in_memory, connect_read_only

#: Keys per lookup statement: well under SQLite's smallest host-parameter limit (999).
LOOKUP_BATCH: Final = 500
#: Pending rows written per transaction while diffing: few fsyncs, a bounded WAL.
PENDING_COMMIT_ROWS: Final = 100_000

#: Free space worth a VACUUM after a night, if it is also a third of the file (see `_reclaim`).
RECLAIM_BYTES: Final = 8 << 20

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
            ConfigError: the file is not a sync state, was written by a newer release, or cannot
                be created or written.
        """
        return cls(connect(path), path)

    @classmethod
    def open_read_only(cls, path: Path) -> SyncState:
        """Open the state at `path` to read it only (a dry run): nothing is written or created.

        Raises:
            ConfigError: the file is not a sync state, or was written by a newer release.
        """
        return cls(connect_read_only(path), path)

    @classmethod
    def in_memory(cls) -> SyncState:
        """An empty state that is never saved."""
        return cls(connect_in_memory(), None)

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
