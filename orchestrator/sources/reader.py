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
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import IO, Final, Protocol

from orchestrator.errors import InputError
from orchestrator.sources.csvrows import CsvParser
from orchestrator.sources.document import ObjectParser
from orchestrator.sources.jsonarray import JsonArrayParser
from orchestrator.sources.ndjson import NdjsonParser
from orchestrator.sources.records import SourceRecord

#: Default size of the reads from the source.
DEFAULT_BLOCK_SIZE: Final = 1 << 20
#: Default decompressed bytes parsed per batch. Small on purpose: a batch's objects are then still in
#: the CPU cache when the caller uses and frees them; with 1 MiB batches reading runs ~2x slower.
DEFAULT_BATCH_BYTES: Final = 64 << 10

_GZIP_MAGIC: Final = b"\x1f\x8b"
_BOM: Final = b"\xef\xbb\xbf"
_JSON_WS: Final = b" \t\n\r"
#: Default cap on one top-level value (or NDJSON line). A user over 512,000 bytes can never be
#: imported; a value this large means the file is not a user export (e.g. one `{"users": [...]}`
#: line), and the cap keeps memory bounded when that happens.
DEFAULT_MAX_VALUE_BYTES: Final = 64 << 20


@dataclass(frozen=True, slots=True)
class Shapes:
    """The shapes an input may take (what a source format writes).

    Attributes:
        arrays: one JSON array of users.
        lines: NDJSON, one user a line.
        members: the names of the member holding the users in one JSON object (`{"users": [...]}`).
        csv: CSV with a header row.
        description: how to name the format in messages.
    """

    arrays: bool = True
    lines: bool = True
    members: frozenset[str] = frozenset()
    csv: bool = False
    description: str = "--from import (a JSON array or NDJSON of users)"


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
        fingerprint: bool = True,
        accepts: Shapes | None = None,
    ) -> None:
        """Prepare to read ``source``, a file path or ``-`` for stdin.

        The file is opened by batches(); a missing or unreadable path is reported here already.

        Args:
            source: the export's path, or ``-`` for stdin.
            block_size: bytes per read from the source.
            batch_bytes: decompressed bytes parsed per batch (at most ``block_size``).
            max_value_bytes: a larger top-level value (or NDJSON line) is an InputError.
            fingerprint: compute the input's sha256 (a plan records it; a diff does not need it).
            accepts: the shapes the input may have (default: a JSON array or NDJSON).

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
        self._accepts = accepts or Shapes()
        self._object: ObjectParser | None = None
        self.compressed = False
        self._block_size = block_size
        self._batch_bytes = min(batch_bytes, block_size)
        self._max_value = max_value_bytes
        #: How messages name the input.
        self.label = "<stdin>" if source == "-" else source
        self._hash = hashlib.sha256() if fingerprint else None
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
        if self._hash is None:
            raise RuntimeError("this reader was made without its input's fingerprint")
        return self._hash.hexdigest()

    def where(self, position: int) -> str:
        """Name a record's position for people: ``index 12`` (JSON array), ``line 13`` (NDJSON,
        CSV) or ``users[12]`` (the users member of one object)."""
        if self.format in ("ndjson", "csv"):
            return f"line {position}"
        if self._object is not None:
            return f"{self._object.users_key}[{position}]"
        return f"index {position}"

    def batches(self) -> Generator[list[SourceRecord], None, None]:
        """Read the whole input, yielding its values in order, many per batch. Single use.

        Closing the generator early closes the file.

        Raises:
            InputError: the input cannot be opened or read, or is not a well-formed export.
        """
        if self._started:
            raise RuntimeError("ExportReader.batches() can be iterated only once")
        self._started = True
        stream = self._open()
        try:
            blocks = self._decompressed(self._raw_blocks(stream))
            parser, head = self._detect(blocks)
            for data in _sliced(itertools.chain((head,), blocks), self._batch_bytes):
                records = parser.feed(data)
                if records:
                    yield records
            records = parser.finish()
            if records:
                yield records
            if isinstance(parser, ObjectParser) and parser.users_key is None:
                wanted = " or ".join(repr(key) for key in sorted(self._accepts.members))
                raise InputError(
                    f"the JSON object has no {wanted} member holding the users (it has "
                    f"{', '.join(map(repr, parser.members[:8])) or 'no members'})",
                    path=self.label,
                )
        finally:
            if self.path != "-":
                stream.close()

    def _open(self) -> IO[bytes]:
        if self.path == "-":
            if sys.stdin is None:
                raise InputError("there is no standard input to read", path=self.label)
            return sys.stdin.buffer
        try:
            # Unbuffered: we read large blocks ourselves, a buffer would only copy them.
            return open(self.path, "rb", buffering=0)  # closed by batches()
        except OSError as exc:
            raise InputError(
                f"cannot open the input: {exc.strerror or exc}", path=self.label
            ) from None

    def _raw_blocks(self, stream: IO[bytes]) -> Iterator[bytes]:
        while True:
            try:
                data = stream.read(self._block_size)
            except OSError as exc:
                raise InputError(
                    f"cannot read the input: {exc.strerror or exc}", path=self.label
                ) from None
            if not data:
                return
            if self._hash is not None:
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
        yield from _gunzip(head, raw, self._batch_bytes, self.label)

    def _detect(self, blocks: Iterator[bytes]) -> tuple[_Parser, bytes]:
        """Skip a BOM and leading whitespace; the first line of data decides the shape.

        Returns the parser and the data from the first other byte on, which the parser must be
        fed first.
        """
        head = b""
        skipped = newlines = 0
        bom_checked = False
        found: bytes | None = None
        for data in blocks:
            head += data
            if not bom_checked:
                if len(head) < 4:
                    continue  # too short to tell a BOM or a wide encoding from data yet
                bom_checked = True
                self._refuse_wide_encoding(head)
                if head.startswith(_BOM):
                    head, skipped = head[len(_BOM) :], len(_BOM)
            if found is None:
                stripped = head.lstrip(_JSON_WS)
                skipped += len(head) - len(stripped)
                newlines += head.count(b"\n", 0, len(head) - len(stripped))
                head = found = stripped
            # An array is told by its '[', anything else by its first line (or _SNIFF_BYTES).
            if found and (found[:1] == b"[" or b"\n" in head or len(head) >= _SNIFF_BYTES):
                return self._parser_for(head, skipped, newlines), head
        if head and not bom_checked:  # the input was shorter than four bytes
            self._refuse_wide_encoding(head)
            if head.startswith(_BOM):
                head, skipped = head[len(_BOM) :], len(_BOM)
        stripped = head.lstrip(_JSON_WS)
        if stripped:
            skipped += len(head) - len(stripped)
            newlines += head.count(b"\n", 0, len(head) - len(stripped))
            return self._parser_for(stripped, skipped, newlines), stripped
        raise InputError(
            "the input is empty (no users in it): check the file or pipe", path=self.label
        )

    def _refuse_wide_encoding(self, head: bytes) -> None:
        """A UTF-16 or UTF-32 export (by its byte-order mark, or the zero bytes of its first
        characters) is named as such: JSON exports must be UTF-8."""
        encoding = _wide_encoding(head)
        if encoding is not None:
            raise InputError(
                f"the input is {encoding} encoded; exports must be UTF-8: convert it first, e.g. "
                f"iconv -f {encoding} -t UTF-8 FILE > FILE.utf8",
                path=self.label,
            )

    def _parser_for(self, head: bytes, skipped: int, newlines: int) -> _Parser:
        """The parser for the shape `head` (the first data, up to its first newline) starts."""
        accepts, first = self._accepts, head[0]
        if first == ord("[") and accepts.arrays:
            self.format = "json"
            return JsonArrayParser(self.label, offset=skipped, max_value=self._max_value)
        if first == ord("{"):
            if accepts.members and not (accepts.lines and not _starts_a_document(head)):
                self.format = "object"
                self._object = ObjectParser(
                    self.label,
                    offset=skipped,
                    max_value=self._max_value,
                    users_keys=accepts.members,
                )
                return self._object
            if accepts.lines:
                if _starts_a_document(head) or _USERS_MEMBER.match(head):
                    raise InputError(
                        "the input is one JSON object, not NDJSON (one user a line)"
                        f"{_document_hint(head)}",
                        path=self.label,
                        where=f"line {newlines + 1}",
                    )
                self.format = "ndjson"
                return NdjsonParser(self.label, lines_before=newlines, max_value=self._max_value)
        if first not in b"[{" and accepts.csv:
            self.format = "csv"
            return CsvParser(self.label, lines_before=newlines, max_value=self._max_value)
        if accepts.arrays and accepts.lines:
            what = (
                "the input is neither a JSON array (starting with '[') nor NDJSON (one object "
                "per line, starting with '{')"
            )
        else:
            what = f"the input is {_shape_of(head)}, which {accepts.description} does not read"
        raise InputError(what + _document_hint(head), path=self.label, where=f"byte {skipped}")


#: Bytes of the first data looked at to tell the input's shape (its first line, at most this).
_SNIFF_BYTES: Final = 64 << 10
#: One compact object whose users are a member (`{"users": [`, `{"kind": "...", "users": [`):
#: a users member after scalar members only, the shape of Firebase's and Keycloak's user files.
_USERS_MEMBER: Final = re.compile(
    rb'\{\s*(?:"(?:[^"\\]|\\.)*"\s*:\s*(?:"(?:[^"\\]|\\.)*"|[-+.0-9eE]+|true|false|null)\s*,\s*)*'
    rb'"(?:users|Users)"\s*:\s*\['
)


def _starts_a_document(head: bytes) -> bool:
    """Whether the first line opens one JSON object spread over lines (pretty-printed) rather
    than holding a whole NDJSON value: it ends on an opening bracket, a comma or a colon."""
    if b"\n" not in head:
        return False  # a first line longer than the sniffed bytes is a long NDJSON line
    first_line = head.split(b"\n", 1)[0].rstrip()
    return first_line == b"{" or first_line.endswith((b"[", b"{", b",", b":"))


def _shape_of(head: bytes) -> str:
    if head[:1] == b"[":
        return "a JSON array"
    if head[:1] == b"{":
        return "a JSON object"
    if b"," in head.split(b"\n", 1)[0]:
        return "CSV (a header row)"
    return "neither JSON nor CSV"


def _document_hint(head: bytes) -> str:
    """Which --from reads an input shaped like `head`, when its first bytes tell."""
    if b'"localId"' in head:
        return ": it looks like a Firebase export; use --from firebase"
    if b'"Users"' in head and b'"Attributes"' in head:
        return ": it looks like a Cognito list-users export; use --from cognito"
    if b'"realm"' in head or b'"credentials"' in head:
        return ": it looks like a Keycloak export; use --from keycloak"
    if b'"users"' in head:
        return (
            ': the users sit in a "users" member, as Firebase and Keycloak write them; use '
            "--from firebase or --from keycloak"
        )
    if head[:1] not in b"[{" and b"," in head.split(b"\n", 1)[0]:
        return (
            "; a CSV export needs --from csv with a --map FILE (or --from auth0-export, "
            "--from cognito or --from supabase for their CSV exports)"
        )
    if head[:1] not in b"[{":
        return "; export the users as JSON"
    return ""


#: Byte-order marks of the encodings JSON exports must not use, longest first.
_WIDE_BOMS: Final = (
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\xfe\xff", "UTF-16BE"),
    (b"\xff\xfe", "UTF-16LE"),
)


def _wide_encoding(head: bytes) -> str | None:
    """The UTF-16/32 encoding `head` starts in, if any (RFC 4627's zero-byte patterns too)."""
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return name
    if len(head) >= 4 and head[0] and not head[1] and not head[2] and not head[3]:
        return "UTF-32LE"
    if len(head) >= 4 and not head[0] and not head[1] and not head[2] and head[3]:
        return "UTF-32BE"
    if len(head) >= 2 and head[0] and not head[1]:
        return "UTF-16LE"
    if len(head) >= 2 and not head[0] and head[1]:
        return "UTF-16BE"
    return None


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
        # A FIFO or a process substitution can be read only once: the reader's read. Only a
        # regular file is opened a second time for the estimate.
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
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
