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

    An open-addressing table of fingerprints (`table`, linear probing from the fingerprint modulo
    `size`, 0 = empty) sized for the expected keys at 80% load, doubled when that is passed: 8 bytes
    per slot, ~10 per key when the expectation was right. `table` and `size` are plain attributes so
    that a hot loop can probe them itself; it then `store`s at the free slot its probe ended on.
    """

    __slots__ = ("count", "limit", "size", "table")

    def __init__(self, expected: int = 1 << 16) -> None:
        self._allocate(max(_MIN_CAPACITY, math.ceil(expected / _MAX_LOAD)))
        self.count = 0

    def _allocate(self, capacity: int) -> None:
        self.table = array("q", [0]) * capacity
        self.size = capacity
        self.limit = int(capacity * _MAX_LOAD)

    def add(self, fp: int, *, store: bool = True) -> bool:
        """True if fingerprint `fp` was stored before; otherwise stores it (when `store`)."""
        table, size = self.table, self.size
        i = fp % size
        while found := table[i]:
            if found == fp:
                return True
            i = (i + 1) % size
        if store:
            self.store(i, fp)
        return False

    def store(self, slot: int, fp: int) -> None:
        """Store `fp` at the free `slot` its probe ended on (no store since that probe)."""
        self.table[slot] = fp
        self.count += 1
        if self.count > self.limit:
            self._grow()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.add(fingerprint(key), store=False)

    def _grow(self) -> None:
        old = self.table
        self._allocate(len(old) * 2)
        table, size = self.table, self.size
        for fp in filter(None, old):  # filter() skips the empty slots in C
            i = fp % size
            while table[i]:
                i = (i + 1) % size
            table[i] = fp

    def __len__(self) -> int:
        return self.count

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the table (the dominant cost; the object itself is ~100 bytes)."""
        return len(self.table) * self.table.itemsize


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
        # Once per user of the export: the probes are written out, a call costs more than a probe.
        emails = self.emails
        email_fp = hash(email.lower()) or 1
        table, size = emails.table, emails.size
        email_slot = email_fp % size
        while found := table[email_slot]:
            if found == email_fp:
                return DUPLICATE_EMAIL
            email_slot = (email_slot + 1) % size
        if type(user_id) is str and user_id:
            user_ids = self.user_ids
            user_id_fp = hash(user_id) or 1
            table, size = user_ids.table, user_ids.size
            user_id_slot = user_id_fp % size
            while found := table[user_id_slot]:
                if found == user_id_fp:
                    return DUPLICATE_USER_ID
                user_id_slot = (user_id_slot + 1) % size
            if keep:
                table[user_id_slot] = user_id_fp
                user_ids.count += 1
                if user_ids.count > user_ids.limit:
                    user_ids._grow()
        if keep:
            # The emails' table has not grown since its probe: the slot is still the free one.
            emails.table[email_slot] = email_fp
            emails.count += 1
            if emails.count > emails.limit:
                emails._grow()
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
