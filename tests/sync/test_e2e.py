"""`orchestrator sync` end to end: the real CLI process, night after night, against the sandbox."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from orchestrator.cli.exit_codes import ExitCode
from orchestrator.sandbox import DATABASE_CONNECTION_ID, SandboxThread
from orchestrator.sync.lock import SyncLock, lock_path
from orchestrator.sync.state import SyncState
from tests.run_helpers import FAST, cli, client_env, run_cli, sandbox

REQUEST_BYTES = 20_000
#: Jobs take 50 ms in the sandbox: a night of a few hundred users takes about a second.
QUICK = {"job_seconds": 0.05, "job_latency": 0.0}


def make_users(count: int, *, prefix: str = "user", start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "email": f"{prefix}{i}@example.com",
            "email_verified": True,
            "user_id": f"{prefix}-{i:05d}",
            "name": f"User Number {i}",
            "user_metadata": {"note": "x" * (i % 50)},
        }
        for i in range(start, start + count)
    ]


def write_export(path: Path, users: Sequence[object]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(user) for user in users) + b"\n")
    return path


def sync_args(source: Path, state: Path, *extra: str) -> list[str | Path]:
    return [
        "sync",
        source,
        "--state",
        state,
        "--connection-id",
        DATABASE_CONNECTION_ID,
        "--max-request-bytes",
        str(REQUEST_BYTES),
        "--max-rps",
        "200",
        "--log-format",
        "json",
        *extra,
    ]


def events(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    last = events(done)[-1]
    assert last["event"] == "summary", done.stdout
    return last


def sync(
    server: SandboxThread, source: Path, state: Path, *extra: str, expect: int = 0
) -> dict[str, Any]:
    done = run_cli(sync_args(source, state, *extra), client_env(server))
    assert done.returncode == expect, done.stderr + done.stdout[-2000:]
    return summary(done)


def emails_sent(server: SandboxThread, since: int) -> list[str]:
    return sorted(email for job in server.state.jobs()[since:] for email in job.emails)


def synced_keys(state_path: Path, keys: Sequence[str]) -> set[str]:
    with SyncState.open(state_path) as state:
        return set(state.lookup(list(keys)))


def test_first_night_imports_all_then_unchanged_sends_nothing_then_only_the_one_percent(
    tmp_path: Path,
) -> None:
    users = make_users(400)
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    with sandbox(FAST, **QUICK) as server:
        first = sync(server, write_export(source, users), state)
        assert (first["new"], first["synced"], first["not_synced"]) == (400, 400, 0)
        assert server.state.user_count == 400
        assert first["jobs"] == len(server.state.jobs()) >= 3
        assert synced_keys(state, [u["user_id"] for u in users]) == {u["user_id"] for u in users}

        second = sync(server, source, state)
        assert (second["unchanged"], second["sent"], second["jobs"]) == (400, 0, 0)
        assert len(server.state.jobs()) == first["jobs"]
        assert not (Path(second["run_dir"]) / "manifest.json").exists()

        # Tonight: 1% changed, 1% new, three users gone from the source.
        changed = users[10::100]
        for user in changed:
            user["name"] = "Renamed " + user["name"]
        new = make_users(4, prefix="newcomer")
        gone = users[5:8]
        tonight = [u for u in users if u not in gone] + new
        before = len(server.state.jobs())
        third = sync(server, write_export(source, tonight), state)
        assert (third["new"], third["changed"], third["missing"]) == (4, 4, 3)
        assert third["unchanged"] == 400 - 4 - 3
        assert emails_sent(server, before) == sorted(u["email"] for u in changed + new)
        for user in changed:
            (profile,) = server.state.users_by_email(user["email"])
            assert profile["name"] == user["name"]
        for user in gone:  # reported, never deleted
            assert len(server.state.users_by_email(user["email"])) == 1
        missing = Path(third["missing_file"]).read_bytes().splitlines()
        assert sorted(orjson.loads(line)["key"] for line in missing) == [u["user_id"] for u in gone]
        assert oct(Path(third["missing_file"]).stat().st_mode & 0o777) == "0o600"

        fourth = sync(server, source, state)
        assert (fourth["sent"], fourth["missing"]) == (0, 3)
        assert len(server.state.jobs()) == len(server.state.jobs()[:before]) + third["jobs"]


def test_a_user_the_server_fails_is_retried_the_next_night(tmp_path: Path) -> None:
    users = make_users(100)
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    with sandbox(FAST, **QUICK) as server:
        sync(server, write_export(source, users), state)
        for user in users[:3]:
            user["user_metadata"] = {"plan": "gold"}
        fresh = make_users(2, prefix="fresh")
        poisoned = [users[1]["email"], fresh[0]["email"]]
        server.state.faults.poison_users(poisoned, code="CONFLICT")
        night = sync(server, write_export(source, users + fresh), state, expect=1)
        assert (night["sent"], night["synced"], night["not_synced"]) == (5, 3, 2)
        assert synced_keys(state, [users[1]["user_id"], fresh[0]["user_id"]]) == {
            users[1]["user_id"]  # known from the first night, with its old fingerprint
        }

        server.state.faults.clear()
        before = len(server.state.jobs())
        again = sync(server, source, state)
        assert (again["changed"], again["new"], again["synced"]) == (1, 1, 2)
        assert emails_sent(server, before) == sorted(poisoned)
        assert sync(server, source, state)["sent"] == 0


def test_a_chunk_that_fails_for_good_is_sent_again_the_next_night(tmp_path: Path) -> None:
    users = make_users(150)
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    with sandbox(FAST, **QUICK) as server:
        server.state.faults.fail_jobs(1)
        first = sync(server, write_export(source, users), state, "--max-attempts", "1", expect=3)
        assert 0 < first["not_synced"] == first["sent"] - first["synced"] < 150
        before = len(server.state.jobs())
        second = sync(server, source, state)
        assert (second["new"], second["synced"]) == (first["not_synced"], first["not_synced"])
        assert len(emails_sent(server, before)) == first["not_synced"]
        assert server.state.user_count == 150


def test_dry_run_classifies_and_changes_nothing(tmp_path: Path) -> None:
    users = make_users(50)
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    with sandbox(FAST, **QUICK) as server:
        dry = sync(server, write_export(source, users), state, "--dry-run")
        assert (dry["dry_run"], dry["new"]) == (True, 50)
        assert not state.exists()
        assert not (tmp_path / "state.db.runs").exists()
        sync(server, source, state)
        users[0]["name"] = "Someone Else"
        before = (len(server.state.jobs()), sorted((tmp_path / "state.db.runs").iterdir()))
        dry = sync(
            server, write_export(source, users[1:] + make_users(1, prefix="x")), state, "--dry-run"
        )
        assert (dry["new"], dry["changed"], dry["unchanged"], dry["missing"]) == (1, 0, 49, 1)
        after = (len(server.state.jobs()), sorted((tmp_path / "state.db.runs").iterdir()))
        assert after == before
        with SyncState.open(state) as opened:
            assert opened.open_night() is None
            assert opened.pending_count() == 0


def test_a_second_sync_on_the_same_state_exits_4_and_does_nothing(tmp_path: Path) -> None:
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    write_export(source, make_users(20))
    with sandbox(FAST, **QUICK) as server, SyncLock.acquire(lock_path(state)):
        done = run_cli(sync_args(source, state), client_env(server))
        assert done.returncode == ExitCode.SYNC_BUSY
        assert ExitCode.SYNC_BUSY.value == 4
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "another sync is running" in lines[0]
        assert server.state.jobs() == []
        assert not state.exists()


def test_a_state_belongs_to_one_connection(tmp_path: Path) -> None:
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    with sandbox(FAST, **QUICK) as server:
        sync(server, write_export(source, make_users(10)), state)
        args = sync_args(source, state)
        args[args.index(DATABASE_CONNECTION_ID)] = "con_AAAAAAAAAAAAAAAA"
        done = run_cli(args, client_env(server))
        assert done.returncode == 2
        assert "one state file per connection" in done.stderr
        assert "Traceback" not in done.stderr


def test_malformed_export_exits_2_and_leaves_no_night_behind(tmp_path: Path) -> None:
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    with sandbox(FAST, **QUICK) as server:
        sync(server, write_export(source, make_users(10)), state)
        source.write_bytes(b'{"email": "a@example.com"}\n{"email": \n')
        done = run_cli(sync_args(source, state), client_env(server))
        assert done.returncode == 2, done.stderr
        assert "line 2" in done.stderr
        assert len(list((tmp_path / "state.db.runs").iterdir())) == 1  # the first night only
        with SyncState.open(state) as opened:
            assert opened.open_night() is None
            assert opened.user_count() == 10


def test_users_rejected_locally_exit_1_every_night_and_are_not_missing(tmp_path: Path) -> None:
    users: list[dict[str, Any]] = make_users(20)
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    with sandbox(FAST, **QUICK) as server:
        sync(server, write_export(source, users), state)
        users[3]["email"] = "no-at-sign"
        night = sync(server, write_export(source, users), state, expect=1)
        assert (night["rejected_locally"], night["missing"], night["sent"]) == (1, 0, 0)
        rejects = Path(night["run_dir"]) / "sync-rejects.ndjson"
        (reject,) = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
        assert reject["where"] == "line 4"


def test_a_night_whose_diff_never_finished_is_discarded(tmp_path: Path) -> None:
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    with sandbox(FAST, **QUICK) as server:
        sync(server, write_export(source, make_users(30)), state)
        stale = tmp_path / "state.db.runs" / "stale-night"
        with SyncState.open(state) as opened:
            night = opened.begin_night(stale)
            opened.add_pending([(1, "user-00001", b"x" * 16, 1, None)])
        stale.mkdir()
        (stale / "sync-input.ndjson").write_bytes(b"{}\n")
        done = run_cli(sync_args(source, state), client_env(server))
        assert done.returncode == 0, done.stderr
        assert not stale.exists()
        assert any("discarding" in str(e.get("message")) for e in events(done))
        assert summary(done)["sent"] == 0
        with SyncState.open(state) as opened:
            assert opened.open_night() is None
            assert opened.night_counts(night) == {"abandoned": "diff unfinished"}


def test_a_night_that_cannot_be_resumed_is_abandoned_and_its_users_sent_again(
    tmp_path: Path,
) -> None:
    users = make_users(30)
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    with sandbox(FAST, **QUICK) as server:
        sync(server, write_export(source, users[:20]), state)
        broken = tmp_path / "state.db.runs" / "broken-night"
        broken.mkdir()
        (broken / "manifest.json").write_bytes(b"{not json")
        with SyncState.open(state) as opened:
            night = opened.begin_night(broken)
            opened.finish_diff(night, opened.next_slot, {})
            opened.mark_uploading(night, "broken")
        done = run_cli(sync_args(write_export(source, users), state), client_env(server))
        assert done.returncode == 0, done.stderr
        assert any("abandoning" in str(e.get("message")) for e in events(done))
        assert (summary(done)["new"], summary(done)["synced"]) == (10, 10)
        with SyncState.open(state) as opened:
            assert opened.open_night() is None


def test_sigterm_during_the_diff_stops_cleanly_with_130(tmp_path: Path) -> None:
    source, state = tmp_path / "export.ndjson", tmp_path / "state.db"
    runs = tmp_path / "state.db.runs"
    write_export(source, make_users(60_000))  # a diff of about a second
    with sandbox(FAST, **QUICK) as server:
        process = subprocess.Popen(
            cli(*sync_args(source, state)),
            env=client_env(server),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not (runs.is_dir() and any(runs.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.005)  # the night's directory exists: the diff has begun
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 130, stderr
        assert "interrupted" in stderr
        assert server.state.jobs() == []
        assert list(runs.iterdir()) == []  # no half-written night (nor its copy of users) left
        with SyncState.open(state) as opened:
            assert opened.open_night() is None
            assert opened.user_count() == 0
