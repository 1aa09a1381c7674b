"""Planning with worker processes gives exactly what planning in-process gives."""

from __future__ import annotations

import gc
import gzip
import io
import multiprocessing
import threading
from multiprocessing.context import ForkContext, SpawnContext
from pathlib import Path
from typing import cast

import orjson
import pytest

from orchestrator import parallel
from orchestrator.chunker import PackedChunk
from orchestrator.errors import InputError
from orchestrator.planner import ChunkSink, PlanOptions, PlanStats, WrittenChunk, plan_export
from orchestrator.reader import ExportReader


def _user(i: int, **extra: object) -> dict[str, object]:
    user: dict[str, object] = {
        "email": f"user{i}@example.com",
        "email_verified": True,
        "user_id": f"auth0|id{i:06d}",
        "name": f"User {i}",
    }
    user.update(extra)
    return user


def _lines() -> list[bytes]:
    """A mix of every outcome: valid, invalid, duplicates, too large, blank lines, odd keys."""
    lines: list[bytes] = []
    for i in range(600):
        if i % 97 == 5:
            lines.append(orjson.dumps(_user(i, email="not an email")))
        elif i % 89 == 7:
            lines.append(orjson.dumps(_user(i, email=f"USER{i - 3}@example.com")))  # dup email
        elif i % 83 == 11:
            lines.append(orjson.dumps({"email": f"x{i}@example.com", "user_id": f"id{i - 1:06d}"}))
        elif i % 71 == 13:
            lines.append(orjson.dumps(_user(i, user_metadata={"blob": "x" * 5_000})))  # too big
        elif i % 67 == 17:
            lines.append(b"")  # blank line
        elif i % 61 == 19:
            lines.append(b"[1, 2]")  # not an object
        elif i % 59 == 23:
            lines.append(orjson.dumps(_user(i, favourite_colour="blue")))  # unknown field
        else:
            lines.append(orjson.dumps(_user(i)))
    return lines


def _plan(
    path: Path, workers: int, options: PlanOptions, **reader_args: int
) -> tuple[PlanStats, list[PackedChunk], bytes]:
    chunks: list[PackedChunk] = []

    def store(chunk: PackedChunk, external_id: str) -> WrittenChunk:
        chunks.append(chunk)
        return WrittenChunk(chunk.index, "", len(chunk.body), chunk.users, 0, 0, external_id, 0)

    rejects = io.BytesIO()
    reader = ExportReader(str(path), **reader_args)
    stats = plan_export(reader, options, store_chunk=store, rejects=rejects, workers=workers)
    return stats, chunks, rejects.getvalue()


@pytest.fixture(params=[4_000, 2_500, 0], ids=["slots", "some-in-slots", "pipes-only"])
def small_tasks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many small tasks, several in flight; their bytes go through shared slots when they fit
    (all but the tasks with a long line, about a third, or none), through the pipes otherwise."""
    monkeypatch.setattr(parallel, "TASK_BYTES", 2_000)
    monkeypatch.setattr(parallel, "SLOT_BYTES", request.param)


@pytest.mark.usefixtures("small_tasks")
@pytest.mark.parametrize("drop_unknown", [False, True])
def test_workers_plan_exactly_as_one_process(tmp_path: Path, drop_unknown: bool) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(_lines()) + b"\n")
    options = PlanOptions(max_request_bytes=4_000, drop_unknown_fields=drop_unknown)
    alone = _plan(path, 0, options, batch_bytes=1_000)
    for workers in (1, 2, 3):
        assert _plan(path, workers, options, batch_bytes=1_000) == alone
    stats, chunks, rejects = alone
    assert len(chunks) > 10
    reasons = {orjson.loads(line)["reasons"][0]["reason"] for line in rejects.splitlines()}
    expected = {"invalid_email", "duplicate_email", "duplicate_user_id", "too_large"}
    assert expected <= reasons
    assert ("unknown_field" in reasons) != drop_unknown
    assert stats.users_read == sum(1 for line in _lines() if line)
    assert not multiprocessing.active_children()


def test_rejects_not_kept_still_counted(tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(_lines()))  # no final newline
    options = PlanOptions(max_request_bytes=4_000)
    reader = ExportReader(str(path))
    stats = plan_export(reader, options, store_chunk=_plan_sink(), workers=2)
    assert stats == _plan(path, 0, options)[0]
    assert stats.users_rejected > 0


def _plan_sink() -> ChunkSink:
    def store(chunk: PackedChunk, external_id: str) -> WrittenChunk:
        return WrittenChunk(chunk.index, "", len(chunk.body), chunk.users, 0, 0, external_id, 0)

    return store


@pytest.fixture(params=[False, True], ids=["shared", "all-here"])
def encoded_here(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """True: the planning process encodes every task itself (its workers count as always busy)."""
    if request.param:
        monkeypatch.setattr(parallel, "TASKS_IN_FLIGHT", 0)
    return bool(request.param)


@pytest.mark.usefixtures("small_tasks", "encoded_here")
def test_tasks_encoded_here_plan_as_one_process(tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(_lines()) + b"\n")
    options = PlanOptions(max_request_bytes=4_000)
    assert _plan(path, 1, options, batch_bytes=1_000) == _plan(path, 0, options, batch_bytes=1_000)


@pytest.mark.usefixtures("small_tasks", "encoded_here")
def test_a_malformed_line_stops_planning_with_the_same_error(tmp_path: Path) -> None:
    lines = _lines()
    lines[400] = b'{"email": "broken@example.com",'
    lines[-20] = b"not json either"  # a later error, perhaps met first by another encoder
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    options = PlanOptions(max_request_bytes=4_000)
    with pytest.raises(InputError) as alone:
        _plan(path, 0, options, batch_bytes=1_000)
    with pytest.raises(InputError) as pooled:
        _plan(path, 2, options, batch_bytes=1_000)
    assert str(pooled.value) == str(alone.value)
    assert pooled.value.where == alone.value.where == "line 401"
    assert pooled.value.path == str(path)
    assert not multiprocessing.active_children()


def test_a_json_array_is_planned_in_process(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users = [orjson.loads(line) if line.startswith(b"{") else 7 for line in _lines() if line]
    path.write_bytes(orjson.dumps(users))
    options = PlanOptions(max_request_bytes=4_000)
    assert _plan(path, 2, options) == _plan(path, 0, options)
    assert not multiprocessing.active_children()


@pytest.mark.usefixtures("small_tasks", "encoded_here")
@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_planning_makes_no_reference_cycles(tmp_path: Path, workers: int, fmt: str) -> None:
    # planner.cycle_collector_paused relies on it: with the collector off, a cycle per batch
    # would be memory that is never given back.
    lines = _lines()
    path = tmp_path / f"users.{fmt}"
    if fmt == "json":
        path.write_bytes(b"[" + b",".join(line for line in lines if line) + b"]")
    else:
        path.write_bytes(b"\n".join(lines) + b"\n")
    gc.collect()
    _plan(path, workers, PlanOptions(max_request_bytes=4_000), batch_bytes=1_000)
    assert gc.isenabled()
    assert gc.collect() == 0


@pytest.mark.usefixtures("small_tasks")
def test_workers_are_forked_when_no_other_thread_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Forked workers start at once and share the slots; the chunk writer's threads start with
    # the first chunk, after the fork.
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(_lines()) + b"\n")
    methods: list[str] = []
    real_get_context = multiprocessing.get_context

    def recording(method: str) -> ForkContext | SpawnContext:
        methods.append(method)
        return cast("ForkContext | SpawnContext", real_get_context(method))

    monkeypatch.setattr(parallel, "get_context", recording)
    options = PlanOptions(max_request_bytes=4_000)
    pooled = _plan(path, 1, options, block_size=4_000, batch_bytes=1_000)
    assert methods == ["fork"]
    assert pooled == _plan(path, 0, options, block_size=4_000, batch_bytes=1_000)


def test_workers_started_from_a_threaded_process_are_spawned(tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(_lines()))
    options = PlanOptions(max_request_bytes=4_000)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _plan(path, 2, options) == _plan(path, 0, options)
    finally:
        stop.set()
        other.join()


def test_the_environment_overrides_the_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(_lines()))
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    assert parallel.auto_workers(ExportReader(str(path))) == 3
    monkeypatch.setenv(parallel.WORKERS_ENV, "0")
    with path.open("r+b") as file:
        file.truncate(parallel.PARALLEL_MIN_BYTES)
    assert parallel.auto_workers(ExportReader(str(path))) == 0


def test_workers_start_only_for_a_large_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(parallel.WORKERS_ENV, raising=False)
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(_lines()))
    assert parallel.auto_workers(ExportReader(str(path))) == 0
    with path.open("r+b") as file:
        file.truncate(parallel.PARALLEL_MIN_BYTES)  # sparse: the size alone decides
    cpus = parallel.usable_cpus()
    expected = min(cpus - 1, parallel.MAX_AUTO_WORKERS) if cpus >= 2 else 0
    assert parallel.auto_workers(ExportReader(str(path))) == expected
    assert parallel.auto_workers(ExportReader("-")) == 0


@pytest.mark.usefixtures("small_tasks")
def test_gzip_ndjson_is_decoded_by_the_workers_too(tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson.gz"
    path.write_bytes(gzip.compress(b"\n".join(_lines()) + b"\n"))
    options = PlanOptions(max_request_bytes=4_000)
    assert _plan(path, 2, options) == _plan(path, 0, options)


@pytest.mark.usefixtures("small_tasks")
def test_an_earlier_workers_error_wins_over_a_later_readers_error(tmp_path: Path) -> None:
    lines = _lines()
    lines[3] = b'{"email": "broken@example.com",'  # line 4; line 14 is over 5,000 bytes
    path = tmp_path / "users.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    options = PlanOptions(max_request_bytes=4_000)
    with pytest.raises(InputError) as alone:
        _plan(path, 0, options, batch_bytes=1_000, max_value_bytes=4_000)
    with pytest.raises(InputError) as pooled:
        _plan(path, 2, options, batch_bytes=1_000, max_value_bytes=4_000)
    assert alone.value.where == "line 4"
    assert str(pooled.value) == str(alone.value)
    assert not multiprocessing.active_children()
