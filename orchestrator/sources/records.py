"""What a source hands on: one decoded top-level value with its position and text, and the one
description of a value the JSON decoder refused."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Final, NamedTuple

import orjson

#: orjson refuses documents nested deeper than this.
MAX_DEPTH: Final = 1024


class SourceRecord(NamedTuple):
    """One top-level value of the export.

    Attributes:
        position: JSON array: 0-based element index; NDJSON: 1-based line number.
        value: the decoded value (normally a dict; the validator rejects anything else).
        text: the value's JSON text as read (decompressed, surrounding whitespace excluded): what
            a nightly sync fingerprints to tell an unchanged user without judging it again.
    """

    position: int
    value: object
    text: bytes

    @property
    def size(self) -> int:
        """Bytes of the value's JSON text."""
        return len(self.text)


def records(
    positions: Iterable[int], values: Iterable[object], texts: Iterable[bytes]
) -> list[SourceRecord]:
    """SourceRecords in bulk: built by `tuple.__new__` in one C-level loop (calling the class, a
    Python-level constructor, costs half as much again per record; a reader makes thousands a MB).
    """
    rows = zip(positions, values, texts, strict=True)
    return list(map(tuple.__new__, itertools.repeat(SourceRecord), rows))


def decode_error(text: bytes, exc: orjson.JSONDecodeError) -> tuple[str, int]:
    """What is wrong with ``text`` (which orjson refused) and at which byte of it."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as bad:
        return (
            "invalid UTF-8 (exports must be UTF-8 encoded: re-export or convert the file)",
            bad.start,
        )
    at = len(decoded[: exc.pos].encode("utf-8"))
    if "depth" in exc.msg or "recursion" in exc.msg.lower():
        return f"nested more than {MAX_DEPTH} levels deep, which the JSON decoder refuses", at
    return f"invalid JSON ({exc.msg})", at
