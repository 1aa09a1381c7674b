"""What a run tells people and schedulers: exit codes, failed users, retry files, progress, signals,
and that nothing secret leaks. Every test drives the real CLI process against the sandbox."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from orchestrator.rundir.tracker import load_manifest
from orchestrator.sandbox import DEFAULT_CLIENT_SECRET
from tests.run_helpers import (
    FAST,
    SAMPLE_DATA,
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


def json_lines(text: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in text.splitlines()]


def test_users_the_service_rejects_are_reported_and_their_retry_file_imports_them(
    tmp_path: Path,
) -> None:
    with sandbox() as server:
        users = write_users(tmp_path / "users.json", 120)
        poisoned = [str(u["email"]) for u in users[5:10]]
        server.state.faults.poison_users(poisoned, code="CONFLICT")
        run_dir = tmp_path / "run"
        first = run_cli(run_args(tmp_path / "users.json", run_dir), client_env(server))
        assert first.returncode == 1, first.stderr
        result = report(run_dir)
        assert result["failed"] == 5
        assert result["failed_by_code"] == {"CONFLICT": 5}
        failed = json_lines((run_dir / "failed-users.ndjson").read_text())
        assert {str(f["user"]["email"]) for f in failed} == set(poisoned)  # type: ignore[index]
        assert all(f["job_id"] and f["external_id"] for f in failed)
        retry = orjson.loads((run_dir / "retry.json").read_bytes())
        assert retry == users[5:10]  # the originals, not the service's masked echo

        server.state.faults.clear()  # the cause is fixed
        second = run_cli(
            run_args(run_dir / "retry.json", tmp_path / "retry-run"), client_env(server)
        )
        assert second.returncode == 0, second.stderr
        assert_every_user_once(server, users)


def test_users_that_already_exist_are_listed_apart_with_the_upsert_hint(tmp_path: Path) -> None:
    with sandbox() as server:
        users = write_users(tmp_path / "users.json", 40)
        assert (
            run_cli(
                run_args(tmp_path / "users.json", tmp_path / "a"), client_env(server)
            ).returncode
            == 0
        )
        again = run_cli(
            [*run_args(tmp_path / "users.json", tmp_path / "b")[:-2], "--log-format", "text"],
            client_env(server),
        )
        assert again.returncode == 1
        assert "--upsert" in again.stdout
        assert len(orjson.loads((tmp_path / "b" / "duplicated-users.json").read_bytes())) == 40
        assert orjson.loads((tmp_path / "b" / "retry.json").read_bytes()) == []
        upsert = run_cli(
            [*run_args(tmp_path / "users.json", tmp_path / "c"), "--upsert"], client_env(server)
        )
        assert upsert.returncode == 0
        assert report(tmp_path / "c")["updated"] == len(users)


def test_json_logs_are_one_event_per_line(tmp_path: Path) -> None:
    with sandbox(FAST, job_seconds=0.4) as server:
        write_users(tmp_path / "users.json", 200)
        done = run_cli(
            [
                *run_args(tmp_path / "users.json", tmp_path / "run", request_bytes=REQUEST_BYTES),
                "--progress-interval",
                "0.2",
            ],
            client_env(server),
        )
        assert done.returncode == 0, done.stderr
        events = json_lines(done.stdout)
        names = [e["event"] for e in events]
        for expected in ("plan", "job_submitted", "job_completed", "progress", "summary"):
            assert expected in names
        assert names[-1] == "summary"
        completed = [e for e in events if e["event"] == "job_completed"]
        assert all(
            {"chunk", "job_id", "inserted", "updated", "failed"} <= e.keys() for e in completed
        )
        assert all(isinstance(e.get("ts"), float) for e in events if e["event"] != "summary")


def test_quiet_prints_only_the_summary(tmp_path: Path) -> None:
    with sandbox() as server:
        write_users(tmp_path / "users.json", 50)
        done = run_cli(
            [*run_args(tmp_path / "users.json", tmp_path / "run"), "--quiet"], client_env(server)
        )
        assert done.returncode == 0
        assert [e["event"] for e in json_lines(done.stdout)] == ["summary"]
        assert done.stderr == ""


def test_the_live_display_on_a_terminal(tmp_path: Path) -> None:
    with sandbox(FAST, job_seconds=0.7) as server:
        write_users(tmp_path / "users.json", 200)
        args = [
            a
            for a in run_args(
                tmp_path / "users.json", tmp_path / "run", request_bytes=REQUEST_BYTES
            )
            if a not in ("--log-format", "json")
        ]
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            cli(*args), env=client_env(server), stdin=terminal, stdout=terminal, stderr=terminal
        )
        os.close(terminal)
        screen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not chunk:
                    break
                screen += chunk
            elif process.poll() is not None:
                break
        os.close(controller)
        assert process.wait(timeout=10) == 0
    text = screen.decode()
    assert "users/hour" in text
    assert "ETA" in text
    assert "in flight: job_" in text
    assert "\x1b[" in text  # the block is redrawn in place
    assert "run " in text
    assert "inserted" in text


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_state_exits_130_and_resume_finishes(tmp_path: Path, signum: int) -> None:
    with sandbox(FAST, job_seconds=1.0) as server:
        users = write_users(tmp_path / "users.json", 200)
        run_dir = tmp_path / "run"
        args = [
            *run_args(tmp_path / "users.json", run_dir, request_bytes=REQUEST_BYTES)[:-2],
            "--log-format",
            "text",
        ]
        process = subprocess.Popen(
            cli(*args),
            env=client_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until jobs are running at the "service"
            if server.state.active_jobs >= 1 and (run_dir / "manifest.json").exists():
                break
            time.sleep(0.05)
        process.send_signal(signum)
        _, err = process.communicate(timeout=20)
        assert process.returncode == 130, err
        assert "resume" in err
        assert "still run" in err
        assert "Traceback" not in err
        plan = load_manifest(run_dir)
        assert any(c.status in ("pending", "processing") for c in plan.chunks)

        resumed = run_cli(["resume", "--run-dir", run_dir, "--max-rps", "200"], client_env(server))
        assert resumed.returncode == 0, resumed.stderr
        assert_every_user_once(server, users)
        # A POST under way when the signal came was allowed to finish: nothing is ambiguous.
        for chunk in load_manifest(run_dir).chunks:
            assert chunk.ambiguous == 0
            assert [j.external_id for j in server.state.jobs()].count(chunk.external_id) == 1


def test_secrets_and_password_hashes_never_reach_logs_or_run_state(tmp_path: Path) -> None:
    sample = SAMPLE_DATA / "users.json"
    users = orjson.loads(sample.read_bytes())
    secrets = {DEFAULT_CLIENT_SECRET}
    for user in users:
        if "password_hash" in user:
            secrets.add(user["password_hash"])
        custom = user.get("custom_password_hash")
        if custom:
            secrets.add(custom["hash"]["value"])
            for part in ("salt", "key"):
                if part in custom.get("hash", {}) | custom:
                    value = (custom.get(part) or custom["hash"].get(part) or {}).get("value")
                    if value:
                        secrets.add(value)
    assert len(secrets) > 100
    with sandbox() as server:
        run_dir = tmp_path / "run"
        server.state.faults.poison_users([users[3]["email"]])  # an error echo passes through too
        for log_format in ("json", "text"):
            done = run_cli(
                [*run_args(sample, run_dir)[:-2], "--log-format", log_format, "--debug"],
                client_env(server),
            )
            assert done.returncode == 1, done.stderr
            for secret in secrets:
                assert secret not in done.stdout
                assert secret not in done.stderr
            assert "eyJ" not in done.stdout + done.stderr  # no JWT
        # Files that hold users (and so hashes) by design, private to the owner:
        user_files = {"rejects.ndjson", "retry.json", "duplicated-users.json"}
        assert (run_dir.stat().st_mode & 0o777) == 0o700
        for path in run_dir.rglob("*"):
            mode = path.stat().st_mode & 0o777
            assert mode == (0o700 if path.is_dir() else 0o600), path
            if path.is_dir() or path.parent.name == "chunks" or path.name in user_files:
                continue
            content = path.read_text()
            assert DEFAULT_CLIENT_SECRET not in content, path
            assert "eyJ" not in content, path
            for secret in secrets:
                assert secret not in content, (path, "holds a password hash")


def test_debug_alone_shows_tracebacks(tmp_path: Path) -> None:
    source = tmp_path / "bad.json"
    source.write_bytes(b"[{]")
    plain = run_cli(["validate", source], dict(os.environ))
    debug = run_cli(["validate", source, "--debug"], dict(os.environ))
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr


def test_status_shows_the_run_and_its_live_jobs(tmp_path: Path) -> None:
    with sandbox(FAST, job_seconds=2.0) as server:
        write_users(tmp_path / "users.json", 200)
        run_dir = tmp_path / "run"
        args = run_args(tmp_path / "users.json", run_dir, request_bytes=REQUEST_BYTES)
        process = subprocess.Popen(
            cli(*args), env=client_env(server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while server.state.active_jobs < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 130

        offline = run_cli(["status", "--run-dir", run_dir, "--json"], client_env(server))
        assert offline.returncode == 0
        summary = orjson.loads(offline.stdout)
        in_flight = [j for j in summary["jobs"] if j["status"] in ("pending", "processing")]
        assert in_flight
        assert all(j["job_id"].startswith("job_") for j in in_flight)
        assert summary["chunks"] == sum(summary["chunks_by_status"].values())

        live = run_cli(["status", "--run-dir", run_dir, "--json", "--refresh"], client_env(server))
        assert live.returncode == 0, live.stderr
        refreshed = orjson.loads(live.stdout)["jobs"]
        assert all(
            "live_status" in j for j in refreshed if j["status"] in ("pending", "processing")
        )

        assert (
            run_cli(
                ["resume", "--run-dir", run_dir, "--max-rps", "200"], client_env(server)
            ).returncode
            == 0
        )
        text = run_cli(["status", "--run-dir", run_dir], client_env(server))
        assert "200 inserted" in text.stdout
        assert "completed" in text.stdout


def test_report_refetches_missing_errors_and_rebuilds_its_files(tmp_path: Path) -> None:
    with sandbox() as server:
        users = write_users(tmp_path / "users.json", 60)
        server.state.faults.poison_users([str(users[7]["email"])], code="CONFLICT")
        run_dir = tmp_path / "run"
        done = run_cli(
            run_args(tmp_path / "users.json", run_dir, request_bytes=50_000), client_env(server)
        )
        assert done.returncode == 1, done.stderr
        first = report(run_dir)
        for stored in (run_dir / "errors").iterdir():
            stored.unlink()  # lost: `report` fetches it again while the service keeps it
        for name in ("report.json", "failed-users.ndjson", "retry.json"):
            (run_dir / name).unlink()
        again = run_cli(
            ["report", "--run-dir", run_dir, "--log-format", "json"], client_env(server)
        )
        assert again.returncode == 1, again.stderr
        rebuilt = report(run_dir)
        assert rebuilt["failed_by_code"] == first["failed_by_code"] == {"CONFLICT": 1}
        assert rebuilt["inserted"] == first["inserted"] == 59
        assert orjson.loads((run_dir / "retry.json").read_bytes()) == [users[7]]
        assert json_lines(again.stdout)[-1]["event"] == "summary"


def test_sigpipe_stays_ignored_so_a_closed_connection_is_an_error_not_a_kill() -> None:
    # With SIGPIPE's default action, writing to a socket the service had closed ended a run
    # with -13 and no word: Python's own setting (ignored) turns it into an error to retry.
    probe = (
        "import signal; from orchestrator import cli; "
        "cli.main = lambda: print(signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN) or 0; "
        "cli.run()"
    )
    done = subprocess.run(
        [*cli()[:1], "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    source = tmp_path / "users.json"
    write_users(source, 20)
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already exited
    try:
        done = subprocess.run(
            cli("validate", source),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 3, done.stderr
    assert done.stderr == ""
