"""Sync benchmark: diff throughput and state size at 1 million users (extrapolated to 10 million),
and the jobs of a 1%-changed night versus a full upsert of everyone.

Nights 1 and 2 (all new, then unchanged) run in-process through the sync's own modules, timed stage
by stage next to planning the same export (what a full `run --upsert` reads). Night 3 (1% changed,
1% new) and night 4 (the same export again) run as the real `orchestrator sync` process against the
sandbox, measured for wall time and peak RSS. `SYNC_BENCH_USERS` changes the size;
`SYNC_BENCH_10M=1` also times lookups in a synthetic 10-million-row state.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from orchestrator.planner import PlanOptions, count_only_sink, plan_export
from orchestrator.reader import ExportReader

from orchestrator.sandbox import DATABASE_CONNECTION_ID, SandboxSettings, SandboxThread
from orchestrator.sync.diff import diff_export
from orchestrator.sync.state import ChunkResult, SyncState
from tests.benchmarks._measure import ChildRun, run_child
from tests.benchmarks.conftest import ExportCache
from tests.run_helpers import client_env

USERS = int(os.environ.get("SYNC_BENCH_USERS", "1000000"))
TARGET = 10_000_000
OPTIONS = PlanOptions(external_id_prefix="orch-bench000")
NIGHT_OPTIONS = PlanOptions(keep_user_id_prefix=True, external_id_prefix="orch-bench000")
#: Every 100th user changes, and one new user per 100 arrives: a 1% + 1% night.
EVERY = 100


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    users: int
    seconds: float

    @property
    def us_per_user(self) -> float:
        return self.seconds / self.users * 1e6

    @property
    def per_second(self) -> float:
        return self.users / self.seconds


def timed(name: str, users: int, action: Any) -> tuple[Stage, Any]:
    start = time.perf_counter()
    result = action()
    return Stage(name, users, time.perf_counter() - start), result


def live_bytes(path: Path) -> int:
    """Bytes of the state's pages in use (the file less its free pages), after a checkpoint."""
    import sqlite3

    db = sqlite3.connect(path)
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()
    return int((pages - free) * size)


def write_night3(source: Path, target: Path) -> tuple[int, int]:
    """The export with every 100th user changed and one new user per 100 appended."""
    changed = new = 0
    newcomers: list[bytes] = []
    with source.open("rb") as src, target.open("wb") as out:
        for i, line in enumerate(src):
            if i % EVERY == EVERY // 2:
                user = orjson.loads(line)
                user["name"] = f"Changed Tonight {i}"
                line = orjson.dumps(user) + b"\n"
                changed += 1
            if i % EVERY == 0:
                user = orjson.loads(line)
                user["email"] = f"new.{user['email']}"
                if "user_id" in user:
                    user["user_id"] = f"n{user['user_id']}"
                newcomers.append(orjson.dumps(user) + b"\n")
                new += 1
            out.write(line)
        out.writelines(newcomers)
    return changed, new


def sync_child(source: Path, state: Path, server: SandboxThread) -> tuple[ChildRun, dict[str, Any]]:
    argv = [
        sys.executable,
        "-m",
        "orchestrator",
        "sync",
        str(source),
        "--state",
        str(state),
        "--connection-id",
        DATABASE_CONNECTION_ID,
        "--max-rps",
        "50",
        "--log-format",
        "json",
        "--quiet",
    ]
    child = run_child(argv, env=client_env(server), timeout_s=3600)
    assert child.returncode == 0, child.tail()
    summary = orjson.loads(child.stdout.strip().splitlines()[-1])
    return child, summary


def test_sync_nights_at_scale(tmp_path: Path, export_cache: ExportCache) -> None:
    export = export_cache.get(USERS)
    source = str(export.path)
    stages: list[Stage] = []

    state_path = tmp_path / "state.db"
    state = SyncState.open(state_path)
    state.set_meta("connection_id", DATABASE_CONNECTION_ID)
    state.set_meta("normalisation", "keep_user_id_prefix=0,drop_unknown_fields=0")

    # Night 1: everyone is new.
    night_dir = tmp_path / "night1"
    night_dir.mkdir()
    night = state.begin_night(night_dir)
    night_input = night_dir / "sync-input.ndjson"

    def first_diff() -> Any:
        with night_input.open("wb") as send:
            result = diff_export(
                ExportReader(source), state, OPTIONS, send=send, rejects=None, record_pending=True
            )
        state.finish_diff(night, result.next_slot, result.counts.as_json())
        return result

    stage, result = timed("night 1 diff (all new)", USERS, first_diff)
    stages.append(stage)
    sent = plan_export(
        ExportReader(str(night_input)), NIGHT_OPTIONS, store_chunk=count_only_sink(NIGHT_OPTIONS)
    )
    chunks = [
        ChunkResult(c.index, f"job_{c.index:016d}", c.external_id, None, c.first_position,
                    c.last_position, c.users, frozenset())
        for c in sent.chunks
    ]  # fmt: skip
    night = state.mark_uploading(night, "bench")
    stage, promotion = timed(
        "night 1 promote + compact", USERS, lambda: state.promote(night, chunks, {})
    )
    stages.append(stage)
    assert promotion.synced == result.counts.new
    state.checkpoint()
    size_after_first = state.size_bytes()
    live = live_bytes(state_path)

    # Night 2: nothing changed (the nightly steady state), recorded as a real sync records it.
    night = state.begin_night(tmp_path / "night2")

    def unchanged_diff() -> Any:
        result = diff_export(
            ExportReader(source), state, OPTIONS, send=None, rejects=None, record_pending=True
        )
        state.finish_diff(night, result.next_slot, result.counts.as_json())
        missing = sum(1 for _ in state.missing(result.seen))
        state.close_night(night, result.counts.as_json())
        return result, missing

    stage, (result, missing) = timed(
        "night 2 diff (unchanged) + missing scan", USERS, unchanged_diff
    )
    stages.append(stage)
    assert (result.counts.unchanged, missing) == (result.counts.users_read, 0)
    lookups = state_lookup_rate(state, 200_000)
    state.close()

    # What a full `run --upsert` of everyone reads and sends (measured last: the export is warm).
    plan, full = timed(
        "plan the export (a full upsert's reading)",
        USERS,
        lambda: plan_export(ExportReader(source), OPTIONS, store_chunk=count_only_sink(OPTIONS)),
    )
    stages.insert(0, plan)
    full_jobs = len(full.chunks)
    assert full.users_accepted == promotion.synced

    # Nights 3 and 4 through the real CLI: 1% changed + 1% new, then the same export again.
    night3 = tmp_path / "night3.ndjson"
    changed, new = write_night3(export.path, night3)
    sandbox = SandboxSettings(
        job_latency=0.0, job_seconds=0.05, user_store="none", record_emails=False,
        record_requests=False,
    )  # fmt: skip
    with SandboxThread(sandbox) as server:
        third, summary3 = sync_child(night3, state_path, server)
        jobs3 = len(server.state.jobs())
        fourth, summary4 = sync_child(night3, state_path, server)
        jobs4 = len(server.state.jobs()) - jobs3
    assert (summary3["changed"], summary3["new"]) == (changed, new)
    assert summary3["synced"] == changed + new
    assert (summary4["sent"], jobs4) == (0, 0)

    report(
        stages,
        lookups=lookups,
        size=size_after_first,
        live=live,
        full_jobs=full_jobs,
        night3=(third, summary3, jobs3),
        night4=(fourth, summary4),
        state_final=os.path.getsize(state_path),
    )


def state_lookup_rate(state: SyncState, count: int) -> float:
    """Lookups per second of existing keys in random order (the diff's SQL cost alone)."""
    keys = [key for key, _ in zip(state.missing(bytearray()), range(count), strict=False)]
    random.Random(1).shuffle(keys)
    start = time.perf_counter()
    for i in range(0, len(keys), 2_000):
        state.lookup(keys[i : i + 2_000])
    return len(keys) / (time.perf_counter() - start)


def report(
    stages: list[Stage],
    *,
    lookups: float,
    size: int,
    live: int,
    full_jobs: int,
    night3: tuple[ChildRun, dict[str, Any], int],
    night4: tuple[ChildRun, dict[str, Any]],
    state_final: int,
) -> None:
    scale = TARGET / USERS
    print(f"\nsync benchmark: {USERS:,} users (NDJSON export), extrapolated to {TARGET:,}")
    print(f"{'stage':<42}{'seconds':>9}{'users/s':>11}{'µs/user':>9}{'at 10M':>10}")
    for s in stages:
        print(
            f"{s.name:<42}{s.seconds:>9.1f}{s.per_second:>11,.0f}{s.us_per_user:>9.1f}"
            f"{s.seconds * scale / 60:>8.1f} m"
        )
    print(f"state lookups alone (random existing keys): {lookups:,.0f}/s")
    per_user = live / USERS
    print(
        f"state after night 1: file {size / 1e6:.1f} MB, live {live / 1e6:.1f} MB = "
        f"{per_user:.0f} B/user -> ~{per_user * TARGET / 1e9:.2f} GB at 10M; "
        f"after nights 3-4: {state_final / 1e6:.1f} MB"
    )
    child3, summary3, jobs3 = night3
    child4, summary4 = night4
    print(
        f"night 3 via `orchestrator sync` (sandbox): {summary3['changed']:,} changed + "
        f"{summary3['new']:,} new of {summary3['users_read']:,} -> {jobs3} jobs, versus "
        f"{full_jobs} jobs for a full upsert of everyone ({jobs3 / full_jobs:.1%}); "
        f"{child3.wall_s:.1f} s wall, peak RSS {child3.peak_rss_mb:.0f} MB"
    )
    print(
        f"night 4 (same export again): {summary4['sent']} sent, 0 jobs; "
        f"{child4.wall_s:.1f} s wall (-> ~{child4.wall_s * scale / 60:.0f} min at 10M), "
        f"peak RSS {child4.peak_rss_mb:.0f} MB"
    )


@pytest.mark.skipif(not os.environ.get("SYNC_BENCH_10M"), reason="set SYNC_BENCH_10M=1")
def test_lookups_in_a_ten_million_user_state(tmp_path: Path) -> None:
    """Indexed lookups at 10M rows versus 1M: the B-tree is one level deeper, not 10x slower."""
    for rows in (1_000_000, TARGET):
        path = tmp_path / f"state-{rows}.db"
        state = SyncState.open(path)
        rng = random.Random(rows)
        keys = [f"{rng.getrandbits(96):024x}" for _ in range(rows)]
        start = time.perf_counter()
        fill(state, keys)
        built = time.perf_counter() - start
        sample = rng.sample(keys, 500_000)
        del keys
        start = time.perf_counter()
        for i in range(0, len(sample), 2_000):
            state.lookup(sample[i : i + 2_000])
        rate = len(sample) / (time.perf_counter() - start)
        state.checkpoint()
        print(
            f"\n{rows:>11,} rows: built in {built:.0f} s, {path.stat().st_size / 1e6:,.0f} MB "
            f"({path.stat().st_size / rows:.0f} B/row), {rate:,.0f} lookups/s"
        )
        state.close()
        path.unlink()


def fill(state: SyncState, keys: list[str]) -> None:
    """Rows as a first night's promotion leaves them (sorted insert: the build is not measured)."""
    night = state.begin_night(Path("synthetic"))
    step = 100_000
    ordered = sorted(keys)
    for start in range(0, len(ordered), step):
        state.add_pending(
            (start + i + 1, key, key.encode()[:16], start + i)
            for i, key in enumerate(ordered[start : start + step])
        )
    state.finish_diff(night, len(ordered), {})
    night = state.mark_uploading(night, "synthetic")
    chunk = ChunkResult(0, None, "x", None, 1, len(ordered), len(ordered), frozenset())
    state.promote(night, [chunk], {})
