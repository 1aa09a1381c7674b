"""Greedy, order-preserving packing of encoded users into JSON-array chunks.

Pure and synchronous: it sees only encoded users (bytes) and a byte budget per chunk, and knows
nothing of files, validation or HTTP. Same users and budgets in, same chunks out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PackedChunk:
    """One chunk's users file: a compact JSON array, ready to send as is."""

    index: int
    body: bytes
    users: int
    first_position: int
    last_position: int


class ChunkPacker:
    """Packs users in input order; a chunk is closed when the next user would not fit its budget.

    Args:
        budget_for: the largest users-file size allowed for chunk number `index` (the request limit
            less the multipart overhead, which depends on the chunk's external_id). It must not grow
            with the index (external_ids only get longer).
    """

    __slots__ = ("_alone", "_budget", "_budget_for", "_first", "_index", "_items", "_last", "_size")

    def __init__(self, budget_for: Callable[[int], int]) -> None:
        self._budget_for = budget_for
        self._index = 0
        self._budget = budget_for(0)
        self._alone = min(self._budget, budget_for(1))
        # The body's pieces, "[" then users separated by ","; "]" is added on closing and the
        # body joined in one copy.
        self._items: list[bytes] = [b"["]
        self._size = 2  # "[]"
        self._first = 0
        self._last = 0

    def fits_alone(self, encoded: bytes) -> bool:
        """Whether a user could travel in a request of its own, in this chunk or the next one."""
        return len(encoded) + 2 <= self._alone

    def add(self, encoded: bytes, position: int) -> PackedChunk | None:
        """Append a user (one that `fits_alone`); returns the chunk it closed, if it closed one."""
        items = self._items
        grown = self._size + len(encoded) + 1  # its comma, or the "[" counted twice for the first
        closed = None
        if len(items) > 1:
            if grown > self._budget:
                closed = self._close()
                items = self._items
                grown = self._size + len(encoded)
                self._first = position
            else:
                items.append(b",")
        else:
            grown -= 1
            self._first = position
        items.append(encoded)
        self._size = grown
        self._last = position
        return closed

    def finish(self) -> PackedChunk | None:
        """Close the last, partly filled chunk (None if it is empty)."""
        return self._close() if len(self._items) > 1 else None

    def _close(self) -> PackedChunk:
        items = self._items
        items.append(b"]")
        chunk = PackedChunk(
            index=self._index,
            body=b"".join(items),
            users=len(items) // 2,  # "[", then a user and a separator each ("," or "]")
            first_position=self._first,
            last_position=self._last,
        )
        self._index += 1
        self._budget = self._budget_for(self._index)
        self._alone = min(self._budget, self._budget_for(self._index + 1))
        self._items = [b"["]
        self._size = 2
        return chunk
