"""Streaming reader of user exports: a JSON array or NDJSON, optionally gzip, from a path or stdin.

Owns opening, gzip detection, format detection, top-level element boundaries and decoding (orjson),
and the raw input's size and sha256. It never judges a value: a non-object element is handed on as it
is, for the validator to reject. Memory stays flat: the input is read in blocks, never whole.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
import stat
import sys
import zlib
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Final, NoReturn, Protocol

import orjson

from orchestrator.errors import InputError

#: Default size of the reads from the source.
DEFAULT_BLOCK_SIZE: Final = 1 << 20
#: Default decompressed bytes parsed per batch. Small on purpose: a batch's objects are then still in
#: the CPU cache when the caller uses and frees them; with 1 MiB batches reading runs ~2x slower.
DEFAULT_BATCH_BYTES: Final = 64 << 10

_GZIP_MAGIC: Final = b"\x1f\x8b"
_BOM: Final = b"\xef\xbb\xbf"
_JSON_WS: Final = b" \t\n\r"
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
#: orjson refuses documents nested deeper than this.
MAX_DEPTH: Final = 1024
#: Default cap on one top-level value (or NDJSON line). A user over 512,000 bytes can never be
#: imported; a value this large means the file is not a user export (e.g. one `{"users": [...]}`
#: line), and the cap keeps memory bounded when that happens.
DEFAULT_MAX_VALUE_BYTES: Final = 64 << 20


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One top-level value of the export.

    Attributes:
        position: JSON array: 0-based element index; NDJSON: 1-based line number.
        value: the decoded value (normally a dict; the validator rejects anything else).
        size: bytes of the value's JSON text in the decompressed input, surrounding whitespace excluded.
    """

    position: int
    value: object
    size: int


_SLOT_SETTERS: Final = tuple(vars(SourceRecord)[name].__set__ for name in SourceRecord.__slots__)


def _build_records(
    positions: Iterable[int], values: list[object], sizes: Iterable[int]
) -> list[SourceRecord]:
    """SourceRecords in bulk, for half the cost of calling the class once per record.

    The frozen dataclass's __init__ sets each field through object.__setattr__ (~650 ns a record);
    setting the slots through their descriptors in C-level map() loops costs ~300 ns, and a reader
    makes over a thousand records per MB. Equivalent to SourceRecord(p, v, s) because the class has
    no __post_init__ and exactly these slots, in this order (test_reader checks).
    """
    records = [object.__new__(SourceRecord) for _ in values]
    for setter, column in zip(_SLOT_SETTERS, (positions, values, sizes), strict=True):
        deque(map(setter, records, column), maxlen=0)
    return records


class _Parser(Protocol):
    def feed(self, data: bytes) -> list[SourceRecord]: ...

    def finish(self) -> list[SourceRecord]: ...


class ExportReader:
    """Reads one export and yields its top-level values in batches.

    Example::

        reader = ExportReader("users.json.gz")
        for batch in reader.batches():
            for record in batch:
                ...
        manifest_input = (reader.bytes_read, reader.sha256)

    Attributes:
        path: the source as given (``-`` is stdin).
        format: ``json`` or ``ndjson``; set once the first batch has been produced.
        compressed: whether the input is gzip (known by magic bytes, never by name).
    """

    def __init__(
        self,
        source: str,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        """Prepare to read ``source``, a file path or ``-`` for stdin.

        The file is opened by batches(); a missing or unreadable path is reported here already.

        Args:
            source: the export's path, or ``-`` for stdin.
            block_size: bytes per read from the source.
            batch_bytes: decompressed bytes parsed per batch (at most ``block_size``).
            max_value_bytes: a larger top-level value (or NDJSON line) is an InputError.

        Raises:
            InputError: the path does not exist, is a directory or cannot be read.
            ValueError: a size is not positive.
        """
        if min(block_size, batch_bytes, max_value_bytes) < 1:
            raise ValueError(
                f"sizes must be positive, got {block_size=} {batch_bytes=} {max_value_bytes=}"
            )
        self.path = source
        self.format = ""
        self.compressed = False
        self._block_size = block_size
        self._batch_bytes = min(batch_bytes, block_size)
        self._max_value = max_value_bytes
        self._label = "<stdin>" if source == "-" else source
        self._hash = hashlib.sha256()
        self._bytes_read = 0
        self._started = False
        if source != "-":
            _check_readable(source)

    @property
    def bytes_read(self) -> int:
        """Raw bytes consumed from the source so far (the compressed size if gzip)."""
        return self._bytes_read

    @property
    def sha256(self) -> str:
        """Hex sha256 of the raw bytes consumed so far; the whole input's once batches() ended."""
        return self._hash.hexdigest()

    def where(self, position: int) -> str:
        """Name a record's position for people: ``index 12`` (JSON array) or ``line 13`` (NDJSON)."""
        return f"line {position}" if self.format == "ndjson" else f"index {position}"

    def batches(self) -> Generator[list[SourceRecord], None, None]:
        """Read the whole input, yielding its values in order, many per batch. Single use.

        Closing the generator early closes the file.

        Raises:
            InputError: the input cannot be opened or read, or is not a well-formed export.
        """
        if self._started:
            raise RuntimeError("ExportReader.batches() can be iterated only once")
        self._started = True
        for piece in self._pieces(raw_ndjson=False):
            assert isinstance(piece, list)  # NDJSON comes decoded unless raw_ndjson
            yield piece

    def pieces(self) -> Generator[list[SourceRecord] | NdjsonText, None, None]:
        """Like batches(), but NDJSON comes undecoded, so another process may decode it.

        A JSON array still comes as records; NDJSON comes as `NdjsonText` batches of whole lines
        (never empty), in order, whose `decode()` gives exactly the records batches() would.
        Single use, like batches().

        Raises:
            InputError: as batches() (an NDJSON line's own error is raised by its decode()).
        """
        if self._started:
            raise RuntimeError("ExportReader.batches() can be iterated only once")
        self._started = True
        yield from self._pieces(raw_ndjson=True)

    def _pieces(
        self, *, raw_ndjson: bool
    ) -> Generator[list[SourceRecord] | NdjsonText, None, None]:
        stream = self._open()
        try:
            blocks = self._decompressed(self._raw_blocks(stream))
            parser, head = self._detect(blocks)
            if raw_ndjson and isinstance(parser, _NdjsonParser):
                for data in itertools.chain((head,), blocks):
                    yield from parser.feed_raw(data, self._batch_bytes)
                text = parser.finish_raw()
                if text is not None:
                    yield text
                return
            for data in _sliced(itertools.chain((head,), blocks), self._batch_bytes):
                records = parser.feed(data)
                if records:
                    yield records
            records = parser.finish()
            if records:
                yield records
        finally:
            if self.path != "-":
                stream.close()

    def _open(self) -> IO[bytes]:
        if self.path == "-":
            if sys.stdin is None:
                raise InputError("there is no standard input to read", path=self._label)
            return sys.stdin.buffer
        try:
            # Unbuffered: we read large blocks ourselves, a buffer would only copy them.
            return open(self.path, "rb", buffering=0)  # closed by batches()
        except OSError as exc:
            raise InputError(
                f"cannot open the input: {exc.strerror or exc}", path=self._label
            ) from None

    def _raw_blocks(self, stream: IO[bytes]) -> Iterator[bytes]:
        while True:
            try:
                data = stream.read(self._block_size)
            except OSError as exc:
                raise InputError(
                    f"cannot read the input: {exc.strerror or exc}", path=self._label
                ) from None
            if not data:
                return
            self._hash.update(data)
            self._bytes_read += len(data)
            yield data

    def _decompressed(self, raw: Iterator[bytes]) -> Iterator[bytes]:
        head = b""
        for data in raw:
            head += data
            if len(head) >= len(_GZIP_MAGIC):
                break
        self.compressed = head.startswith(_GZIP_MAGIC)
        if not self.compressed:
            if head:
                yield head
            yield from raw
            return
        yield from _gunzip(head, raw, self._batch_bytes, self._label)

    def _detect(self, blocks: Iterator[bytes]) -> tuple[_Parser, bytes]:
        """Skip a BOM and leading whitespace: the first other byte decides the format.

        Returns the parser and the data from that byte on, which the parser must be fed first.
        """
        head = b""
        skipped = newlines = 0
        bom_checked = False
        for data in blocks:
            head += data
            if not bom_checked:
                if len(head) < len(_BOM) and _BOM.startswith(head):
                    continue  # too short to tell a BOM from data yet
                bom_checked = True
                if head.startswith(_BOM):
                    head, skipped = head[len(_BOM) :], len(_BOM)
            stripped = head.lstrip(_JSON_WS)
            skipped += len(head) - len(stripped)
            newlines += head.count(b"\n", 0, len(head) - len(stripped))
            if stripped:
                return self._parser_for(stripped[0], skipped, newlines), stripped
            head = b""
        if head:  # the input was only the first byte or two of a BOM
            return self._parser_for(head[0], skipped, newlines), head
        raise InputError(
            "the input is empty (no JSON array or NDJSON users in it): check the file or pipe",
            path=self._label,
        )

    def _parser_for(self, first: int, skipped: int, newlines: int) -> _Parser:
        if first == ord("["):
            self.format = "json"
            return _JsonArrayParser(self._label, offset=skipped, max_value=self._max_value)
        if first == ord("{"):
            self.format = "ndjson"
            return _NdjsonParser(self._label, lines_before=newlines, max_value=self._max_value)
        raise InputError(
            "the input is neither a JSON array (starting with '[') nor NDJSON (one object per "
            "line, starting with '{'): export the users as JSON",
            path=self._label,
            where=f"byte {skipped}",
        )


def _sliced(blocks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """The same bytes, in pieces of at most ``size``."""
    for block in blocks:
        if len(block) <= size:
            yield block
        else:
            view = memoryview(block)
            for start in range(0, len(block), size):
                yield bytes(view[start : start + size])


def _check_readable(path: str) -> None:
    """Refuse early a path that batches() could not open; never opens it (it may be a FIFO)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise InputError(f"cannot open the input: {exc.strerror or exc}", path=path) from None
    if stat.S_ISDIR(mode):
        raise InputError("cannot open the input: it is a directory", path=path)
    if not os.access(path, os.R_OK):
        raise InputError("cannot open the input: permission denied", path=path)


def _gunzip(head: bytes, raw: Iterator[bytes], limit: int, label: str) -> Iterator[bytes]:
    """Decompress gzip members (several may be concatenated), at most ``limit`` bytes per block."""
    decompressor: zlib._Decompress | None = None
    for data in itertools.chain((head,), raw):
        while data:
            if decompressor is None:
                data = data.lstrip(b"\0")  # zero padding after the last member is tolerated
                if not data:
                    break
                decompressor = zlib.decompressobj(wbits=31)  # 31: gzip header, 32 KiB window
            yield from _inflate(decompressor, data, limit, label)
            data = b""
            if decompressor.eof:  # another member may follow
                data, decompressor = decompressor.unused_data, None
    if decompressor is not None:
        raise InputError(
            "the gzip stream ends before its end marker: the file is truncated "
            "(an interrupted download or copy?)",
            path=label,
        )


def _inflate(
    decompressor: zlib._Decompress, data: bytes, limit: int, label: str
) -> Iterator[bytes]:
    while True:
        try:
            out = decompressor.decompress(data, limit)
        except zlib.error as exc:
            raise InputError(
                f"the gzip data is corrupt ({exc}): re-download or re-compress the export",
                path=label,
            ) from None
        if out:
            yield out
        data = decompressor.unconsumed_tail
        # A full block may leave output pending inside zlib even with no input left: ask again.
        if decompressor.eof or (not data and len(out) < limit):
            return


def _decode_error(text: bytes, exc: orjson.JSONDecodeError) -> tuple[str, int]:
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


class _NdjsonParser:
    """One JSON value per line; blank lines are skipped, line numbers count every line."""

    def __init__(self, label: str, *, lines_before: int, max_value: int) -> None:
        self._label = label
        self._line = lines_before  # lines completely consumed so far
        self._max_value = max_value
        # The unfinished last line, in pieces (views of the blocks): joined once, when done.
        self._rest: list[memoryview] = []
        self._rest_size = 0

    def feed(self, data: bytes) -> list[SourceRecord]:
        return [record for text in self.feed_raw(data, len(data)) for record in text.decode()]

    def finish(self) -> list[SourceRecord]:
        text = self.finish_raw()
        return text.decode() if text is not None else []

    def feed_raw(self, data: bytes, size: int) -> Iterator[NdjsonText]:
        """The complete lines that `data` finishes, undecoded, in texts of at most about `size`
        bytes: each window of `size` bytes gives the lines that end in it.

        Each byte is copied once: a text is one slice of `data`, or, after a line left unfinished,
        one join of its pieces (kept as views) and the slice.
        """
        view = memoryview(data)
        for start in range(0, len(data), size):
            stop = min(start + size, len(data))
            cut = data.rfind(b"\n", start, stop)
            if cut < 0:
                self._keep(view[start:stop])
                continue
            text = b"".join((*self._rest, view[start:cut])) if self._rest else data[start:cut]
            self._rest.clear()
            self._rest_size = 0
            self._keep(view[cut + 1 : stop])
            lines_before = self._line
            self._line += text.count(b"\n") + 1
            yield NdjsonText(self._label, lines_before, text)

    def finish_raw(self) -> NdjsonText | None:
        rest = b"".join(self._rest)
        if not rest.strip():
            return None
        self._line += 1
        return NdjsonText(self._label, self._line - 1, rest)

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


@dataclass(frozen=True, slots=True)
class NdjsonText:
    """Whole NDJSON lines, not yet decoded: what `ExportReader.pieces()` hands out (picklable).

    Attributes:
        label: the input's name, for errors.
        lines_before: lines of the input before this text (its first line is number this + 1).
        text: the lines joined by newlines (no final newline); blank lines included.
    """

    label: str
    lines_before: int
    text: bytes

    def decode(self) -> list[SourceRecord]:
        """The records of the non-blank lines, numbered as in the whole input.

        Raises:
            InputError: a line is not valid JSON (its line number named).
        """
        lines = self.text.split(b"\n")
        first = self.lines_before + 1
        try:
            values = list(map(orjson.loads, lines))  # one C-level loop: the fast path
        except orjson.JSONDecodeError:
            return self._one_by_one(lines)
        sizes = map(len, map(bytes.strip, lines))
        return _build_records(range(first, first + len(lines)), values, sizes)

    def _one_by_one(self, lines: list[bytes]) -> list[SourceRecord]:
        records = []
        for number, line in enumerate(lines, self.lines_before + 1):
            size = len(line.strip())
            if not size:
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                what, at = _decode_error(line, exc)
                raise InputError(
                    f"{what} at byte {at + 1} of the line; NDJSON needs one complete JSON "
                    "value per line",
                    path=self.label,
                    where=f"line {number}",
                ) from None
            records.append(SourceRecord(number, value, size))
        return records


_FIRST, _VALUE, _SEP, _END = range(4)  # after '[', after ',', after a value, after ']'


class _JsonArrayParser:
    """Incremental parser of one top-level JSON array, element by element.

    Fast path: split at `}` `,` `{` gaps and decode each piece with orjson; a piece that does not
    decode (the gap was inside a string or a nested array, or the element is broken) is extended to
    the next gap a few times, then taken exactly by bracket matching, which also locates errors to
    the byte.
    """

    def __init__(self, label: str, *, offset: int, max_value: int) -> None:
        self._label = label
        self._max_value = max_value
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
        values: list[object] = []
        sizes: list[int] = []
        extended = 0
        for gap in _OBJECT_GAP.finditer(buf, start):
            end = gap.start() + 1
            try:
                values.append(orjson.loads(buf[start:end]))
            except orjson.JSONDecodeError:
                # The gap may be inside the element (a nested array of objects, a string): extend
                # it to the next gap. Never a wrong split: where a JSON value ends is fixed by where
                # it starts, so a piece from the element's start that decodes is the element.
                extended += 1
                if extended > _MAX_EXTENSIONS:
                    break  # _exact() takes this element
                continue
            sizes.append(end - start)
            start = gap.end() - 1
            extended = 0
        if values:
            first = self._index
            out.extend(_build_records(range(first, first + len(values)), values, sizes))
            self._pos, self._index, self._state = start, first + len(values), _VALUE

    def _exact(self, out: list[SourceRecord], *, eof: bool) -> bool:
        """Take one element by bracket matching; False when it is not complete in the buffer."""
        buf, start = self._buf, self._pos
        end = _value_end(buf, start, eof=eof)
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
            what, at = _decode_error(text, exc)
            self._fail(f"{what} in element {self._index}", start + at)
        out.append(SourceRecord(self._index, value, end - start))
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

    def _fail_at_end(self) -> None:
        if self._state != _END:
            self._fail(
                f"the input ends after {self._index} elements without the closing ']' of the "
                "array: the file is truncated",
                len(self._buf),
            )

    def _fail(self, message: str, pos: int) -> NoReturn:
        raise InputError(message, path=self._label, where=f"byte {self._offset + pos}")


def _value_end(buf: bytes, start: int, *, eof: bool) -> int | None:
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


def input_fingerprint(path: str, *, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[int, str]:
    """Size and sha256 of a file's raw bytes, read in blocks; used to check a resume's input.

    Args:
        path: the file (not ``-``: stdin cannot be read twice).
        block_size: bytes read at a time.

    Returns:
        ``(size, sha256_hex)``, the same as ExportReader's bytes_read and sha256 after a full read.

    Raises:
        InputError: the file cannot be opened or read.
    """
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb", buffering=0) as stream:
            while data := stream.read(block_size):
                digest.update(data)
                size += len(data)
    except OSError as exc:
        raise InputError(f"cannot read the input: {exc.strerror or exc}", path=path) from None
    return size, digest.hexdigest()


#: Bytes sampled from the start of a file to estimate how many users it holds.
_ESTIMATE_SAMPLE_BYTES: Final = 1 << 20


def estimate_users(path: str) -> int | None:
    """About how many users an uncompressed export file holds, from its first MiB (None: unknown).

    Counts the lines of NDJSON, or the `"email"` keys of a JSON array (every importable user has
    one), in the sample and scales by the file size, with 5% to spare. Unknown for stdin, gzip and
    unreadable files. It only sizes memory up front (duplicate detection): nothing else depends
    on its accuracy.
    """
    if path == "-":
        return None
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            sample = file.read(_ESTIMATE_SAMPLE_BYTES)
    except OSError:
        return None
    if sample.startswith(_GZIP_MAGIC):
        return None
    ndjson = sample.lstrip(_BOM + _JSON_WS).startswith(b"{")
    users = sample.count(b"\n") if ndjson else sample.count(b'"email"')
    if not users:
        return None
    return math.ceil(users * size / len(sample) * 1.05)
