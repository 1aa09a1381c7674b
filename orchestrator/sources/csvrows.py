"""CSV with a header row, streamed: each record is one row as {column: cell}.

Rows may span lines (a quoted cell holding a newline): the text is cut at the last newline outside
quotes, and the csv module reads each complete piece. Positions are the line a row ends on (the
header is line 1).
"""

from __future__ import annotations

import codecs
import csv
import io
from typing import Final, NoReturn

from orchestrator.errors import InputError
from orchestrator.sources.records import SourceRecord

#: Cells are joined by this (not found in CSV text) to make a record's text.
_CELL_SEPARATOR: Final = "\x1f"


class CsvParser:
    """Incremental parser of a CSV export with a header row."""

    def __init__(self, label: str, *, lines_before: int, max_value: int) -> None:
        self._label = label
        self._lines = lines_before  # lines completely consumed so far
        self._max_value = max_value
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._carry = ""
        self.header: list[str] | None = None

    def feed(self, data: bytes) -> list[SourceRecord]:
        try:
            text = self._carry + self._decoder.decode(data)
        except UnicodeDecodeError:
            self._fail("invalid UTF-8 (exports must be UTF-8 encoded: convert the file)")
        cut = _last_record_end(text)
        if cut < 0:
            if len(text) > self._max_value:
                self._fail(f"a row is longer than {self._max_value} bytes: is this a CSV export?")
            self._carry = text
            return []
        self._carry = text[cut + 1 :]
        return self._rows(text[: cut + 1])

    def finish(self) -> list[SourceRecord]:
        try:
            text = self._carry + self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            self._fail("invalid UTF-8 (exports must be UTF-8 encoded: convert the file)")
        self._carry = ""
        if text.count('"') % 2:
            self._fail("the input ends inside a quoted cell: the file is truncated")
        return self._rows(text) if text.strip() else []

    def _rows(self, text: str) -> list[SourceRecord]:
        reader = csv.reader(io.StringIO(text, newline=""))
        lines_before = self._lines
        records: list[SourceRecord] = []
        try:
            for row in reader:
                line = lines_before + reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if self.header is None:
                    self.header = [name.strip() for name in row]
                    continue
                if len(row) != len(self.header):
                    raise InputError(
                        f"the row has {len(row)} cells, the header {len(self.header)}: every row "
                        "needs one cell per column (quote cells that hold commas)",
                        path=self._label,
                        where=f"line {line}",
                    )
                text_of_row = _CELL_SEPARATOR.join(row).encode()
                records.append(
                    SourceRecord(line, dict(zip(self.header, row, strict=True)), text_of_row)
                )
        except csv.Error as exc:
            self._fail(f"the CSV is malformed ({exc})", lines_before + reader.line_num)
        self._lines = lines_before + text.count("\n")
        return records

    def _fail(self, message: str, line: int | None = None) -> NoReturn:
        where = f"line {line if line is not None else self._lines + 1}"
        raise InputError(message, path=self._label, where=where)


def _last_record_end(text: str) -> int:
    """Index of the last newline that ends a record (not inside a quoted cell), or -1."""
    cut = text.rfind("\n")
    while cut >= 0:
        if text.count('"', 0, cut) % 2 == 0:
            return cut
        cut = text.rfind("\n", 0, cut)
    return -1
