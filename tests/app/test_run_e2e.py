"""`orchestrator run` end to end: the real CLI process against the sandbox over HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from orchestrator.sandbox import (
    DATABASE_CONNECTION_ID,
    DISABLED_CONNECTION_ID,
    FaultPlan,
    SandboxThread,
)
from tests.run_helpers import (
    FAST,
    SAMPLE_DATA,
    assert_every_user_once,
    client_env,
    manifest,
    report,
    run_args,
    run_cli,
    sandbox,
    write_users,
)

REQUEST_BYTES = 8_000


def events(stdout: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def check_server_matches_manifest(server: SandboxThread, run_dir: Path) -> None:
    """Job ids and external_ids in the manifest are the ones the server created."""
    jobs = {job.id: job for job in server.state.jobs()}
    for chunk in manifest(run_dir).chunks:
        assert chunk.status == "completed"
        assert chunk.job_id in jobs
        job = jobs[chunk.job_id]
        assert job.external_id == chunk.external_id
        assert job.users == chunk.users
        assert job.connection_id == DATABASE_CONNECTION_ID
        assert job.send_completion_email is False
    for job in jobs.values():
        assert job.request_bytes <= REQUEST_BYTES


@pytest.mark.parametrize("static_token", [False, True], ids=["client-credentials", "static-token"])
def test_every_valid_user_arrives_exactly_once(tmp_path: Path, static_token: bool) -> None:
    token = "sandbox-static-management-token" if static_token else None
    with sandbox(FAST, static_token=token) as server:
        users = write_users(tmp_path / "users.json", 400)
        run_dir = tmp_path / "run"
        done = run_cli(
            run_args(tmp_path / "users.json", run_dir, request_bytes=REQUEST_BYTES),
            client_env(server, static_token=token),
        )
        assert done.returncode == 0, done.stderr
        assert_every_user_once(server, users)
        check_server_matches_manifest(server, run_dir)
        assert len(server.state.jobs()) == len(manifest(run_dir).chunks) >= 5
        assert server.state.peak_active_jobs <= 2
        # One token for the pre-flight check before planning, one for the upload.
        assert server.state.tokens_issued == (0 if static_token else 2)
        summary = events(done.stdout)[-1]
        assert summary["event"] == "summary"
        assert summary["inserted"] == 400
        assert report(run_dir)["inserted"] == 400


def test_running_a_finished_run_again_sends_nothing(tmp_path: Path) -> None:
    with sandbox() as server:
        write_users(tmp_path / "users.json", 100)
        args = run_args(tmp_path / "users.json", tmp_path / "run", request_bytes=REQUEST_BYTES)
        assert run_cli(args, client_env(server)).returncode == 0
        jobs = len(server.state.jobs())
        again = run_cli(args, client_env(server))
        assert again.returncode == 0, again.stderr
        assert len(server.state.jobs()) == jobs


def test_users_rejected_locally_exit_1_and_are_not_sent(tmp_path: Path) -> None:
    mixed = SAMPLE_DATA / "mixed.json"
    with sandbox() as server:
        run_dir = tmp_path / "run"
        done = run_cli(run_args(mixed, run_dir), client_env(server))
        assert done.returncode == 1, done.stderr
        rejects = [
            orjson.loads(line) for line in (run_dir / "rejects.ndjson").read_bytes().splitlines()
        ]
        plan = manifest(run_dir)
        assert len(rejects) == plan.totals.users_rejected > 0
        sent = {email for job in server.state.jobs() for email in job.emails}
        assert len(sent) == plan.totals.users_accepted
        for reject in rejects:
            user = reject["user"]
            if (
                isinstance(user, dict)
                and "email" in user
                and reject["reasons"][0]["reason"]
                not in (
                    "duplicate_email",
                    "duplicate_user_id",
                )
            ):
                assert str(user["email"]).lower() not in sent


def test_every_fault_at_once_ends_like_a_clean_run(tmp_path: Path) -> None:
    with sandbox(FAST, token_lifetime=1.5, seed=7) as server:
        faults = server.state.faults
        imports = "/api/v2/jobs/users-imports"
        faults.fail_requests(1, path_prefix="/oauth/token")
        faults.fail_requests(2, method="POST", path_prefix=imports)
        faults.fail_requests(2, status=502, method="GET", path_prefix="/api/v2/jobs/job_")
        faults.reset_requests(2, method="POST", path_prefix=imports)
        faults.reset_requests(4, method="GET", path_prefix="/api/v2/jobs/job_")
        faults.reset_after_create(3)
        faults.fail_jobs(2)
        faults.rate_limit_429s(3, path_prefix="/api/v2/jobs")
        faults.set_latency(0.0, 0.03)
        users = write_users(tmp_path / "users.json", 300)
        run_dir = tmp_path / "run"
        done = run_cli(
            run_args(tmp_path / "users.json", run_dir, request_bytes=REQUEST_BYTES),
            client_env(server),
        )
        assert done.returncode == 0, done.stderr
        assert_every_user_once(server, users)
        pending = faults.pending()
        kinds = ("fail_requests", "reset_requests", "reset_after_create", "fail_jobs")
        assert all(pending[kind] == 0 for kind in (*kinds, "rate_limit_429s")), pending
        result = report(run_dir)
        # Every user counted once, none failed: a job whose answer was cut off is not mistaken
        # for a lost chunk, and its users are not sent again to fail as DUPLICATED_USER.
        assert (result["inserted"], result["updated"], result["failed"]) == (300, 0, 0)
        assert result["failed_by_code"] == {}
        plan = manifest(run_dir)
        jobs = server.state.jobs()
        dropped = {job.external_id for job in jobs if job.response_dropped}
        assert dropped
        resolved = {item["external_id"] for item in result["resolutions"]}  # type: ignore[attr-defined]
        assert dropped <= resolved
        listed = {item["external_id"] for item in result["ambiguous_chunks"]}  # type: ignore[attr-defined]
        assert dropped <= listed
        for chunk in plan.chunks:
            sent = sum(1 for job in jobs if job.external_id == chunk.external_id)
            failed_jobs = sum(1 for a in chunk.attempts if a.outcome == "failed")
            sent_again = sum(1 for r in chunk.resolutions if r.kind == "unseen_job" and r.resent)
            # One job, one more per failed job, and one more only where the tenant did not have
            # the users of a submission whose outcome was unknown (a POST cut before the service
            # created the job, or a job still running when its users were looked up).
            assert 1 + failed_jobs <= sent <= 1 + failed_jobs + sent_again, chunk.index
        assert result["ambiguous_resubmissions"] == sum(
            1 for c in plan.chunks for r in c.resolutions if r.kind == "unseen_job" and r.resent
        )
        assert server.state.tokens_issued >= 2  # the token expired during the run and was renewed


def test_a_chunk_that_keeps_failing_stops_the_run_unfinished_and_resume_finishes_it(
    tmp_path: Path,
) -> None:
    with sandbox(FAST, faults=FaultPlan(fail_jobs=3)) as server:
        users = write_users(tmp_path / "users.json", 60)
        run_dir = tmp_path / "run"
        args = run_args(tmp_path / "users.json", run_dir, "--job-slots", "1", request_bytes=50_000)
        first = run_cli(args, client_env(server))
        assert first.returncode == 3, first.stderr
        assert manifest(run_dir).chunks[0].status == "failed"
        assert "resume" in first.stdout + first.stderr
        second = run_cli(["resume", "--run-dir", run_dir, "--max-rps", "200"], client_env(server))
        assert second.returncode == 0, second.stderr
        assert_every_user_once(server, users)


def test_a_wrong_connection_stops_at_once_with_exit_2(tmp_path: Path) -> None:
    with sandbox() as server:
        write_users(tmp_path / "users.json", 50)
        args = run_args(tmp_path / "users.json", tmp_path / "run")
        args[args.index(DATABASE_CONNECTION_ID)] = DISABLED_CONNECTION_ID
        done = run_cli(args, client_env(server))
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert "enabled" in done.stderr
        assert server.state.user_count == 0


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"", "empty"),
        (b'[{"email": "a@example.com"}', "byte"),
        (b'{"email": "a@example.com"}\n{"email": \n', "line 2"),
        (b'[{"email": "a@example.com"}] trailing', "byte"),
    ],
    ids=["empty", "truncated", "broken-line", "trailing-garbage"],
)
def test_malformed_input_exits_2_with_one_line_and_sends_nothing(
    tmp_path: Path, content: bytes, where: str
) -> None:
    source = tmp_path / "bad.json"
    source.write_bytes(content)
    with sandbox() as server:
        done = run_cli(run_args(source, tmp_path / "run"), client_env(server))
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert str(source) in lines[0]
        assert where in lines[0]
        assert not server.state.jobs()


def test_chunk_says_how_long_planning_waited_for_the_disk(tmp_path: Path) -> None:
    source = tmp_path / "users.json"
    write_users(source, 50)
    planned = run_cli(["chunk", source, "--run-dir", tmp_path / "run"], dict(os.environ))
    assert planned.returncode == 0, planned.stderr
    (summary,) = [e for e in events(planned.stdout) if e["event"] == "summary"]
    assert isinstance(summary["disk_wait_s"], float)
    assert summary["disk_wait_s"] >= 0
    validated = run_cli(["validate", source], dict(os.environ))
    (summary,) = [e for e in events(validated.stdout) if e["event"] == "summary"]
    assert "disk_wait_s" not in summary  # nothing is written
