"""The sync state file and the sync lock: schema, lookups, nights, promotion, crash semantics."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.sync.lock import SyncBusyError, SyncLock, lock_path
from orchestrator.sync.state import LOOKUP_BATCH, ChunkResult, Night, SyncState
from orchestrator.sync.statefile import APPLICATION_ID, SCHEMA_VERSION


def fp(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def chunk(
    index: int, first: int, last: int, *, failed: frozenset[str] = frozenset()
) -> ChunkResult:
    return ChunkResult(
        chunk=index,
        job_id=f"job_{index:016d}",
        external_id=f"test-{index:06d}",
        completed_at="2026-11-27T02:00:00.000Z",
        first_position=first,
        last_position=last,
        users=last - first + 1,
        failed_keys=failed,
    )


def night_with(state: SyncState, tmp_path: Path, rows: list[tuple[str, str]]) -> Night:
    """A diffed night sending `rows` (key, content) at lines 1..n, new users getting fresh slots."""
    night = state.begin_night(tmp_path / "night")
    slot = state.next_slot
    pending = []
    for line, (key, content) in enumerate(rows, start=1):
        known = state.lookup([key]).get(key)
        pending.append((line, key, fp(content), known.slot if known else slot, None))
        if known is None:
            slot += 1
    state.add_pending(pending)
    state.finish_diff(night, slot, {"new": len(rows)})
    return state.mark_uploading(night, "run-1")


def test_a_new_state_is_private_versioned_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SyncState.open(path) as state:
        assert state.user_count() == 0
        assert state.next_slot == 0
        state.set_meta("connection_id", "con_x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with SyncState.open(path) as state:
        assert state.get_meta("connection_id") == "con_x"


def test_other_files_are_refused_with_one_clear_line(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="another program"):
        SyncState.open(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(ConfigError, match="not a sync state"):
        SyncState.open(garbage)
    with pytest.raises(ConfigError, match="does not exist"):
        SyncState.open(tmp_path / "no-such-dir" / "state.db")


def test_a_state_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SyncState.open(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="newer"):
        SyncState.open(path)


#: A state as the first release (schema version 1) wrote it: no `raw` columns.
_VERSION_1 = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE nights (id INTEGER PRIMARY KEY, run_dir TEXT NOT NULL, run_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('diffing', 'uploading', 'done', 'abandoned')),
    started_at TEXT NOT NULL, finished_at TEXT, counts TEXT);
CREATE TABLE jobs (id INTEGER PRIMARY KEY, night INTEGER NOT NULL REFERENCES nights (id),
    chunk INTEGER NOT NULL, job_id TEXT, external_id TEXT NOT NULL, completed_at TEXT);
CREATE TABLE users (key TEXT PRIMARY KEY, fingerprint BLOB NOT NULL, slot INTEGER NOT NULL,
    job INTEGER NOT NULL REFERENCES jobs (id)) WITHOUT ROWID;
CREATE TABLE pending (position INTEGER PRIMARY KEY, key TEXT NOT NULL, fingerprint BLOB NOT NULL,
    slot INTEGER NOT NULL);
"""


def _version_1_state(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(_VERSION_1)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO meta VALUES ('next_slot', '1')")
    db.execute("INSERT INTO nights VALUES (1, 'n', 'r', 'done', 'then', 'then', '{}')")
    db.execute("INSERT INTO jobs VALUES (1, 1, 0, 'job_x', 'x-000000', 'then')")
    db.execute("INSERT INTO users VALUES ('user-1', ?, 0, 1)", (fp("v1"),))
    db.commit()
    db.close()


def test_a_version_1_state_is_read_by_a_dry_run_and_upgraded_by_a_sync(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _version_1_state(path)
    with SyncState.open_read_only(path) as state:
        known = state.lookup(["user-1"])["user-1"]
        assert (known.fingerprint, known.slot, known.raw) == (fp("v1"), 0, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]  # nothing written
    with SyncState.open(path) as state:
        assert state.lookup(["user-1"])["user-1"].raw is None
        night = night_with(state, tmp_path, [("user-2", "v2")])
        state.promote(night, [chunk(0, 1, 1)], {})
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 2
    db.close()


def test_promotion_marks_synced_all_but_failed_users_and_ends_the_night(tmp_path: Path) -> None:
    with SyncState.open(tmp_path / "state.db") as state:
        rows = [(f"user-{i}", f"v1-{i}") for i in range(10)]
        night = night_with(state, tmp_path, rows)
        assert state.open_night() == night
        chunks = [chunk(0, 1, 4), chunk(1, 5, 8, failed=frozenset({"user-6"})), chunk(2, 9, 10)]
        promotion = state.promote(night, chunks[:2], {"new": 10})
        assert promotion.synced == 7  # chunk 2 did not complete, user-6 failed
        assert promotion.skipped_chunks == ()
        assert state.open_night() is None
        assert state.pending_count() == 0
        found = state.lookup([key for key, _ in rows])
        assert sorted(found) == sorted(f"user-{i}" for i in (0, 1, 2, 3, 4, 5, 7))
        assert found["user-0"].fingerprint == fp("v1-0")
        synced = state.synced_user("user-7")
        assert synced is not None
        assert synced[1:] == ("job_0000000000000001", "2026-11-27T02:00:00.000Z")
        assert state.night_counts(night)["synced"] == 7


def test_a_chunk_that_does_not_add_up_is_never_promoted(tmp_path: Path) -> None:
    with SyncState.open(tmp_path / "state.db") as state:
        night = night_with(state, tmp_path, [(f"u{i}", "x") for i in range(6)])
        wrong_size = dataclasses.replace(chunk(0, 1, 3), users=4)
        unknown_failure = chunk(1, 4, 6, failed=frozenset({"somebody-else"}))
        promotion = state.promote(night, [wrong_size, unknown_failure], {})
        assert promotion.synced == 0
        assert promotion.skipped_chunks == (0, 1)
        assert state.user_count() == 0


def test_a_changed_user_keeps_its_slot_and_gets_the_new_fingerprint(tmp_path: Path) -> None:
    with SyncState.open(tmp_path / "state.db") as state:
        first = night_with(state, tmp_path, [("a", "1"), ("b", "1")])
        state.promote(first, [chunk(0, 1, 2)], {})
        before = state.lookup(["a", "b"])
        second = night_with(state, tmp_path, [("b", "2"), ("c", "1")])
        state.promote(second, [chunk(0, 1, 2)], {})
        after = state.lookup(["a", "b", "c"])
        assert after["a"] == before["a"]
        assert after["b"].slot == before["b"].slot
        assert after["b"].fingerprint == fp("2")
        assert len({known.slot for known in after.values()}) == 3
        assert state.next_slot == 3


def test_lookup_handles_many_keys_and_repeats(tmp_path: Path) -> None:
    with SyncState.open(tmp_path / "state.db") as state:
        count = LOOKUP_BATCH * 2 + 17
        night = night_with(state, tmp_path, [(f"k{i}", "x") for i in range(count)])
        state.promote(night, [chunk(0, 1, count)], {})
        keys = [f"k{i}" for i in range(0, count, 3)] + ["absent", "k0", "k0"]
        found = state.lookup(keys)
        assert set(found) == {f"k{i}" for i in range(0, count, 3)}
        assert state.lookup([]) == {}


def test_missing_is_every_user_whose_slot_was_not_seen(tmp_path: Path) -> None:
    with SyncState.open(tmp_path / "state.db") as state:
        night = night_with(state, tmp_path, [(f"k{i}", "x") for i in range(5)])
        state.promote(night, [chunk(0, 1, 5)], {})
        seen = bytearray(state.next_slot)
        for known in state.lookup(["k0", "k2", "k4"]).values():
            seen[known.slot] = 1
        assert sorted(state.missing(seen)) == ["k1", "k3"]
        assert list(state.missing(bytearray(b"\x01" * 5))) == []


def test_an_unfinished_diff_leaves_no_pending_rows_behind(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state = SyncState.open(path)
    night = state.begin_night(tmp_path / "night")
    state.add_pending([(1, "a", fp("a"), 0, None)])
    state.close()  # the process died before finish_diff: the rows were never committed
    with SyncState.open(path) as state:
        assert state.open_night() == night
        assert state.pending_count() == 0
        state.close_night(night, {}, status="abandoned")
        assert state.open_night() is None


def test_a_promotion_is_all_or_nothing(tmp_path: Path) -> None:
    with SyncState.open(tmp_path / "state.db") as state:
        night = night_with(state, tmp_path, [("a", "1"), ("b", "1")])
        bad = dataclasses.replace(chunk(1, 2, 2), chunk=None)  # type: ignore[arg-type]
        with pytest.raises(sqlite3.IntegrityError):
            state.promote(night, [chunk(0, 1, 1), bad], {})
        assert state.user_count() == 0
        assert state.pending_count() == 2
        assert state.open_night() == night


def test_the_lock_admits_one_holder_and_names_it(tmp_path: Path) -> None:
    path = lock_path(tmp_path / "state.db")
    assert path.name == "state.db.lock"
    with SyncLock.acquire(path), pytest.raises(SyncBusyError, match=f"pid {os.getpid()}"):
        SyncLock.acquire(path)
    with SyncLock.acquire(path):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "state.db.lock"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from orchestrator.sync.lock import SyncLock\n"
        f"SyncLock.acquire(Path({str(path)!r}))\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SyncBusyError):
            SyncLock.acquire(path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            SyncLock.acquire(path).release()
            break
        except SyncBusyError:
            assert time.monotonic() < deadline
            time.sleep(0.01)
