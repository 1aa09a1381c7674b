"""Greedy, order-preserving packing of encoded users into JSON-array chunks.

Pure and synchronous: it sees only encoded users (bytes) and a byte budget per chunk, and knows nothing
of files, validation or HTTP. Same users and budgets in, same chunks out.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PackedChunk:
    """One chunk's users file: a compact JSON array, ready to send as is."""

    index: int
    body: bytes
    users: int
    first_position: int
    last_position: int


def array_size(item_sizes_total: int, count: int) -> int:
    """Bytes of a JSON array holding `count` items of `item_sizes_total` bytes in all: `[a,b,c]`."""
    return item_sizes_total + count + 1 if count else 2


class ChunkPacker:
    """Packs users in input order; a chunk is closed when the next user would not fit its budget.

    Users arrive one by one (`add`) or as runs of a batch already joined by commas (`add_run`,
    which places a whole run with a binary search instead of a step per user); both pack alike.

    Args:
        budget_for: the largest users-file size allowed for chunk number `index` (the request limit less
            the multipart overhead, which depends on the chunk's external_id). It must not grow with
            the index (external_ids only get longer).
    """

    __slots__ = (
        "_alone",
        "_budget",
        "_budget_for",
        "_first",
        "_index",
        "_items",
        "_last",
        "_size",
        "_users",
    )

    def __init__(self, budget_for: Callable[[int], int]) -> None:
        self._budget_for = budget_for
        self._index = 0
        self._budget = budget_for(0)
        self._alone = min(self._budget, budget_for(1))
        # The body's pieces: "[", then encoded users (or runs of them, views into their batch's
        # bytes) separated by ","; "]" is added on closing, and the body is joined in one copy.
        self._items: list[bytes | memoryview] = [b"["]
        self._users = 0
        self._size = 2  # "[]"
        self._first = 0
        self._last = 0

    def fits_alone(self, encoded: bytes) -> bool:
        """Whether a user could travel in a request of its own, in this chunk or the next one."""
        return len(encoded) + 2 <= self._alone

    def all_fit_alone(self, longest: int, users: int) -> bool:
        """Whether every one of the next `users` users, none over `longest` bytes, fits alone."""
        return longest + 2 <= self._budget_for(self._index + users + 1)

    def add(self, encoded: bytes, position: int) -> PackedChunk | None:
        """Append a user; returns the chunk it closed, if adding it closed one.

        The caller must have checked `fits_alone` first.
        """
        grown = self._size + len(encoded) + (1 if self._users else 0)
        closed = None
        if grown > self._budget and self._users:
            closed = self._close()
            grown = self._size + len(encoded)
        if self._users:
            self._items.append(b",")
        else:
            self._first = position
        self._items.append(encoded)
        self._users += 1
        self._size = grown
        self._last = position
        return closed

    def add_run(
        self, joined: bytes, ends: Sequence[int], lo: int, hi: int, positions: Sequence[int]
    ) -> list[PackedChunk]:
        """Append users `lo`..`hi - 1` of a batch; returns the chunks this closed, in order.

        Args:
            joined: the batch's encoded users joined by ",".
            ends: where user i ends in `joined` (exclusive); it starts at `ends[i - 1] + 1`.
            lo, hi: the run of users to add.
            positions: each user's input position.

        Every user of the run must fit alone (`all_fit_alone`).
        """
        closed: list[PackedChunk] = []
        while lo < hi:
            start = ends[lo - 1] + 1 if lo else 0
            comma = 1 if self._users else 0
            # Users lo..taken-1 fit: their bytes (with inner commas) end within the room left.
            taken = bisect_right(ends, start + self._budget - self._size - comma, lo, hi)
            if taken == lo:
                if not self._users:
                    raise ValueError("a user of the run does not fit alone")
                closed.append(self._close())
                continue
            end = ends[taken - 1]
            if self._users:
                self._items.append(b",")
            else:
                self._first = positions[lo]
            self._items.append(memoryview(joined)[start:end])
            self._users += taken - lo
            self._size += end - start + comma
            self._last = positions[taken - 1]
            if taken < hi:  # the next user does not fit
                closed.append(self._close())
            lo = taken
        return closed

    def finish(self) -> PackedChunk | None:
        """Close the last, partly filled chunk (None if it is empty)."""
        return self._close() if self._users else None

    def _close(self) -> PackedChunk:
        self._items.append(b"]")
        chunk = PackedChunk(
            index=self._index,
            body=b"".join(self._items),
            users=self._users,
            first_position=self._first,
            last_position=self._last,
        )
        self._index += 1
        self._budget = self._budget_for(self._index)
        self._alone = min(self._budget, self._budget_for(self._index + 1))
        self._items = [b"["]
        self._users = 0
        self._size = 2
        return chunk
