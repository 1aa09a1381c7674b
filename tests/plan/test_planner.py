"""The one planning loop: every outcome, in order, deterministic, and nothing kept alive."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.errors import InputError
from orchestrator.plan.pack import PackedChunk
from orchestrator.plan.planner import (
    ChunkLayout,
    PlanStats,
    WrittenChunk,
    describe_chunk,
    plan_chunks,
)
from orchestrator.settings import PlanSettings
from orchestrator.sources.reader import ExportReader
from tests.run_helpers import REPO

LAYOUT = ChunkLayout(4_000, "plan")


def _user(i: int, **extra: object) -> dict[str, object]:
    user: dict[str, object] = {
        "email": f"user{i}@example.com",
        "email_verified": True,
        "user_id": f"auth0|id{i:06d}",
        "name": f"User {i}",
    }
    user.update(extra)
    return user


def _values() -> list[object]:
    """A mix of every outcome: valid, invalid, duplicates, too large, odd keys, not objects."""
    values: list[object] = []
    for i in range(600):
        if i % 97 == 5:
            values.append(_user(i, email="not an email"))
        elif i % 89 == 7:
            values.append(_user(i, email=f"USER{i - 3}@example.com"))  # duplicate email
        elif i % 83 == 11:
            values.append({"email": f"x{i}@example.com", "user_id": f"id{i - 1:06d}"})
        elif i % 71 == 13:
            values.append(_user(i, user_metadata={"blob": "x" * 5_000}))  # too large
        elif i % 61 == 19:
            values.append([1, 2])  # not an object
        elif i % 59 == 23:
            values.append(_user(i, favourite_colour="blue"))  # unknown field
        else:
            values.append(_user(i))
    return values


def _write(path: Path, values: list[object], fmt: str) -> Path:
    if fmt == "json":
        path.write_bytes(orjson.dumps(values, option=orjson.OPT_INDENT_2))
    else:
        path.write_bytes(b"\n".join(map(orjson.dumps, values)) + b"\n")
    return path


def _plan(
    path: Path, settings: PlanSettings | None = None, *, keep_rejects: bool = True
) -> tuple[PlanStats, list[PackedChunk], list[dict[str, Any]]]:
    chunks: list[PackedChunk] = []

    def store(chunk: PackedChunk) -> WrittenChunk:
        chunks.append(chunk)
        return describe_chunk(chunk, LAYOUT, "")

    rejects = io.BytesIO()
    reader = ExportReader(str(path))
    stats = plan_chunks(
        reader.batches(),
        settings or PlanSettings(),
        LAYOUT,
        store,
        rejects=rejects if keep_rejects else None,
        where=reader.where,
    )
    lines = [orjson.loads(line) for line in rejects.getvalue().splitlines()]
    return stats, chunks, lines


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_every_outcome_in_input_order(tmp_path: Path, fmt: str) -> None:
    values = _values()
    stats, chunks, rejects = _plan(_write(tmp_path / "u", values, fmt))
    assert stats.users_read == len(values)
    assert stats.users_accepted + stats.users_rejected == len(values)
    assert stats.rejected_by_reason == {
        "invalid_email": 7,
        "duplicate_email": 7,
        # 8 users repeat the user_id of the user before them; one of those was itself refused
        # (too large), so its user_id was never taken.
        "duplicate_user_id": 7,
        "too_large": 9,
        "not_an_object": 10,
        "unknown_field": 9,
    }
    positions = [r["position"] for r in rejects]
    assert positions == sorted(positions)
    assert len(rejects) == stats.users_rejected
    sent = [user for chunk in chunks for user in orjson.loads(chunk.body)]
    assert len(sent) == stats.users_accepted
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(not str(u["user_id"]).startswith("auth0|") for u in sent if "user_id" in u)


def test_json_and_ndjson_plan_alike_and_every_plan_is_the_same(tmp_path: Path) -> None:
    values = _values()
    _, from_json, _ = _plan(_write(tmp_path / "a.json", values, "json"))
    _, from_ndjson, _ = _plan(_write(tmp_path / "a.ndjson", values, "ndjson"))
    _, again, _ = _plan(tmp_path / "a.ndjson")
    assert [c.body for c in from_json] == [c.body for c in from_ndjson] == [c.body for c in again]


def test_rejects_not_kept_are_still_counted(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.ndjson", _values(), "ndjson")
    kept, _, _ = _plan(path)
    counted, _, lines = _plan(path, keep_rejects=False)
    assert lines == []
    assert counted.rejected_by_reason == kept.rejected_by_reason


def test_rejects_show_the_user_as_read(tmp_path: Path) -> None:
    read = {"email": "broken", "user_id": "auth0|abc", "logins_count": 3}
    path = _write(tmp_path / "u.ndjson", [read], "ndjson")
    stats, _, rejects = _plan(path, PlanSettings(drop_unknown_fields=True))
    assert stats.dropped_fields == {"logins_count": 1}
    assert rejects[0]["user"] == read  # neither the prefix stripped nor the field dropped
    assert rejects[0]["where"] == "line 1"


def test_integers_beyond_53_bits_are_refused_not_altered(tmp_path: Path) -> None:
    path = tmp_path / "u.ndjson"
    path.write_bytes(
        b'{"email": "a@example.com", "user_metadata": {"id": 9007199254740993}}\n'
        b'{"email": "b@example.com", "user_metadata": {"id": 9007199254740991}}\n'
    )
    stats, chunks, rejects = _plan(path)
    assert stats.rejected_by_reason == {"unsafe_number": 1}
    assert rejects[0]["user"]["user_metadata"]["id"] == 9007199254740993
    assert [u["email"] for c in chunks for u in orjson.loads(c.body)] == ["b@example.com"]


def test_integers_beyond_64_bits_are_refused_not_turned_into_floats(tmp_path: Path) -> None:
    path = tmp_path / "u.ndjson"
    path.write_bytes(
        b'{"email": "a@example.com", "user_metadata": {"id": 123456789012345678901234567890}}\n'
        b'{"email": "b@example.com", "user_metadata": {"ids": [1, -98765432109876543210987]}}\n'
        b'{"email": "c@example.com", "user_metadata": {"big": 1e20, "n": 1.5e16}}\n'
        b'{"email": "d@example.com", "user_metadata": {"id": "123456789012345678901234567890"}}\n'
    )
    stats, chunks, rejects = _plan(path)
    assert stats.rejected_by_reason == {"unsafe_number": 2}
    assert [r["where"] for r in rejects] == ["line 1", "line 2"]
    # Floats written as floats, and digits in a string, are what they say.
    assert [u["email"] for c in chunks for u in orjson.loads(c.body)] == [
        "c@example.com",
        "d@example.com",
    ]


def test_a_malformed_line_stops_planning_naming_it(tmp_path: Path) -> None:
    lines = [orjson.dumps(_user(i)) for i in range(50)]
    lines[30] = b'{"email": "x@example.com",'
    path = tmp_path / "u.ndjson.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(InputError, match="line 31: invalid JSON"):
        _plan(path)


_NO_CYCLES = """
import gc, io, sys
from orchestrator.plan.planner import ChunkLayout, count_only, plan_chunks
from orchestrator.settings import PlanSettings
from orchestrator.sources.reader import ExportReader
gc.collect()
layout = ChunkLayout(4_000, "plan")
reader = ExportReader(sys.argv[1])
plan_chunks(reader.batches(), PlanSettings(drop_unknown_fields=True), layout, count_only(layout),
            rejects=io.BytesIO(), where=reader.where)
print(gc.collect())
"""


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_planning_makes_no_reference_cycles(tmp_path: Path, fmt: str) -> None:
    """Planning pauses the cycle collector, so it must leave no cycle behind: every user is freed
    by reference counting. Measured in a fresh interpreter, where nothing else makes garbage."""
    path = _write(tmp_path / "u", _values(), fmt)
    found = subprocess.run(
        [sys.executable, "-c", _NO_CYCLES, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "0", found.stderr
