"""One top-level JSON array of users, compact or pretty, parsed element by element as it streams."""

from __future__ import annotations

import re
from typing import Final, NoReturn

import orjson

from orchestrator.errors import InputError
from orchestrator.sources.records import SourceRecord, decode_error, records

_WS_RUN: Final = re.compile(rb"[ \t\n\r]*")
#: `}` `,` `{` with only whitespace between: where two objects of an array of users usually meet.
#: A match may also sit inside a string or a nested array; each piece is then checked by decoding it.
_OBJECT_GAP: Final = re.compile(rb"\}[ \t\n\r]*,[ \t\n\r]*\{")
#: Everything up to and including the next bracket outside a string (possessive: no backtracking).
_TO_BRACKET: Final = re.compile(
    rb'(?:[^"\[\]{}]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+[\[\]{}]', re.DOTALL
)
_STRING: Final = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_SCALAR: Final = re.compile(rb'[^ \t\n\r,\[\]{}"]*')
_OPENERS: Final = frozenset(b"[{")
#: Times a piece that does not decode is extended to the next gap before bracket matching instead.
_MAX_EXTENSIONS: Final = 4
#: The first key of an object, as its text starts: `{`, the quoted key, `:`.
_FIRST_KEY: Final = re.compile(rb'\{[ \t\n\r]*("[^"\\]*+(?:\\.[^"\\]*+)*+")[ \t\n\r]*:', re.DOTALL)
#: Pieces that did not decode before the gaps are judged: too many, and they change.
_MISSES_JUDGED: Final = 16

_FIRST, _VALUE, _SEP, _END = range(4)  # after '[', after ',', after a value, after ']'


class JsonArrayParser:
    """Incremental parser of one top-level JSON array, element by element.

    Fast path: split at `}` `,` `{` gaps and decode each piece with orjson; a piece that does not
    decode (the gap was inside a string or a nested array, or the element is broken) is extended to
    the next gap a few times, then taken exactly by bracket matching, which also locates errors to
    the byte.

    Where most gaps are inside the elements (each Cognito user holds an array of attribute
    objects), the split looks only for gaps followed by the key an element starts with
    (`},{"Username":`); if that misses as often, it goes back to plain gaps for good.
    """

    def __init__(self, label: str, *, offset: int, max_value: int, embedded: bool = False) -> None:
        """Parse an array whose '[' starts the first data fed.

        Args:
            label: the input's name, for errors.
            offset: the stream offset of the '[' (errors name bytes of the whole input).
            max_value: a larger element is an InputError.
            embedded: the array is a member of a larger document: parsing stops after its ']',
                and `rest` holds what followed (`done` becomes True).
        """
        self._label = label
        self._max_value = max_value
        self._embedded = embedded
        #: Whether the closing ']' of an embedded array was read; `rest` is what came after it.
        self.done = False
        self.rest = b""
        self._buf = b""
        self._pos = 0  # next unread byte of _buf
        self._offset = offset  # stream offset of _buf[0]
        self._state = _FIRST
        self._index = 0
        self._opened = False
        self._new: list[bytes] = []  # data fed but not yet joined to _buf
        self._new_size = 0
        # An element larger than what is buffered: parse again only once this much more arrived,
        # so a huge element is rescanned a logarithmic number of times, not once per feed.
        self._wait_for = 0
        # Where the fast path splits, and how well it has done since it last changed.
        self._gap = _OBJECT_GAP
        self._may_learn = True
        self._decoded = 0
        self._missed = 0

    def feed(self, data: bytes) -> list[SourceRecord]:
        self._new.append(data)
        self._new_size += len(data)
        if self._new_size < self._wait_for:
            return []
        return self._parse_new(eof=False)

    def finish(self) -> list[SourceRecord]:
        return self._parse_new(eof=True)

    def _parse_new(self, *, eof: bool) -> list[SourceRecord]:
        self._offset += self._pos
        self._buf = b"".join((self._buf[self._pos :], *self._new))
        self._pos = 0
        self._new.clear()
        self._new_size = 0
        records: list[SourceRecord] = []
        self._parse(records, eof=eof)
        return records

    def _parse(self, out: list[SourceRecord], *, eof: bool) -> None:
        buf = self._buf
        if not self._opened:  # format detection put the '[' first
            self._opened, self._pos = True, 1
        while True:
            if self._state == _END and self._embedded:
                self.done, self.rest = True, buf[self._pos :]
                return
            pos = self._pos = _WS_RUN.match(buf, self._pos).end()  # type: ignore[union-attr]
            if pos == len(buf):
                if eof:
                    self._fail_at_end()
                return
            char = buf[pos]
            if self._state == _END:
                self._fail("unexpected data after the closing ']' of the array", pos)
            elif self._state == _SEP:
                self._separator(char, pos)
            elif char == ord("]"):
                if self._state == _VALUE:
                    self._fail("a ',' is followed by ']' (trailing comma)", pos)
                self._state, self._pos = _END, pos + 1
            else:
                if char == ord("{"):
                    self._fast(out)
                if not self._exact(out, eof=eof):
                    self._wait_for = self._unfinished_size()
                    return
                self._wait_for = 0

    def _separator(self, char: int, pos: int) -> None:
        if char == ord(","):
            self._state = _VALUE
        elif char == ord("]"):
            self._state = _END
        else:
            self._fail(f"expected ',' or ']' after element {self._index - 1}", pos)
        self._pos = pos + 1

    def _fast(self, out: list[SourceRecord]) -> None:
        buf, start = self._buf, self._pos
        gaps = self._gap
        keyed = gaps is not _OBJECT_GAP
        values: list[object] = []
        texts: list[bytes] = []
        extended = missed = 0
        for gap in gaps.finditer(buf, start):
            end = gap.start() + 1
            text = buf[start:end]
            try:
                values.append(orjson.loads(text))
            except orjson.JSONDecodeError:
                # The gap may be inside the element (a nested array of objects, a string): extend
                # it to the next gap. Never a wrong split: where a JSON value ends is fixed by where
                # it starts, so a piece from the element's start that decodes is the element. A
                # keyed piece that does not decode may hold two elements: no extension helps.
                missed += 1
                extended += 1
                if keyed or extended > _MAX_EXTENSIONS:
                    break  # _exact() takes this element
                continue
            texts.append(text)
            start = gap.end() - 1
            extended = 0
        if values:
            first = self._index
            out.extend(records(range(first, first + len(values)), values, texts))
            self._pos, self._index, self._state = start, first + len(values), _VALUE
        self._judge_gaps(len(values), missed, start)

    def _judge_gaps(self, decoded: int, missed: int, start: int) -> None:
        """Change where the fast path splits when its pieces miss as often as every fourth time:
        plain gaps -> gaps before the first key of the element at `start` -> plain gaps for good."""
        self._decoded += decoded
        self._missed += missed
        if self._missed < _MISSES_JUDGED or self._missed * 4 <= self._decoded:
            return
        self._decoded = self._missed = 0
        if self._gap is not _OBJECT_GAP:
            self._gap, self._may_learn = _OBJECT_GAP, False
        elif self._may_learn and (first_key := _FIRST_KEY.match(self._buf, start)):
            self._gap = re.compile(
                rb"\}[ \t\n\r]*,[ \t\n\r]*\{(?=[ \t\n\r]*"
                + re.escape(first_key.group(1))
                + rb"[ \t\n\r]*:)"
            )

    def _exact(self, out: list[SourceRecord], *, eof: bool) -> bool:
        """Take one element by bracket matching; False when it is not complete in the buffer."""
        buf, start = self._buf, self._pos
        end = value_end(buf, start, eof=eof)
        if end is None:
            if eof:
                self._fail(
                    f"the input ends inside element {self._index} (which starts at byte "
                    f"{self._offset + start}): the file is truncated",
                    len(buf),
                )
            return False
        text = buf[start:end]
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            what, at = decode_error(text, exc)
            self._fail(f"{what} in element {self._index}", start + at)
        out.append(SourceRecord(self._index, value, text))
        self._index += 1
        self._pos, self._state = end, _SEP
        return True

    def _unfinished_size(self) -> int:
        """Bytes of the element being read so far; refuses one too large to be a user."""
        size = len(self._buf) - self._pos
        if size > self._max_value:
            self._fail(
                f"element {self._index} is larger than {self._max_value} bytes, far more than "
                "any user: is this a user export?",
                self._pos,
            )
        return size

    @property
    def end_offset(self) -> int:
        """The stream offset of the first byte not consumed yet."""
        return self._offset + self._pos

    def _fail_at_end(self) -> None:
        if self._state != _END:
            self._fail(
                f"the input ends after {self._index} elements without the closing ']' of the "
                "array: the file is truncated",
                len(self._buf),
            )

    def _fail(self, message: str, pos: int) -> NoReturn:
        raise InputError(message, path=self._label, where=f"byte {self._offset + pos}")


def value_end(buf: bytes, start: int, *, eof: bool) -> int | None:
    """End of the JSON value starting at ``buf[start]``, or None if it continues past the buffer.

    Brackets are matched by count only and scalars are delimited loosely: orjson then checks the
    text, so a malformed value is still refused, with its error located inside it.
    """
    char = buf[start]
    if char in _OPENERS:
        depth = 0
        pos = start
        while match := _TO_BRACKET.match(buf, pos):
            pos = match.end()
            depth += 1 if buf[pos - 1] in _OPENERS else -1
            if depth == 0:
                return pos
        return None
    if char == ord('"'):
        string = _STRING.match(buf, start)
        return string.end() if string else None
    end = _SCALAR.match(buf, start).end()  # type: ignore[union-attr]
    if end == start:
        return start + 1  # a stray '}' or similar: one byte, for orjson to refuse
    return None if end == len(buf) and not eof else end
