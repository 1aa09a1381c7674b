"""Sync benchmark: an unchanged night against the bare decode of the same export, at 1M users.

Night 1 (everyone new) is diffed and promoted in-process through the sync's own modules, as a real
night would leave the state. Then the real `orchestrator sync` process runs against the sandbox:
night 2 with the same export (unchanged: nothing sent), night 3 with 1% changed and 1% new users,
night 4 with night 3's export again. Each is measured for wall time and peak RSS, next to the bare
decode of the export (`_measure baseline decode`) in the same run. `SYNC_BENCH_USERS` changes the
size (default 1,000,000).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Final

import orjson

from orchestrator.plan.planner import ChunkLayout, count_only, plan_chunks
from orchestrator.sandbox import DATABASE_CONNECTION_ID, SandboxSettings, SandboxThread
from orchestrator.settings import PlanSettings, SourceSettings
from orchestrator.sources.formats import Export
from orchestrator.sync.diff import diff_export
from orchestrator.sync.state import ChunkResult, SyncState
from tests.benchmarks._measure import ChildRun, run_child
from tests.benchmarks.conftest import ExportCache
from tests.run_helpers import REPO, client_env

USERS = int(os.environ.get("SYNC_BENCH_USERS", "1000000"))
#: Target of an unchanged night: at most this times the bare decode of the export.
TARGET_RATIO: Final = 3.0
#: Every 100th user changes, and one new user per 100 arrives: a 1% + 1% night.
EVERY = 100


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


def first_night(source: str, state_path: Path, night_dir: Path) -> tuple[int, float]:
    """Diff everyone as new and promote them all, as a completed night 1 leaves the state."""
    started = time.perf_counter()
    with SyncState.open(state_path) as state:
        state.set_meta("connection_id", DATABASE_CONNECTION_ID)
        state.set_meta("normalisation", "keep_user_id_prefix=0,drop_unknown_fields=0")
        night_dir.mkdir()
        night = state.begin_night(night_dir)
        night_input = night_dir / "sync-input.ndjson"
        with night_input.open("wb") as send:
            result = diff_export(
                Export(source, SourceSettings()), state, PlanSettings(), send=send, rejects=None,
                record_pending=True,
            )  # fmt: skip
        state.finish_diff(night, result.next_slot, result.counts.as_json())
        layout = ChunkLayout(512_000, "orch-bench000")
        export = Export(str(night_input), SourceSettings())
        plan = plan_chunks(
            export.batches(), PlanSettings(keep_user_id_prefix=True), layout, count_only(layout),
            rejects=None, where=export.reader.where,
        )  # fmt: skip
        chunks = [
            ChunkResult(c.index, f"job_{c.index:016d}", c.external_id, None, c.first_position,
                        c.last_position, c.users, frozenset())
            for c in plan.chunks
        ]  # fmt: skip
        night = state.mark_uploading(night, "bench")
        synced = state.promote(night, chunks, {}).synced
        state.checkpoint()
    return synced, time.perf_counter() - started


def sync_child(source: Path, state: Path, server: SandboxThread) -> tuple[ChildRun, dict[str, Any]]:
    argv = [
        sys.executable, "-m", "orchestrator", "sync", str(source), "--state", str(state),
        "--connection-id", DATABASE_CONNECTION_ID, "--max-rps", "50", "--log-format", "json",
        "--quiet",
    ]  # fmt: skip
    child = run_child(argv, cwd=REPO, env=client_env(server), timeout_s=3600)
    assert child.returncode == 0, child.tail()
    summary = orjson.loads(child.stdout.strip().splitlines()[-1])
    return child, summary


def decode_baseline(path: Path) -> ChildRun:
    argv = [sys.executable, "-m", "tests.benchmarks._measure", "baseline", "decode", str(path)]
    run = run_child(argv, cwd=REPO, timeout_s=3600)
    assert run.returncode == 0, run.tail()
    return run


def test_sync_nights_at_scale(tmp_path: Path, export_cache: ExportCache) -> None:
    export = export_cache.get(USERS)
    state_path = tmp_path / "state.db"
    synced, first_s = first_night(str(export.path), state_path, tmp_path / "night1")
    assert synced == USERS
    night3 = tmp_path / "night3.ndjson"
    changed, new = write_night3(export.path, night3)
    sandbox = SandboxSettings(
        job_latency=0.0, job_seconds=0.05, user_store="none", record_emails=False,
        record_requests=False,
    )  # fmt: skip
    with SandboxThread(sandbox) as server:
        decode2 = [decode_baseline(export.path)]
        unchanged, summary2 = sync_child(export.path, state_path, server)
        decode2.append(decode_baseline(export.path))
        third, summary3 = sync_child(night3, state_path, server)
        jobs3 = len(server.state.jobs())
        decode4 = decode_baseline(night3)
        fourth, summary4 = sync_child(night3, state_path, server)
        jobs4 = len(server.state.jobs()) - jobs3
    assert (summary2["sent"], summary2["unchanged"]) == (0, USERS)
    assert (summary3["changed"], summary3["new"], summary3["synced"]) == (
        changed,
        new,
        changed + new,
    )
    assert (summary4["sent"], jobs4) == (0, 0)
    base2 = min(run.wall_s for run in decode2)
    ratio2, ratio4 = unchanged.wall_s / base2, fourth.wall_s / decode4.wall_s
    print(f"\nsync benchmark: {USERS:,} users (NDJSON, {export.size / 1e6:,.0f} MB)")
    print(f"night 1 (all new, in-process diff + promotion): {first_s:.1f} s")
    print(f"{'night':<40}{'wall s':>8}{'decode s':>10}{'ratio':>7}{'RSS MB':>8}  target")
    for name, run, base, ratio in (
        ("2: unchanged (nothing sent)", unchanged, base2, ratio2),
        ("4: night 3's export again (unchanged)", fourth, decode4.wall_s, ratio4),
    ):
        verdict = "ok" if ratio <= TARGET_RATIO else "MISS"
        print(
            f"{name:<40}{run.wall_s:>8.2f}{base:>10.2f}{ratio:>7.2f}{run.peak_rss_mb:>8.0f}  "
            f"ratio <= {TARGET_RATIO:g} {verdict}"
        )
    print(
        f"{'3: 1% changed + 1% new':<40}{third.wall_s:>8.2f}{'':>10}{'':>7}"
        f"{third.peak_rss_mb:>8.0f}  {summary3['changed']:,} changed + {summary3['new']:,} new "
        f"-> {summary3['sent']:,} sent in {jobs3} jobs"
    )
    state_bytes = state_path.stat().st_size
    print(
        f"state after night 4: {state_bytes / 1e6:,.1f} MB for {USERS + new:,} users, "
        f"{state_bytes / (USERS + new):.0f} bytes a user"
    )
    print(
        "wall: the whole `orchestrator sync` process (start-up, pre-flight, lock, diff, missing "
        "scan, summary); decode: orjson.loads of every line of the same export, in its own process"
    )
