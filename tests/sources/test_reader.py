"""Tests of orchestrator.sources.reader: formats, gzip, stdin, positions and sizes, fingerprints, errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.sources.reader import ExportReader, estimate_users, input_fingerprint
from orchestrator.sources.records import SourceRecord
from sample_data.generate import write_export

# ---------------------------------------------------------------- helpers


def _records(path: str, **kwargs: Any) -> tuple[ExportReader, list[SourceRecord]]:
    reader = ExportReader(path, **kwargs)
    batches = list(reader.batches())
    assert all(batches), "no empty batches"
    return reader, [record for batch in batches for record in batch]


def _read_bytes(data: bytes, **kwargs: int) -> tuple[ExportReader, list[SourceRecord]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "export")
        Path(path).write_bytes(data)
        return _records(path, **kwargs)


def _error(data: bytes, **kwargs: int) -> InputError:
    with pytest.raises(InputError) as caught:
        _read_bytes(data, **kwargs)
    return caught.value


def _user(i: int) -> dict[str, object]:
    return {
        "email": f"user{i}@example.com",
        "email_verified": i % 2 == 0,
        "user_id": f"u{i:08d}",
        "name": f'Ünïcode {i} "quoted" {{braces}}, [brackets] \\ 😀',
        "app_metadata": {"plan": "pro", "roles": ["a", "b"], "n": i},
        "user_metadata": {"theme": "dark", "nested": [{"a": 1}, {"b": [2, {"c": None}]}]},
        "password_hash": "$2b$10$" + "x" * 53,
    }


# ---------------------------------------------------------------- generated documents

_TRICKY = '"\\{}[],:/ \t\n\u00e9\U0001f600'
_text = st.text(
    alphabet=st.one_of(st.sampled_from(list(_TRICKY)), st.characters(exclude_categories=["Cs"])),
    max_size=12,
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_elements = st.lists(st.one_of(st.dictionaries(_text, _values, max_size=5), _values), max_size=8)


class _Writer:
    """Serialises JSON with drawn whitespace between tokens, escapes optionally ASCII-only."""

    def __init__(self, spaces: list[str], *, ascii_only: bool, escape_slash: bool) -> None:
        self._spaces = itertools.cycle(spaces)
        self._ascii_only = ascii_only
        self._escape_slash = escape_slash

    def ws(self) -> str:
        return next(self._spaces)

    def dump(self, value: object) -> str:
        if isinstance(value, dict):
            items = [
                f"{self.ws()}{self.dump(k)}{self.ws()}:{self.ws()}{self.dump(v)}{self.ws()}"
                for k, v in value.items()
            ]
            return "{" + ",".join(items) + "}" if items else "{" + self.ws() + "}"
        if isinstance(value, list):
            items = [f"{self.ws()}{self.dump(v)}{self.ws()}" for v in value]
            return "[" + ",".join(items) + "]" if items else "[" + self.ws() + "]"
        text = json.dumps(value, ensure_ascii=self._ascii_only)
        if isinstance(value, str) and self._escape_slash:
            text = text.replace("/", "\\/")
        return text


@st.composite
def _json_documents(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """A top-level array in any layout, and the byte size of each element's text."""
    elements = draw(_elements)
    pretty = draw(st.booleans())
    spaces = draw(
        st.lists(st.text(alphabet=" \t\n\r", max_size=4 if pretty else 0), min_size=1, max_size=5)
    )
    writer = _Writer(spaces, ascii_only=draw(st.booleans()), escape_slash=draw(st.booleans()))
    texts = [writer.dump(element) for element in elements]
    body = ",".join(f"{writer.ws()}{text}{writer.ws()}" for text in texts)
    document = f"{writer.ws()}[{body or writer.ws()}]{writer.ws()}"
    return document.encode(), [len(text.encode()) for text in texts]


@st.composite
def _ndjson_documents(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]]]:
    """NDJSON with blank lines and optional CRLF, and (line number, size) of each value."""
    first = draw(st.dictionaries(_text, _values, max_size=5))  # the first value sets the format
    elements = [first, *draw(_elements)]
    writer = _Writer(
        draw(st.lists(st.text(alphabet=" \t", max_size=3), min_size=1, max_size=5)),
        ascii_only=draw(st.booleans()),
        escape_slash=draw(st.booleans()),
    )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines: list[str] = []
    expected: list[tuple[int, int]] = []
    for element in elements:
        lines.extend(draw(st.lists(st.sampled_from(["", " ", "\t", "\r"]), max_size=2)))
        text = writer.dump(element)
        lines.append(f"{writer.ws()}{text}{writer.ws()}")
        expected.append((len(lines), len(text.encode())))
    trailing = draw(st.booleans())
    return (newline.join(lines) + (newline if trailing else "")).encode(), expected


def _gzipped(data: bytes, members: int) -> bytes:
    """gzip with the data split over ``members`` concatenated members (as `cat a.gz b.gz`)."""
    cut = len(data) // members
    parts = [data[:cut], data[cut:]] if members == 2 else [data]
    return b"".join(gzip.compress(part, mtime=0) for part in parts)


_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(
    document=_json_documents(),
    block_size=st.integers(1, 64),
    compression=st.sampled_from([0, 1, 2]),
)
@example(document=(b'[{"a":"},{"},{"b":[{},{}]}]', [11, 13]), block_size=7, compression=0)
def test_json_array_reads_exactly_what_orjson_reads(
    document: tuple[bytes, list[int]], block_size: int, compression: int
) -> None:
    data, sizes = document
    raw = _gzipped(data, compression) if compression else data
    reader, records = _read_bytes(raw, block_size=block_size)
    assert [r.value for r in records] == orjson.loads(data)
    assert [r.position for r in records] == list(range(len(sizes)))
    assert [r.size for r in records] == sizes
    assert (reader.format, reader.compressed) == ("json", bool(compression))
    assert reader.bytes_read == len(raw)
    assert reader.sha256 == hashlib.sha256(raw).hexdigest()


@_SETTINGS
@given(
    document=_ndjson_documents(),
    block_size=st.integers(1, 64),
    compression=st.sampled_from([0, 1, 2]),
)
def test_ndjson_reads_each_line_as_orjson_does(
    document: tuple[bytes, list[tuple[int, int]]], block_size: int, compression: int
) -> None:
    data, expected = document
    raw = _gzipped(data, compression) if compression else data
    reader, records = _read_bytes(raw, block_size=block_size)
    lines = data.split(b"\n")
    assert [r.value for r in records] == [orjson.loads(line) for line in lines if line.strip()]
    assert [(r.position, r.size) for r in records] == expected
    assert (reader.format, reader.compressed) == ("ndjson", bool(compression))
    assert reader.bytes_read == len(raw)
    assert reader.sha256 == hashlib.sha256(raw).hexdigest()


_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.integers(0, 10_000),
        st.sampled_from(list(b'{}[],:"\\ x1\xff\n')),
    ),
    min_size=1,
    max_size=3,
)


def _mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, byte in edits:
        at = where % (len(buf) + 1)
        if kind == "insert":
            buf.insert(at, byte)
        elif at < len(buf):
            if kind == "delete":
                del buf[at]
            else:
                buf[at] = byte
    return bytes(buf)


@_SETTINGS
@given(document=_json_documents(), edits=_EDITS, block_size=st.integers(1, 64))
def test_damaged_json_array_is_refused_exactly_when_orjson_refuses_it(
    document: tuple[bytes, list[int]], edits: list[tuple[str, int, int]], block_size: int
) -> None:
    """Splitting at `},{` never changes the verdict: whatever orjson accepts is read the same."""
    data = _mutate(document[0], edits)
    if not data.lstrip(b" \t\n\r").startswith(b"["):
        return  # another format; covered elsewhere
    try:
        expected: object = orjson.loads(data)
    except orjson.JSONDecodeError:
        error = _error(data, block_size=block_size)
        assert error.where is not None
        assert error.where.startswith("byte ")
        return
    _, records = _read_bytes(data, block_size=block_size)
    assert [r.value for r in records] == expected


@_SETTINGS
@given(document=_ndjson_documents(), edits=_EDITS, block_size=st.integers(1, 64))
def test_damaged_ndjson_names_the_first_bad_line(
    document: tuple[bytes, list[tuple[int, int]]],
    edits: list[tuple[str, int, int]],
    block_size: int,
) -> None:
    data = _mutate(document[0], edits)
    if not data.lstrip(b" \t\n\r").startswith(b"{"):
        return
    lines = data.split(b"\n")
    bad = [n for n, line in enumerate(lines, 1) if line.strip() and not _decodes(line)]
    if bad:
        assert _error(data, block_size=block_size).where == f"line {bad[0]}"
    else:
        _, records = _read_bytes(data, block_size=block_size)
        assert [r.value for r in records] == [orjson.loads(x) for x in lines if x.strip()]


def _decodes(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


# ---------------------------------------------------------------- realistic input, both paths


@pytest.mark.parametrize("fmt", ["pretty", "compact", "ndjson"])
@pytest.mark.parametrize("compressed", [False, True])
def test_many_users_in_many_batches(tmp_path: Path, fmt: str, compressed: bool) -> None:
    users: list[object] = [_user(i) for i in range(3000)]
    users[1234] = ["not", "an", "object"]  # handed on; the validator rejects it
    if fmt == "ndjson":
        data = b"\n".join(orjson.dumps(u) for u in users) + b"\n"
    else:
        data = json.dumps(users, indent=2 if fmt == "pretty" else None).encode()
    path = tmp_path / "users"
    path.write_bytes(gzip.compress(data) if compressed else data)
    reader, records = _records(str(path), block_size=64 << 10, batch_bytes=16 << 10)
    assert [r.value for r in records] == users
    first = 1 if fmt == "ndjson" else 0
    assert [r.position for r in records] == list(range(first, first + len(users)))
    batches = list(ExportReader(str(path), batch_bytes=16 << 10).batches())
    assert len(batches) > 10
    assert min(map(len, batches[:-1])) > 1
    assert reader.where(records[5].position) == ("line 6" if fmt == "ndjson" else "index 5")


def test_default_sizes_read_a_file_larger_than_a_block(tmp_path: Path) -> None:
    data = b"[" + b",".join(orjson.dumps(_user(i)) for i in range(6000)) + b"]"
    assert len(data) > 2 * (1 << 20)
    path = tmp_path / "big.json"
    path.write_bytes(data)
    _, records = _records(str(path))
    assert len(records) == 6000
    assert records[-1].value == _user(5999)
    assert sum(r.size for r in records) == len(data) - 2 - 5999  # brackets and commas


@pytest.mark.parametrize("false_gaps", [1, 2, 4, 5, 30])
def test_gaps_inside_elements_never_split_them(false_gaps: int) -> None:
    inner = {"list": [{"i": i} for i in range(false_gaps)], "s": "},{" * false_gaps}
    users = [{"a": 1}, inner, {"b": 2}, inner, inner]
    data = json.dumps(users, indent=1).encode()
    for block_size in (17, 1 << 20):
        _, records = _read_bytes(data, block_size=block_size)
        assert [r.value for r in records] == users
        assert sum(r.size for r in records) < len(data)
    broken = data.replace(b'"s"', b'"s" x', 1)
    error = _error(broken)
    assert error.where == f"byte {broken.index(b' x') + 1}"


def _cognito_like(i: int) -> dict[str, object]:
    """A user holding an array of objects: most `},{` gaps of such an export are inside a user."""
    attributes = [{"Name": name, "Value": f"{name}-{i}"} for name in ("sub", "email", "locale")]
    return {"Username": f"user{i}", "Attributes": attributes, "Enabled": i % 7 != 0}


_ODD_ONES = {
    # an element that starts with another key: the keyed split runs past it
    13: {"Enabled": True, "Username": "first key differs", "Attributes": [{}, {}]},
    # the element's first key inside it, right after a gap, and in a string
    29: {"Username": "nested", "Attributes": [{"Username": "x"}, {"Username": "y"}]},
    41: {"Username": 'says },{"Username": inside a string', "Attributes": [{"a": 1}, {"b": 2}]},
}


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("block_size", [97, 1 << 20])
def test_elements_full_of_inner_gaps_are_read_exactly(indent: int | None, block_size: int) -> None:
    users = [_ODD_ONES.get(i, _cognito_like(i)) for i in range(400)]
    data = json.dumps(users, indent=indent).encode()
    _, records = _read_bytes(data, block_size=block_size)
    assert [r.value for r in records] == users
    assert [r.position for r in records] == list(range(400))
    assert [r.value for r in records] == [orjson.loads(r.text) for r in records]


def test_elements_with_inner_gaps_and_any_first_key_are_read_exactly() -> None:
    # The keyed split misses whenever the next user starts with another key: it gives up on it.
    users = [
        dict(reversed(list(_cognito_like(i).items()))) if i % 2 else _cognito_like(i)
        for i in range(3000)
    ]
    data = json.dumps(users).encode()
    for block_size in (101, 1 << 20):
        _, records = _read_bytes(data, block_size=block_size)
        assert [r.value for r in records] == users
    broken = data.replace(b'"user2377"', b'"user2377" x', 1)
    assert _error(broken).where == f"byte {broken.index(b' x') + 1}"


def test_sizes_exclude_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'[ {"a": 1} ,\n\t[1, 2] , "s" ,7 ]')
    _, records = _records(str(path))
    assert [(r.position, r.value, r.size) for r in records] == [
        (0, {"a": 1}, 8),
        (1, [1, 2], 6),
        (2, "s", 3),
        (3, 7, 1),
    ]


# ---------------------------------------------------------------- format details


@pytest.mark.parametrize(
    ("data", "values"),
    [
        (b"[]", []),
        (b" \n [ \t ] \n", []),
        (b'\xef\xbb\xbf[{"a":1}]', [{"a": 1}]),
        (b'\xef\xbb\xbf{"a":1}\n', [{"a": 1}]),
        (b'[1, {"email": "x@y"}, null]', [1, {"email": "x@y"}, None]),
        (b'{"a":1}\n42\n["x"]\n"s"\n', [{"a": 1}, 42, ["x"], "s"]),
        (b'{"a":1}\r\n{"b":2}', [{"a": 1}, {"b": 2}]),
    ],
)
def test_valid_inputs(data: bytes, values: list[object]) -> None:
    for block_size in (1, 2, 3, 1 << 20):
        _, records = _read_bytes(data, block_size=block_size)
        assert [r.value for r in records] == values


def test_ndjson_skips_blank_lines_but_counts_them() -> None:
    reader, records = _read_bytes(b'\n\n{"a":1}\n\n  \n{"b":2}\n\n')
    assert [(r.position, r.value) for r in records] == [(3, {"a": 1}), (6, {"b": 2})]
    assert reader.where(6) == "line 6"


def test_nesting_up_to_the_decoder_limit_is_read() -> None:
    deep = b"[" * 1023 + b"]" * 1023
    _, records = _read_bytes(b'[{"a":' + deep + b"}]", block_size=100)
    assert len(records) == 1
    _, records = _read_bytes(b'{"a":' + deep + b"}\n")
    assert len(records) == 1


def test_stdin_is_read_with_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    data = gzip.compress(b'[{"a":1},{"b":2}]')
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BytesIO(data)))
    reader, records = _records("-", block_size=5)
    assert [r.value for r in records] == [{"a": 1}, {"b": 2}]
    assert (reader.path, reader.compressed, reader.bytes_read) == ("-", True, len(data))
    assert reader.sha256 == hashlib.sha256(data).hexdigest()


def test_stdin_of_a_real_process() -> None:
    script = (
        "from orchestrator.sources.reader import ExportReader\n"
        "r = ExportReader('-')\n"
        "print(sum(len(b) for b in r.batches()), r.format, r.bytes_read)\n"
    )
    data = b'{"a":1}\n{"b":2}\n'
    done = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, check=True, timeout=60
    )
    assert done.stdout.split() == [b"2", b"ndjson", str(len(data)).encode()]


@pytest.mark.parametrize("compressed", [False, True])
def test_fingerprint_is_the_raw_files(tmp_path: Path, compressed: bool) -> None:
    data = b"\n".join(orjson.dumps(_user(i)) for i in range(500))
    raw = gzip.compress(data) if compressed else data
    path = tmp_path / "in"
    path.write_bytes(raw)
    reader, _ = _records(str(path), block_size=1000)
    expected = (len(raw), hashlib.sha256(raw).hexdigest())
    assert (reader.bytes_read, reader.sha256) == expected
    assert input_fingerprint(str(path)) == expected
    assert input_fingerprint(str(path), block_size=7) == expected


def test_gzip_with_zero_padding_after_the_last_member() -> None:
    _, records = _read_bytes(gzip.compress(b'[{"a":1}]') + b"\0" * 100, block_size=3)
    assert [r.value for r in records] == [{"a": 1}]


def test_batches_is_single_use(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b"[1]")
    reader = ExportReader(str(path))
    list(reader.batches())
    with pytest.raises(RuntimeError, match="only once"):
        list(reader.batches())


def test_block_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ExportReader("-", block_size=0)


def test_errors_are_raised_without_reading_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'[{"a":1} {"b":2},' + b'{"c":3},' * 200_000 + b"{}]")
    reader = ExportReader(str(path), block_size=4096)
    with pytest.raises(InputError):
        list(reader.batches())
    assert reader.bytes_read <= 4096


def test_records_are_frozen() -> None:
    record = SourceRecord(position=1, value={}, text=b"{}")
    assert record.size == 2
    with pytest.raises(AttributeError):
        record.text = b"[]"  # type: ignore[misc]


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  ", b"\xef\xbb\xbf \n", gzip.compress(b"")])
def test_empty_input(data: bytes) -> None:
    error = _error(data)
    assert "empty" in str(error)
    assert error.where is None


@pytest.mark.parametrize(
    ("data", "where"),
    [(b"42", "byte 0"), (b'  "x"', "byte 2"), (b"true", "byte 0"), (b"\xef\xbb", "byte 0")],
)
def test_top_level_neither_array_nor_ndjson(data: bytes, where: str) -> None:
    error = _error(data, block_size=1)
    assert error.where == where
    assert "neither a JSON array" in str(error)


def test_brace_garbage_is_a_broken_ndjson_first_line() -> None:
    error = _error(b"{ this is not json\n")
    assert error.where == "line 1"
    assert "NDJSON needs one complete JSON value per line" in str(error)


def test_pretty_printed_objects_are_not_ndjson() -> None:
    error = _error(b'{\n  "email": "a@b"\n}\n')
    assert error.where == "line 1"


@pytest.mark.parametrize(
    ("data", "where", "says"),
    [
        (b'[{"a":1}', "byte 8", "without the closing ']'"),
        (b'[{"a":1},', "byte 9", "without the closing ']'"),
        (b'[{"a":1},  ', "byte 11", "without the closing ']'"),
        (b"[", "byte 1", "without the closing ']'"),
        (b'[{"a":1},{"b":"xy', "byte 17", "ends inside element 1 (which starts at byte 9)"),
        (b'[{"a":1}, {"b":', "byte 15", "ends inside element 1"),
        (b'[{"a":[1,2', "byte 10", "ends inside element 0"),
        (b'["abc\\', "byte 6", "ends inside element 0"),
    ],
)
def test_truncated_array(data: bytes, where: str, says: str) -> None:
    for block_size in (1, 4, 1 << 20):
        error = _error(data, block_size=block_size)
        assert (error.where, says in str(error)) == (where, True), str(error)
        assert "truncated" in str(error)


@pytest.mark.parametrize(
    ("data", "where"),
    [(b'[{"a":1}] x', "byte 10"), (b"[]]", "byte 2"), (b"[1]\n[2]", "byte 4")],
)
def test_trailing_garbage_after_the_array(data: bytes, where: str) -> None:
    error = _error(data, block_size=2)
    assert error.where == where
    assert "after the closing ']'" in str(error)


def test_trailing_whitespace_after_the_array_is_fine() -> None:
    _, records = _read_bytes(b'[{"a":1}]  \r\n\t\n')
    assert len(records) == 1


@pytest.mark.parametrize(
    ("data", "where", "says"),
    [
        (b'[{"a":1},{"b":2} {"c":3}]', "byte 17", "expected ',' or ']' after element 1"),
        (b'[{"a":1},]', "byte 9", "trailing comma"),
        (b'[{"a":1},,{"b":2}]', "byte 9", "invalid JSON"),
        (b'[{"a":1},{"b" 2}]', "byte 14", "invalid JSON"),
        (b'[{"\xc3\xa9":1, x}]', "byte 10", "in element 0"),
        (b'[{"a":1]', "byte 7", "invalid JSON"),
        (b"[tru]", "byte 4", "invalid JSON"),
    ],
)
def test_malformed_array_names_the_byte(data: bytes, where: str, says: str) -> None:
    for block_size in (1, 3, 1 << 20):
        error = _error(data, block_size=block_size)
        assert (error.where, says in str(error)) == (where, True), str(error)


def test_invalid_utf8_in_an_array_names_the_byte() -> None:
    data = b'[{"a":"ok"},\n {"name":"caf\xe9"}]'
    error = _error(data, block_size=5)
    assert error.where == f"byte {data.index(bytes([0xE9]))}"
    assert "UTF-8" in str(error)


def test_invalid_utf8_in_ndjson_names_the_line() -> None:
    error = _error(b'{"a":"ok"}\n{"name":"caf\xe9"}\n', block_size=5)
    assert error.where == "line 2"
    assert "UTF-8" in str(error)


def test_broken_ndjson_line_is_named() -> None:
    data = b'{"a":1}\n\n{"b":2}\n{"c":}\n{"d":4}\n'
    error = _error(data, block_size=6)
    assert error.where == "line 4"
    assert "invalid JSON" in str(error)


def test_ndjson_line_with_two_values_is_refused() -> None:
    assert _error(b'{"a":1}\n{"b":2} {"c":3}\n').where == "line 2"


@pytest.mark.parametrize("cut", [10, -8, -1])
def test_truncated_gzip(cut: int) -> None:
    data = gzip.compress(b"[" + b",".join(orjson.dumps(_user(i)) for i in range(50)) + b"]")
    error = _error(data[:cut], block_size=100)
    assert "truncated" in str(error)
    assert "gzip" in str(error)


def test_corrupt_gzip() -> None:
    data = bytearray(gzip.compress(b"[" + b",".join(orjson.dumps(_user(i)) for i in range(50))))
    data[len(data) // 2 : len(data) // 2 + 20] = b"\x00" * 20
    assert "gzip data is corrupt" in str(_error(bytes(data)))


def test_too_deep_nesting() -> None:
    deep = b"[" * 1025 + b"]" * 1025
    error = _error(b'[{"a":1},' + deep + b"]")
    assert error.where == "byte 1034"  # where the decoder gave up: the 1025th '['
    assert "nested more than 1024 levels" in str(error)
    error = _error(b'{"a":1}\n' + deep + b"\n")
    assert error.where == "line 2"
    assert "nested more than 1024 levels" in str(error)


def test_missing_file_is_reported_when_constructed(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open the input") as caught:
        ExportReader(str(tmp_path / "missing.json"))
    assert caught.value.path == str(tmp_path / "missing.json")


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        ExportReader(str(tmp_path))
    with pytest.raises(InputError, match="cannot read the input"):
        input_fingerprint(str(tmp_path))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_bytes(b"[]")
    path.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        ExportReader(str(path))


def test_file_removed_after_construction_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "gone.json"
    path.write_bytes(b"[]")
    reader = ExportReader(str(path))
    path.unlink()
    with pytest.raises(InputError, match="cannot open the input"):
        list(reader.batches())


def test_errors_never_quote_the_input() -> None:
    secret = b"$2b$10$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY"
    for data in (
        b'[{"password_hash":"' + secret + b'" oops}]',
        b'{"password_hash":"' + secret + b'" oops}\n',
        b'[{"password_hash":"' + secret,
    ):
        assert secret.decode()[10:30] not in str(_error(data))


def test_reading_stops_cleanly_when_the_caller_stops(tmp_path: Path) -> None:
    """An abandoned iteration closes the file (filterwarnings=error would catch a leak)."""
    path = tmp_path / "x.ndjson"
    path.write_bytes(b"".join(orjson.dumps(_user(i)) + b"\n" for i in range(2000)))
    batches = ExportReader(str(path), block_size=4096).batches()
    next(batches)
    batches.close()


def test_stdin_missing_or_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(InputError, match="no standard input"):
        list(ExportReader("-").batches())

    class Failing(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=Failing()))
    with pytest.raises(InputError, match="cannot read the input: Input/output error") as caught:
        list(ExportReader("-").batches())
    assert caught.value.path == "<stdin>"


def test_a_huge_element_in_tiny_batches_is_read_in_linear_time() -> None:
    """Waiting for the buffer to double keeps rescans logarithmic (quadratic would take hours)."""
    big = {"email": "a@b", "blob": 'x\\"},' * 100_000, "list": [{"i": i} for i in range(20_000)]}
    data = orjson.dumps([{"a": 1}, big, "s" * 300_000, {"b": 2}])
    _, records = _read_bytes(data, block_size=64)
    assert [r.value for r in records] == [{"a": 1}, big, "s" * 300_000, {"b": 2}]
    lines = orjson.dumps(big) + b"\n" + orjson.dumps({"b": 2})
    _, records = _read_bytes(lines, block_size=64)
    assert [r.value for r in records] == [big, {"b": 2}]


def test_values_up_to_the_cap_are_read_and_larger_ones_refused() -> None:
    small = orjson.dumps({"email": "a@b", "pad": "p" * 900})
    _, records = _read_bytes(b"[" + small + b"]", block_size=64, max_value_bytes=1000)
    assert len(records) == 1
    large = orjson.dumps({"email": "a@b", "pad": "p" * 2000})
    error = _error(b"[{},\n" + large + b"]", block_size=64, max_value_bytes=1000)
    assert error.where == "byte 5"
    assert "element 1 is larger than 1000 bytes" in str(error)


def test_a_wrapped_export_on_one_line_is_refused_with_a_hint() -> None:
    data = orjson.dumps({"users": [_user(i) for i in range(20)]})
    error = _error(b'{"a":1}\n' + data, block_size=256, max_value_bytes=1000)
    assert error.where == "line 2"
    assert "NDJSON needs one user per line" in str(error)
    assert "jq" in str(error)


def test_the_user_count_of_a_plain_file_is_estimated_from_its_start(tmp_path: Path) -> None:
    ndjson, array, packed = tmp_path / "u.ndjson", tmp_path / "u.json", tmp_path / "u.json.gz"
    write_export(ndjson, 8_000, fmt="ndjson", gzip=False, pretty=False, seed=2)
    write_export(array, 8_000, fmt="json", gzip=False, pretty=True, seed=2)
    write_export(packed, 8_000, fmt="json", gzip=True, pretty=False, seed=2)
    for path in (ndjson, array):
        estimate = estimate_users(str(path))
        assert estimate is not None
        assert 8_000 <= estimate <= 8_000 * 1.25
    assert estimate_users(str(packed)) is None  # compressed: unknown
    assert estimate_users("-") is None
    assert estimate_users(str(tmp_path / "missing.json")) is None
