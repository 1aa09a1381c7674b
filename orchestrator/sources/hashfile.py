"""Auth0 support's password-hash export, joined to the users it belongs to.

Support sends the hashes of a database connection as NDJSON (gzipped or not), one object per user:
`{"_id": {"$oid": …}, "alt_id": …, "email": …, "passwordHash": "$2b$10$…", "connection": …,
"identifiers": [{"type": "email", "value": …}], …}`. The user's id is `auth0|<alt_id>` when there is
an alt_id, else `auth0|<_id.$oid>`; the email may sit in `identifiers` only.

The rows are indexed in a private, temporary SQLite file, so the join's memory stays flat whatever
the number of users (the index costs disk, about 150 bytes a row), and each user is looked up by id,
then by lower-cased email within its connection. Rows that matched no user are listed afterwards.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from orchestrator.fsutil import PRIVATE_FILE_MODE
from orchestrator.sources.reader import ExportReader, Shapes

#: The id prefix of an Auth0 database user.
DATABASE_PREFIX: Final = "auth0|"
_SHAPES: Final = Shapes(
    arrays=False, description="--password-hashes (Auth0 support's NDJSON hash export)"
)
_SCHEMA: Final = """
CREATE TABLE rows (
    line INTEGER PRIMARY KEY,
    user_id TEXT,
    email TEXT,
    connection TEXT,
    hash TEXT NOT NULL
);
"""
_INDEXES: Final = """
CREATE INDEX rows_by_id ON rows (user_id);
CREATE INDEX rows_by_email ON rows (email);
"""
#: SQLite's page cache for the index: lookups come in export order, not index order.
_CACHE_KIB: Final = 32 << 10
#: Rows inserted per statement while the index is built.
_INSERT_BATCH: Final = 10_000


@dataclass(slots=True)
class JoinCounts:
    """What the join found: the plan summary shows it.

    Attributes:
        rows: hash rows read (of the kept connection, if one is named).
        other_connection: rows of other connections, left out.
        unusable: rows with no hash, or with neither an id nor an email.
        matched: rows that gave a user its hash.
        ambiguous_email: users whose email matched rows of several connections (no hash given).
    """

    rows: int = 0
    other_connection: int = 0
    unusable: int = 0
    matched: int = 0
    ambiguous_email: int = 0

    @property
    def unmatched(self) -> int:
        return self.rows - self.matched

    def as_json(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "other_connection": self.other_connection,
            "unusable": self.unusable,
            "ambiguous_email": self.ambiguous_email,
        }


class SupportHashes:
    """The support export of `path`, indexed for lookups; `close` deletes the index.

    Args:
        path: the NDJSON file (gzipped or not).
        only_connection: keep only the rows of this connection (None: every row).

    Raises:
        InputError: the file cannot be read or is malformed (naming its line).
    """

    def __init__(self, path: str, *, only_connection: str | None = None) -> None:
        self.path = path
        self.counts = JoinCounts()
        self._directory = tempfile.TemporaryDirectory(prefix="orchestrator-hashes-")
        database = Path(self._directory.name) / "hashes.sqlite"
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        self._db = sqlite3.connect(database, isolation_level=None)
        # Private to this process: no file locks per statement, no journal, no fsync.
        self._db.executescript(
            "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            f"PRAGMA cache_size = -{_CACHE_KIB};" + _SCHEMA
        )
        self._matched = bytearray()
        try:
            self._load(only_connection)
        except BaseException:
            self.close()
            raise

    def _load(self, only_connection: str | None) -> None:
        reader = ExportReader(self.path, fingerprint=False, accepts=_SHAPES)
        counts = self.counts
        insert = "INSERT INTO rows VALUES (?, ?, ?, ?, ?)"
        pending: list[tuple[int, str | None, str | None, str | None, str]] = []
        self._db.execute("BEGIN")
        for batch in reader.batches():
            for record in batch:
                row = _row(record.value)
                if row is None:
                    counts.unusable += 1
                    continue
                user_id, email, connection, password_hash = row
                if only_connection is not None and connection not in (None, only_connection):
                    counts.other_connection += 1
                    continue
                counts.rows += 1
                pending.append((record.position, user_id, email, connection, password_hash))
            if len(pending) >= _INSERT_BATCH:
                self._db.executemany(insert, pending)
                pending.clear()
        self._db.executemany(insert, pending)
        self._db.execute("COMMIT")
        self._db.executescript(_INDEXES)
        last = self._db.execute("SELECT max(line) FROM rows").fetchone()[0]
        self._matched = bytearray((last or 0) + 1)

    def find(self, user_id: object, email: object, connection: str | None) -> str | None:
        """The hash of the user with this id (with or without `auth0|`), else of its email
        (lower-cased) in its connection; None when no row, or several connections, have it."""
        if isinstance(user_id, str) and user_id:
            wanted = user_id if user_id.startswith(DATABASE_PREFIX) else DATABASE_PREFIX + user_id
            found = self._db.execute(
                "SELECT line, hash FROM rows WHERE user_id = ? LIMIT 1", (wanted,)
            ).fetchone()
            if found is not None:
                return self._take(found[0], found[1])
        if not (isinstance(email, str) and email):
            return None
        rows = self._db.execute(
            "SELECT line, hash, connection FROM rows WHERE email = ?", (email.lower(),)
        ).fetchall()
        if connection is not None:
            rows = [row for row in rows if row[2] in (None, connection)]
        if len({row[2] for row in rows}) > 1:
            self.counts.ambiguous_email += 1
            return None
        return self._take(rows[0][0], rows[0][1]) if rows else None

    def _take(self, line: int, password_hash: str) -> str:
        if not self._matched[line]:
            self._matched[line] = 1
            self.counts.matched += 1
        return password_hash

    def unmatched(self) -> Iterator[dict[str, object]]:
        """The rows that matched no user, without their hashes: line, user_id, email, connection."""
        matched = self._matched
        query = "SELECT line, user_id, email, connection FROM rows ORDER BY line"
        for line, user_id, email, connection in self._db.execute(query):
            if not matched[line]:
                yield {"line": line, "user_id": user_id, "email": email, "connection": connection}

    def write_unmatched(self, path: Path) -> int:
        """List the unmatched rows in `path` (NDJSON, 0600); returns how many."""
        written = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            for row in self.unmatched():
                out.write(orjson.dumps(row) + b"\n")
                written += 1
        return written

    def close(self) -> None:
        """Delete the index (it holds every hash)."""
        self._db.close()
        self._directory.cleanup()


def _row(value: object) -> tuple[str | None, str | None, str | None, str] | None:
    """(user_id, lower-cased email, connection, hash) of one support row; None if unusable."""
    if not isinstance(value, dict):
        return None
    password_hash = value.get("passwordHash")
    if not isinstance(password_hash, str) or not password_hash:
        return None
    user_id = _user_id(value)
    email = value.get("email")
    if not isinstance(email, str) or not email:
        email = _identifier_email(value.get("identifiers"))
    connection = value.get("connection")
    if user_id is None and email is None:
        return None
    return (
        user_id,
        email.lower() if email else None,
        connection if isinstance(connection, str) else None,
        password_hash,
    )


def _user_id(value: dict[str, object]) -> str | None:
    alt_id = value.get("alt_id")
    if isinstance(alt_id, str) and alt_id:
        return DATABASE_PREFIX + alt_id
    object_id = value.get("_id")
    oid = object_id.get("$oid") if isinstance(object_id, dict) else object_id
    return DATABASE_PREFIX + oid if isinstance(oid, str) and oid else None


def _identifier_email(identifiers: object) -> str | None:
    if not isinstance(identifiers, list):
        return None
    for item in identifiers:
        if isinstance(item, dict) and item.get("type") == "email":
            value = item.get("value")
            if isinstance(value, str) and value:
                return value
    return None
