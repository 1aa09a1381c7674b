"""Unknown outcomes are resolved from the tenant, not guessed: the real CLI against the sandbox.

A job whose outcome cannot be read (its POST cut off after the service created it, its record deleted
after the retention, a chunk found `submitting` on resume) is never sent again blindly: its users are
looked up, those the unseen job imported are counted, and only the others are sent again.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from orchestrator.rundir.tracker import load_manifest
from orchestrator.sandbox import SandboxThread
from tests.run_helpers import (
    FAST,
    assert_every_user_once,
    cli,
    client_env,
    report,
    run_args,
    run_cli,
    sandbox,
    write_users,
)

REQUEST_BYTES = 8_000


def sent_twice(server: SandboxThread) -> list[str]:
    """Emails that more than one job carried (a user sent twice)."""
    counts = Counter(email for job in server.state.jobs() for email in job.emails)
    return sorted(email for email, count in counts.items() if count > 1)


def listed(result: dict[str, object], key: str) -> list[dict[str, Any]]:
    """A list of objects of the report."""
    value = result[key]
    assert isinstance(value, list)
    return value


def wait_for(condition: object, timeout: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_cut_post_whose_job_ran_is_not_sent_again(tmp_path: Path) -> None:
    with sandbox(FAST, seed=3) as server:
        server.state.faults.reset_after_create(2)
        users = write_users(tmp_path / "users.json", 200)
        run_dir = tmp_path / "run"
        done = run_cli(
            run_args(tmp_path / "users.json", run_dir, request_bytes=REQUEST_BYTES),
            client_env(server),
        )
        assert done.returncode == 0, done.stderr
        assert_every_user_once(server, users)
        assert sent_twice(server) == []
        dropped = {job.external_id for job in server.state.jobs() if job.response_dropped}
        assert len(dropped) == 2
        result = report(run_dir)
        assert result["failed"] == 0
        assert result["inserted"] == 200
        assert result["ambiguous_resubmissions"] == 0  # nothing was sent again
        resolved = {r["external_id"]: r for r in listed(result, "resolutions")}
        assert set(resolved) == dropped
        assert all(r["resent"] == 0 and r["found"] == r["looked_up"] for r in resolved.values())
        for chunk in load_manifest(run_dir).chunks:
            assert chunk.status == "completed"
            assert chunk.summary is not None
            assert chunk.summary["total"] == chunk.users


def test_a_cut_post_whose_job_still_runs_ends_without_failures(tmp_path: Path) -> None:
    # The unseen job is still running when its users are looked up: none is found, the chunk is
    # sent again, and the second job finds them all existing. Those DUPLICATED_USER failures are
    # users the first job created after the chunk's first submission: imported, not failed.
    with sandbox(FAST, job_seconds=1.5, seed=5) as server:
        server.state.faults.reset_after_create(1)
        users = write_users(tmp_path / "users.json", 30)
        run_dir = tmp_path / "run"
        done = run_cli(
            run_args(tmp_path / "users.json", run_dir, "--job-slots", "1", request_bytes=50_000),
            client_env(server),
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr
        assert_every_user_once(server, users)
        jobs = server.state.jobs()
        assert len(jobs) == 2  # the unseen one and the one sent again
        assert jobs[1].summary is not None
        assert jobs[1].summary.failed == 30  # every user was there already
        result = report(run_dir)
        assert (result["inserted"], result["failed"]) == (30, 0)
        assert result["failed_by_code"] == {}
        assert orjson.loads((run_dir / "duplicated-users.json").read_bytes()) == []
        kinds = [r["kind"] for r in listed(result, "resolutions")]
        assert kinds == ["unseen_job", "duplicates"]
        assert result["ambiguous_resubmissions"] == 1


def test_a_mixed_sample_sends_again_only_the_missing_users(tmp_path: Path) -> None:
    # The unseen job failed a few users (poisoned): the sample is mixed, every user is looked up
    # and only those it did not import go out again, in a users file of their own.
    with sandbox(FAST, seed=11) as server:
        users = write_users(tmp_path / "users.json", 40)
        poisoned = [str(users[0]["email"]), str(users[17]["email"])]
        server.state.faults.poison_users(poisoned, code="CONFLICT")
        server.state.faults.reset_after_create(1)
        run_dir = tmp_path / "run"
        done = run_cli(
            run_args(tmp_path / "users.json", run_dir, request_bytes=50_000), client_env(server)
        )
        assert done.returncode == 1, done.stderr  # the poisoned two fail again, for real
        jobs = server.state.jobs()
        assert [job.users for job in jobs] == [40, 2]
        assert sorted(jobs[1].emails) == sorted(poisoned)
        (chunk,) = load_manifest(run_dir).chunks
        resolution, checked = chunk.resolutions
        assert (checked.kind, checked.looked_up) == ("duplicates", 0)  # CONFLICT is no duplicate
        assert (resolution.looked_up, resolution.found, resolution.resent) == (40, 38, 2)
        assert resolution.file == "chunks/000000.r1.json"
        resent = orjson.loads((run_dir / resolution.file).read_bytes())
        assert [u["email"] for u in resent] == poisoned
        assert ((run_dir / resolution.file).stat().st_mode & 0o777) == 0o600
        result = report(run_dir)
        assert (result["inserted"], result["failed"]) == (38, 2)
        assert result["failed_by_code"] == {"CONFLICT": 2}


def test_without_read_users_an_unknown_outcome_is_named_and_never_guessed(tmp_path: Path) -> None:
    with sandbox(FAST, scopes=("create:users", "read:connections"), seed=2) as server:
        server.state.faults.reset_after_create(1)
        users = write_users(tmp_path / "users.json", 100)
        run_dir = tmp_path / "run"
        done = run_cli(
            [
                *run_args(tmp_path / "users.json", run_dir, request_bytes=REQUEST_BYTES)[:-2],
                "--log-format",
                "text",
            ],
            client_env(server),
        )
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert sent_twice(server) == []
        result = report(run_dir)
        (unknown,) = listed(result, "unknown")
        dropped = [job for job in server.state.jobs() if job.response_dropped]
        assert unknown["external_id"] == dropped[0].external_id
        assert "unknown" in unknown["detail"]
        assert "read:users" in str(result["next_step"])
        assert result["unfinished_chunks"] == []
        assert "read:users" in done.stdout  # the summary says what to do
        assert "unknown: chunk" in done.stdout
        # The users the unseen job imported are all there, once.
        assert_every_user_once(server, users)


def test_a_resume_after_the_job_records_are_gone_sends_no_chunk_twice(tmp_path: Path) -> None:
    # Friday's run is killed with jobs running; by Monday the service has deleted their records.
    with sandbox(FAST, job_seconds=0.3, retention=1.0, seed=13) as server:
        users = write_users(tmp_path / "users.json", 300)
        run_dir = tmp_path / "run"
        args = run_args(tmp_path / "users.json", run_dir, request_bytes=REQUEST_BYTES)
        process = subprocess.Popen(
            cli(*args), env=client_env(server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: len(server.state.jobs()) >= 3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        running = ("submitting", "pending", "processing")
        in_flight = [c.index for c in load_manifest(run_dir).chunks if c.status in running]
        assert in_flight  # jobs the killed run never saw end
        wait_for(lambda: all(job.status == "deleted" for job in server.state.jobs()))

        resumed = run_cli(["resume", "--run-dir", run_dir, "--max-rps", "200"], client_env(server))
        assert resumed.returncode == 0, resumed.stderr
        assert_every_user_once(server, users)
        assert sent_twice(server) == []
        result = report(run_dir)
        assert (result["inserted"], result["failed"]) == (300, 0)
        settled = {r["chunk"] for r in listed(result, "resolutions")}
        assert set(in_flight) <= settled
        assert result["ambiguous_resubmissions"] == 0


def test_with_upsert_a_resume_does_not_apply_old_data_again(tmp_path: Path) -> None:
    # A sync's run (upsert) is killed; its jobs ran, their records are gone, and meanwhile a user
    # was changed in the tenant. Sending the chunk again would put the old data back.
    with sandbox(FAST, job_seconds=0.3, retention=1.0, seed=17) as server:
        users = write_users(tmp_path / "users.json", 60)
        run_dir = tmp_path / "run"
        args = [
            *run_args(tmp_path / "users.json", run_dir, "--job-slots", "1", request_bytes=50_000),
            "--upsert",
        ]
        process = subprocess.Popen(
            cli(*args), env=client_env(server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: len(server.state.jobs()) >= 1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        wait_for(lambda: all(job.status == "deleted" for job in server.state.jobs()))
        changed = {**users[4], "name": "Changed Since"}
        (tmp_path / "changed.json").write_bytes(orjson.dumps([changed]))
        later = run_cli(
            [*run_args(tmp_path / "changed.json", tmp_path / "other"), "--upsert"],
            client_env(server),
        )
        assert later.returncode == 0, later.stderr

        resumed = run_cli(["resume", "--run-dir", run_dir, "--max-rps", "200"], client_env(server))
        assert resumed.returncode == 0, resumed.stderr
        (profile,) = server.state.users_by_email(str(users[4]["email"]))
        assert profile["name"] == "Changed Since"
        assert len(server.state.jobs()) == 2  # the killed run's job and the later change
        assert server.state.user_count == 60
