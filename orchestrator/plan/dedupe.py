"""Has this email or user_id been accepted earlier in the input? Answered in bounded memory.

Owns the compact key set (`SeenKeys`) and the per-user check (`DuplicateFinder`). It keeps 64-bit
fingerprints of the keys, never the keys themselves (a set of 10 million strings would need ~1 GB),
so it cannot say *where* the earlier occurrence was.
"""

from __future__ import annotations

import math
from array import array
from typing import Final

from orchestrator.plan.schema import Problem

# Linear probing stays cheap to 80% load: the next slots are in the same cache line.
_MAX_LOAD: Final = 0.8
_MIN_CAPACITY: Final = 16


def fingerprint(key: str) -> int:
    """The 64-bit fingerprint of a key: Python's own string hash, never 0 (0 marks an empty slot).

    It is seeded per process, so fingerprints compare only within one planning pass. Two different
    keys share one with probability about n**2 / 2**65 over n keys (~3e-6 at 10 million users):
    the later key is then wrongly reported as a duplicate.
    """
    return hash(key) or 1


class SeenKeys:
    """Remembers keys compactly (~10 bytes per key, NOT a set of strings) to find repeats.

    An open-addressing table of fingerprints (`array('q')`, linear probing from the fingerprint
    modulo the table size, 0 = empty) sized for the expected keys at 80% load, doubled when that is
    passed: 8 bytes per slot, ~10 per key when the expectation was right.
    """

    __slots__ = ("_count", "_limit", "_size", "_table")

    def __init__(self, expected: int = 1 << 16) -> None:
        self._allocate(max(_MIN_CAPACITY, math.ceil(expected / _MAX_LOAD)))
        self._count = 0

    def _allocate(self, capacity: int) -> None:
        self._table = array("q", [0]) * capacity
        self._size = capacity
        self._limit = int(capacity * _MAX_LOAD)

    def add(self, fp: int, *, store: bool = True) -> bool:
        """True if fingerprint `fp` was stored before; otherwise stores it (when `store`)."""
        table, size = self._table, self._size
        i = fp % size
        slot = table[i]
        while slot:
            if slot == fp:
                return True
            i = (i + 1) % size
            slot = table[i]
        if store:
            table[i] = fp
            self._count += 1
            if self._count > self._limit:
                self._grow()
        return False

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.add(fingerprint(key), store=False)

    def _grow(self) -> None:
        old = self._table
        self._allocate(len(old) * 2)
        table, size = self._table, self._size
        for fp in filter(None, old):  # filter() skips the empty slots in C
            i = fp % size
            while table[i]:
                i = (i + 1) % size
            table[i] = fp

    def __len__(self) -> int:
        return self._count

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the table (the dominant cost; the object itself is ~100 bytes)."""
        return len(self._table) * self._table.itemsize


class DuplicateFinder:
    """Whether a valid user repeats the email (case-insensitively) or user_id of an earlier one.

    Only users that are kept count as "earlier": a user rejected for another reason must not make a
    later one a duplicate, so the caller says whether to remember the user (`keep`).
    """

    def __init__(self, expected: int = 1 << 16) -> None:
        """Create an empty finder sized for `expected` users (it grows past that)."""
        self.emails = SeenKeys(expected)
        self.user_ids = SeenKeys(expected)

    def add(self, email: str, user_id: object, *, keep: bool = True) -> Problem | None:
        """The duplicate problem of a user, or None (and the user is remembered when `keep`).

        Args:
            email: the user's email (required by the schema, so always a string).
            user_id: its user_id, normalised; anything but a non-empty string has no key.
            keep: remember its keys when it is not a duplicate.
        """
        email_fp = fingerprint(email.lower())
        if self.emails.add(email_fp, store=False):
            return DUPLICATE_EMAIL
        if type(user_id) is str and user_id and self.user_ids.add(fingerprint(user_id), store=keep):
            return DUPLICATE_USER_ID
        if keep:
            self.emails.add(email_fp)
        return None

    @property
    def memory_bytes(self) -> int:
        """Bytes held by both fingerprint tables."""
        return self.emails.memory_bytes + self.user_ids.memory_bytes


DUPLICATE_EMAIL: Final = Problem(
    "duplicate_email",
    "/email",
    "email repeats an earlier user's email (compared case-insensitively); "
    "only the first is imported: merge the two records",
)
DUPLICATE_USER_ID: Final = Problem(
    "duplicate_user_id",
    "/user_id",
    "user_id repeats an earlier user's user_id; only the first is imported: "
    "give each user its own user_id",
)
