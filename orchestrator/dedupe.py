"""Bounded-memory duplicate detection: has this email or user_id been accepted earlier in the input?

Owns the compact key set (`SeenKeys`) and the per-user check (`DuplicateFinder`). It never keeps the
keys themselves, only 64-bit fingerprints, so it cannot say *where* the earlier occurrence was.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Final, TypeGuard

from orchestrator.validation import Problem

_native: ModuleType | None
try:  # the optional C accelerator of add_batch (built at install when a compiler is there)
    from orchestrator import _dedupe as _native
except ImportError:  # pragma: no cover - depends on the install
    _native = None

# Linear probing stays cheap to 80% load: the next slots are in the same cache line.
_MAX_LOAD: Final = 0.8
_MIN_CAPACITY: Final = 16
# Copying a configured hasher costs ~half of constructing one (keyword parsing dominates).
_BLAKE2B_8: Final = hashlib.blake2b(digest_size=8)


def fingerprint(key: str) -> int:
    """Deterministic 64-bit fingerprint of `key` (BLAKE2b, not the per-process randomised hash()).

    Fingerprints are signed 64-bit integers, like Python's own `hash()` of a string, which forked
    planning workers use instead (`parallel.py`).

    Args:
        key: any string (lone surrogates included).

    Returns:
        A non-zero signed 64-bit integer; the same for the same key in every run.
    """
    try:
        data = key.encode()
    except UnicodeEncodeError:  # lone surrogates: not from JSON input, but must not crash
        data = key.encode("utf-8", "surrogatepass")
    hasher = _BLAKE2B_8.copy()
    hasher.update(data)
    # 0 marks an empty slot of the table, so it is folded onto 1 (a negligible bias).
    return int.from_bytes(hasher.digest(), "little", signed=True) or 1


#: The fingerprint of a planning process and the workers it forks: Python's own string hash, in C
#: and about ten times cheaper than `fingerprint`. It is seeded per interpreter, which forked
#: processes share, so their fingerprints can be compared (spawned ones use `fingerprint`). It is
#: 0 for "" ("no such key") and for any other string only with probability 2**-64 (that key
#: would then go unchecked); a plan is the same from run to run unless two keys collide.
process_fingerprint: Final[Callable[[str], int]] = hash


class SeenKeys:
    """Remembers keys compactly (a few bytes per key, NOT a set of strings) to find repeats.

    Keys are stored as 64-bit fingerprints in an open-addressing table (`array('q')`, linear
    probing from the fingerprint modulo the table size, 0 = empty) sized for the expected keys at
    80% load, which doubles when that is passed: 8 bytes per slot, so ~10 bytes per key when
    the expectation was right and up to 20 after a doubling (a set of str costs ~100).

    False positives: two different keys share a fingerprint with probability about n**2 / 2**65
    over n keys (~7e-7 at 5 million keys); the later key is then wrongly reported as seen. With
    `fingerprint()` (BLAKE2b) a run over the same input repeats any such result identically.
    """

    __slots__ = ("_count", "_limit", "_size", "_table")

    def __init__(self, expected: int = 1 << 16) -> None:
        """Create an empty set sized for `expected` keys (it grows past that, at a rehash cost).

        Args:
            expected: keys expected; a close estimate saves both rehashing and memory.
        """
        self._allocate(max(_MIN_CAPACITY, math.ceil(expected / _MAX_LOAD)))
        self._count = 0

    def _allocate(self, capacity: int) -> None:
        self._table = array("q", [0]) * capacity
        self._size = capacity  # any size: slots are fingerprints modulo it
        self._limit = int(capacity * _MAX_LOAD)

    def add(self, key: str) -> bool:
        """Remember `key`; True if it was (almost certainly) seen before, else remembers it.

        Args:
            key: the key (compare case-insensitively by lower-casing before calling).
        """
        return self.add_fingerprint(fingerprint(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.contains_fingerprint(fingerprint(key))

    def find_slot(self, fp: int) -> int:
        """-1 if fingerprint `fp` is stored, else the empty slot where `store_at` would put it."""
        table, size = self._table, self._size
        i = fp % size
        slot = table[i]
        while slot:
            if slot == fp:
                return -1
            i = (i + 1) % size
            slot = table[i]
        return i

    def contains_fingerprint(self, fp: int) -> bool:
        """True if fingerprint `fp` (from `fingerprint()`) is stored; stores nothing."""
        return self.find_slot(fp) < 0

    def add_fingerprint(self, fp: int) -> bool:
        """Store fingerprint `fp` (from `fingerprint()`); True if it was already stored."""
        table, size = self._table, self._size  # find_slot() inlined: this is the hot path
        i = fp % size
        slot = table[i]
        while slot:
            if slot == fp:
                return True
            i = (i + 1) % size
            slot = table[i]
        self.store_at(i, fp)
        return False

    def store_at(self, slot: int, fp: int) -> None:
        """Store `fp` in the `slot` that `find_slot(fp)` returned, with no store in between."""
        self._table[slot] = fp
        self._count += 1
        if self._count > self._limit:
            self._grow()

    def reserve(self, keys: int) -> None:
        """Grow now if storing `keys` more keys would pass the load limit (no growth between)."""
        while self._count + keys > self._limit:
            self._grow()

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
    """Per-user duplicate check on normalised users: email (lower-cased) and user_id.

    Only accepted users should count as "earlier" (a rejected user must not make a later one a
    duplicate), so checking and remembering are separate: `check(user)` reports without storing,
    and `remember(user)` stores once the caller has accepted the user. `remember` reuses the
    fingerprints `check` just computed for the same keys, so the pair costs one hash per key.
    """

    def __init__(self, expected: int = 1 << 16) -> None:
        """Create an empty finder.

        Args:
            expected: users expected (sizes the tables; they grow past it).
        """
        self.emails = SeenKeys(expected)
        self.user_ids = SeenKeys(expected)
        # What the last clean check() found: keys, fingerprints and free slots, valid while no
        # remember() has stored anything since (`_stores` counts stores).
        self._pending: tuple[str | None, str | None, int, int, int, int, int] | None = None
        self._stores = 0

    def check(self, user: Mapping[str, object]) -> Problem | None:
        """Report whether `user` repeats an accepted user's email or user_id; stores nothing.

        Args:
            user: a normalised, valid user (its `auth0|` prefix already handled).

        Returns:
            A `duplicate_email` (checked first) or `duplicate_user_id` problem, or None.
        """
        # Runs once per user: the probes are written out here, as calls cost more than the work.
        self._pending = None
        email = user.get("email")
        email_key = email.lower() if isinstance(email, str) else None
        user_id = user.get("user_id")
        user_id_key = user_id if isinstance(user_id, str) else None
        email_fp = user_id_fp = 0
        email_slot = user_id_slot = -1
        if email_key is not None:
            email_fp = fingerprint(email_key)
            seen = self.emails
            table, size = seen._table, seen._size
            email_slot = email_fp % size
            slot = table[email_slot]
            while slot:
                if slot == email_fp:
                    return _duplicate_email()
                email_slot = (email_slot + 1) % size
                slot = table[email_slot]
        if user_id_key is not None:
            user_id_fp = fingerprint(user_id_key)
            seen = self.user_ids
            table, size = seen._table, seen._size
            user_id_slot = user_id_fp % size
            slot = table[user_id_slot]
            while slot:
                if slot == user_id_fp:
                    return _duplicate_user_id()
                user_id_slot = (user_id_slot + 1) % size
                slot = table[user_id_slot]
        self._pending = (
            email_key,
            user_id_key,
            email_fp,
            user_id_fp,
            email_slot,
            user_id_slot,
            self._stores,
        )
        return None

    def remember(self, user: Mapping[str, object]) -> None:
        """Record `user`'s email and user_id as taken (call once the user is accepted).

        Right after a clean `check` of the same user this reuses its work (no hashing, no probe).
        """
        pending, self._pending = self._pending, None
        email = user.get("email")
        email_key = email.lower() if isinstance(email, str) else None
        user_id = user.get("user_id")
        user_id_key = user_id if isinstance(user_id, str) else None
        if (
            pending is not None
            and pending[6] == self._stores
            and pending[0] == email_key
            and pending[1] == user_id_key
        ):
            if email_key is not None:
                self.emails.store_at(pending[4], pending[2])
            if user_id_key is not None:
                self.user_ids.store_at(pending[5], pending[3])
        else:
            if email_key is not None:
                self.emails.add(email_key)
            if user_id_key is not None:
                self.user_ids.add(user_id_key)
        self._stores += 1

    def add_batch(
        self, email_fps: Sequence[int], user_id_fps: Sequence[int]
    ) -> list[tuple[int, Problem]]:
        """Check and remember a batch of users known by fingerprints (0: no such key), in order.

        Each user is checked against the accepted users before it, earlier ones of the batch
        included, and remembered unless it is a duplicate.

        Returns:
            (index in the batch, problem) of each duplicate, in order (usually none).
        """
        emails, user_ids = self.emails, self.user_ids
        self._pending = None
        emails.reserve(len(email_fps))  # room for every key first: no growth inside the loop
        user_ids.reserve(len(user_id_fps))
        if _native is not None and _is_int64_array(email_fps) and _is_int64_array(user_id_fps):
            found, emails_stored, user_ids_stored = _native.add_batch(
                emails._table, user_ids._table, email_fps, user_id_fps
            )
            emails._count += emails_stored
            user_ids._count += user_ids_stored
            self._stores += len(email_fps) - len(found)
            return [
                (index, _duplicate_user_id() if which else _duplicate_email())
                for index, which in found
            ]
        # The same loop in Python (where the accelerator is not built).
        duplicates: list[tuple[int, Problem]] = []
        for index, (email_fp, user_id_fp) in enumerate(zip(email_fps, user_id_fps, strict=True)):
            email_slot = emails.find_slot(email_fp) if email_fp else 0
            if email_slot < 0:
                duplicates.append((index, _duplicate_email()))
                continue
            user_id_slot = user_ids.find_slot(user_id_fp) if user_id_fp else 0
            if user_id_slot < 0:
                duplicates.append((index, _duplicate_user_id()))
                continue
            if email_fp:  # reserve() made room: storing cannot grow the table here
                emails.store_at(email_slot, email_fp)
            if user_id_fp:
                user_ids.store_at(user_id_slot, user_id_fp)
            self._stores += 1
        return duplicates

    def add_fingerprints(
        self, email_fp: int, user_id_fp: int, *, store: bool = True
    ) -> Problem | None:
        """`add` for keys already fingerprinted (e.g. by another process); 0 means no such key.

        Args:
            email_fp: `fingerprint(email.lower())`, or 0 for a user without a string email.
            user_id_fp: `fingerprint(user_id)`, or 0 for a user without a string user_id.
            store: False only checks (as `check`), True also remembers a user that is no duplicate.

        Returns:
            The same problem `check` would report for the user, or None.
        """
        if store:
            found = self.add_batch((email_fp,), (user_id_fp,))
            return found[0][1] if found else None
        if email_fp and self.emails.contains_fingerprint(email_fp):
            return _duplicate_email()
        if user_id_fp and self.user_ids.contains_fingerprint(user_id_fp):
            return _duplicate_user_id()
        return None

    def add(self, user: Mapping[str, object]) -> Problem | None:
        """`check`, then `remember` unless a duplicate (for callers with no later reject)."""
        problem = self.check(user)
        if problem is None:
            self.remember(user)
        return problem

    @property
    def memory_bytes(self) -> int:
        """Bytes held by both fingerprint tables."""
        return self.emails.memory_bytes + self.user_ids.memory_bytes


def _is_int64_array(values: Sequence[int]) -> TypeGuard[array[int]]:
    return isinstance(values, array) and values.typecode == "q"


def key_fingerprints(user: Mapping[str, object]) -> tuple[int, int]:
    """The fingerprints `DuplicateFinder.add_fingerprints` takes for `user`: (email, user_id)."""
    email = user.get("email")
    user_id = user.get("user_id")
    return (
        fingerprint(email.lower()) if isinstance(email, str) else 0,
        fingerprint(user_id) if isinstance(user_id, str) else 0,
    )


def _duplicate_email() -> Problem:
    return Problem(
        "duplicate_email",
        "/email",
        "email repeats an earlier user's email (compared case-insensitively); "
        "only the first is imported: merge the two records",
    )


def _duplicate_user_id() -> Problem:
    return Problem(
        "duplicate_user_id",
        "/user_id",
        "user_id repeats an earlier user's user_id; only the first is imported: "
        "give each user its own user_id",
    )
