"""The state's users by the fingerprint of their text: the nightly sync's fast path, in memory.

Loaded once per night from the state (one sequential scan, ~1 µs a user), it answers "did the state
see exactly this text last time, and under which slot?" with one probe, where an indexed lookup in
SQLite costs ~2.5 µs. It holds each 8-byte text fingerprint and its slot: ~20 bytes a user (20 MB at
1 million users, 200 MB at 10 million). A changed text shares its fingerprint with some user's old
one with probability ~n / 2**64 over n users (5e-13 at 10 million): that user would then pass for
unchanged until it changes again.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import Final

_MAX_LOAD: Final = 0.8


class TextIndex:
    """Text fingerprint (8 bytes) -> slot, in an open-addressing table of integers (0 = empty)."""

    __slots__ = ("_keys", "_size", "_slots")

    def __init__(self, rows: Iterable[tuple[bytes, int]], expected: int) -> None:
        """Index (text fingerprint, slot) rows; `expected` sizes the table (it must hold them)."""
        self._size = size = max(16, math.ceil(expected / _MAX_LOAD))
        self._keys = keys = array("Q", [0]) * size
        self._slots = slots = array("q", [0]) * size
        from_bytes = int.from_bytes
        for fingerprint, slot in rows:
            key = from_bytes(fingerprint, "little") or 1
            i = key % size
            while keys[i]:
                i = (i + 1) % size
            keys[i] = key
            slots[i] = slot

    def slot_of(self, fingerprint: bytes) -> int:
        """The slot of the user whose text had this fingerprint, or -1."""
        key = int.from_bytes(fingerprint, "little") or 1
        keys, size = self._keys, self._size
        i = key % size
        while found := keys[i]:
            if found == key:
                return self._slots[i]
            i = (i + 1) % size
        return -1

    @property
    def memory_bytes(self) -> int:
        return (len(self._keys) + len(self._slots)) * 8
