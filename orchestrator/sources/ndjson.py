"""NDJSON, Auth0's export format: one JSON value per line, decoded a batch of lines at a time."""

from __future__ import annotations

import orjson

from orchestrator.errors import InputError
from orchestrator.sources.records import SourceRecord, decode_error, records


class NdjsonParser:
    """One JSON value per line; blank lines are skipped, line numbers count every line."""

    def __init__(self, label: str, *, lines_before: int, max_value: int) -> None:
        self._label = label
        self._line = lines_before  # lines completely consumed so far
        self._max_value = max_value
        # The unfinished last line, in pieces (views of the blocks): joined once, when done.
        self._rest: list[memoryview] = []
        self._rest_size = 0

    def feed(self, data: bytes) -> list[SourceRecord]:
        """The records of the lines that `data` completes."""
        cut = data.rfind(b"\n")
        if cut < 0:
            self._keep(memoryview(data))
            return []
        text = b"".join((*self._rest, memoryview(data)[:cut])) if self._rest else data[:cut]
        self._rest.clear()
        self._rest_size = 0
        self._keep(memoryview(data)[cut + 1 :])
        return self._decode(text)

    def finish(self) -> list[SourceRecord]:
        rest = b"".join(self._rest)
        self._rest.clear()
        return self._decode(rest) if rest.strip() else []

    def _keep(self, piece: memoryview) -> None:
        if not piece:
            return
        self._rest.append(piece)
        self._rest_size += len(piece)
        if self._rest_size > self._max_value:
            raise InputError(
                f"the line is longer than {self._max_value} bytes, far more than any user: NDJSON "
                "needs one user per line (if the users sit in one object such as "
                '{"users": [...]}, extract the array first, e.g. with jq)',
                path=self._label,
                where=f"line {self._line + 1}",
            )

    def _decode(self, text: bytes) -> list[SourceRecord]:
        """The records of the non-blank lines of `text` (whole lines, no final newline)."""
        lines = text.split(b"\n")
        first = self._line + 1
        self._line += len(lines)
        try:
            values = list(map(orjson.loads, lines))  # one C-level loop: the fast path
        except orjson.JSONDecodeError:
            return self._one_by_one(lines, first)
        return records(range(first, first + len(lines)), values, map(bytes.strip, lines))

    def _one_by_one(self, lines: list[bytes], first: int) -> list[SourceRecord]:
        records = []
        for number, line in enumerate(lines, first):
            stripped = line.strip()
            if not stripped:
                continue
            try:
                value = orjson.loads(stripped)
            except orjson.JSONDecodeError as exc:
                what, at = decode_error(stripped, exc)
                at += len(line) - len(line.lstrip())
                raise InputError(
                    f"{what} at byte {at + 1} of the line; NDJSON needs one complete JSON "
                    "value per line",
                    path=self._label,
                    where=f"line {number}",
                ) from None
            records.append(SourceRecord(number, value, stripped))
        return records
