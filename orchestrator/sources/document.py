"""One top-level JSON object whose users are one array member (`{"users": [...]}`), streamed.

Firebase, Keycloak and Cognito export users this way, compact or pretty. The members before and after
the users array are read whole (each bounded by the reader's cap) and skipped; the users array is
parsed element by element as it streams, so memory stays flat whatever its size.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final, NoReturn

import orjson

from orchestrator.errors import InputError
from orchestrator.sources.jsonarray import JsonArrayParser, value_end
from orchestrator.sources.records import SourceRecord

_WS_RUN: Final = re.compile(rb"[ \t\n\r]*")
_STRING: Final = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)

_OPEN, _KEY, _COLON, _VALUE, _SEP, _ARRAY, _END = range(7)


class ObjectParser:
    """Incremental parser of one JSON object, yielding the elements of its users array.

    Args:
        label: the input's name, for errors.
        offset: the stream offset of the '{'.
        max_value: a larger member (or user) is an InputError.
        users_keys: the names the users array may have (the first one found is read).

    Attributes:
        members: the names of the members read so far, in order.
        users_key: the member the users came from, once found.
    """

    def __init__(
        self, label: str, *, offset: int, max_value: int, users_keys: Collection[str]
    ) -> None:
        self._label = label
        self._max_value = max_value
        self._users_keys = users_keys
        self._buf = b""
        self._pos = 0
        self._offset = offset
        self._state = _OPEN
        self._key = ""
        self._array: JsonArrayParser | None = None
        self.members: list[str] = []
        self.users_key: str | None = None

    def feed(self, data: bytes) -> list[SourceRecord]:
        if self._state == _ARRAY:
            return self._feed_array(data, eof=False)
        self._take(data)
        return self._parse(eof=False)

    def finish(self) -> list[SourceRecord]:
        if self._state == _ARRAY:
            return self._feed_array(b"", eof=True)
        return self._parse(eof=True)

    def _take(self, data: bytes) -> None:
        self._offset += self._pos
        self._buf = self._buf[self._pos :] + data
        self._pos = 0

    def _feed_array(self, data: bytes, *, eof: bool) -> list[SourceRecord]:
        array = self._array
        assert array is not None
        records = array.finish() if eof and not data else array.feed(data)
        if eof and data:
            records += array.finish()
        if not array.done:
            return records
        # The users array is closed: what followed it is the rest of the object.
        self._state = _SEP
        self._offset, self._buf, self._pos = array.end_offset, array.rest, 0
        self._array = None
        return records + self._parse(eof=eof)

    def _parse(self, *, eof: bool) -> list[SourceRecord]:
        buf = self._buf
        while True:
            pos = self._pos = _WS_RUN.match(buf, self._pos).end()  # type: ignore[union-attr]
            if pos == len(buf):
                if eof:
                    self._fail_at_end()
                return []
            char = buf[pos]
            state = self._state
            if state == _END:
                self._fail("unexpected data after the end of the JSON object", pos)
            if state == _OPEN:
                self._pos, self._state = pos + 1, _KEY  # detection put the '{' first
            elif state == _KEY:
                if char == ord("}") and not self.members:
                    self._pos, self._state = pos + 1, _END
                    continue
                if not self._key_at(pos):
                    return []
            elif state == _COLON:
                if char != ord(":"):
                    self._fail(f"expected ':' after the member name {self._key!r}", pos)
                self._pos, self._state = pos + 1, _VALUE
            elif state == _VALUE:
                if self._key in self._users_keys and self.users_key is None and char == ord("["):
                    return self._start_array(pos, eof=eof)
                end = value_end(buf, pos, eof=eof)
                if end is None:
                    if len(buf) - pos > self._max_value:
                        self._fail(
                            f"the member {self._key!r} is larger than {self._max_value} bytes",
                            pos,
                        )
                    return []
                self._pos, self._state = end, _SEP
            elif state == _SEP:
                if char == ord(","):
                    self._pos, self._state = pos + 1, _KEY
                elif char == ord("}"):
                    self._pos, self._state = pos + 1, _END
                else:
                    self._fail("expected ',' or '}' between the members of the object", pos)

    def _key_at(self, pos: int) -> bool:
        """Read a member name at `pos`; False when it is not complete in the buffer yet."""
        buf = self._buf
        if buf[pos] != ord('"'):
            self._fail("expected a member name (a string) in the JSON object", pos)
        match = _STRING.match(buf, pos)
        if match is None:
            return False
        try:
            key = orjson.loads(match.group())
        except orjson.JSONDecodeError:
            self._fail("the member name is not a valid JSON string", pos)
        self._key = str(key)
        self.members.append(self._key)
        self._pos, self._state = match.end(), _COLON
        return True

    def _start_array(self, pos: int, *, eof: bool) -> list[SourceRecord]:
        self.users_key = self._key
        self._array = JsonArrayParser(
            self._label, offset=self._offset + pos, max_value=self._max_value, embedded=True
        )
        self._state = _ARRAY
        rest, self._buf, self._pos = self._buf[pos:], b"", 0
        return self._feed_array(rest, eof=eof)

    def _fail_at_end(self) -> None:
        if self._state != _END:
            self._fail(
                "the input ends inside the JSON object: the file is truncated", len(self._buf)
            )

    def _fail(self, message: str, pos: int) -> NoReturn:
        raise InputError(message, path=self._label, where=f"byte {self._offset + pos}")
