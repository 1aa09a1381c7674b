"""Hostile and unlucky uses, each through the real CLI (against the sandbox where a service is
involved): whatever is done to it, one clear line and the documented exit code, nothing lost, nothing
sent twice, nothing of someone else's damaged."""

from __future__ import annotations

import fcntl
import itertools
import os
import resource
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from orchestrator.rundir.tracker import load_manifest
from orchestrator.sandbox import DATABASE_CONNECTION_ID, DISABLED_CONNECTION_ID
from tests.run_helpers import (
    FAST,
    assert_every_user_once,
    cli,
    client_env,
    report,
    run_args,
    run_cli,
    sandbox,
    start_cli,
    write_users,
)


def events(stdout: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def summary(stdout: str) -> dict[str, object]:
    (found,) = [e for e in events(stdout) if e["event"] == "summary"]
    return found


def one_line(stderr: str) -> str:
    """The single error line a refusal prints (no traceback)."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def locked(path: Path) -> bool:
    """Whether another process holds the flock of `path`."""
    if not path.exists():
        return False
    with path.open("rb") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)
    return False


@contextmanager
def fifo_fed(path: Path, data: bytes, *, hold: threading.Event | None = None) -> Iterator[None]:
    """A FIFO at `path` fed `data` by a thread; with `hold`, the last byte waits for it."""
    os.mkfifo(path)

    def feed() -> None:
        with path.open("wb") as fifo:  # blocks until the reader opens it
            if hold is None:
                fifo.write(data)
                return
            fifo.write(data[:-1])
            fifo.flush()
            hold.wait(60)
            fifo.write(data[-1:])

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        yield
    finally:
        if hold is not None:
            hold.set()
        writer.join(30)


def read_only_place(tmp_path: Path) -> Path:
    """A directory nothing can be created in (as root, permissions do not stop anything)."""
    if os.geteuid() == 0:
        return Path("/sys")
    place = tmp_path / "read-only"
    place.mkdir(mode=0o500)
    return place


# -- case 1: two runs planning into one directory; chunks checked before each POST -------------


def test_two_runs_planning_into_one_directory_the_second_is_refused(tmp_path: Path) -> None:
    with sandbox(FAST) as server:
        mine = write_users(tmp_path / "mine.json", 600, prefix="mine")
        write_users(tmp_path / "theirs.json", 900, prefix="theirs")
        run_dir = tmp_path / "run"
        release = threading.Event()
        source = tmp_path / "mine.fifo"
        with fifo_fed(source, (tmp_path / "mine.json").read_bytes(), hold=release):
            first = subprocess.Popen(
                cli(*run_args(source, run_dir)),
                env=client_env(server),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            # The first run is planning (its input is not all there yet) and holds the directory.
            wait_for(lambda: locked(run_dir / "journal.ndjson"))
            second = run_cli(run_args(tmp_path / "theirs.json", run_dir), client_env(server))
            assert second.returncode == 2, second.stderr
            assert "in use by another orchestrator process" in one_line(second.stderr)
            release.set()
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert summary(out)["users_read"] == 600
        assert_every_user_once(server, mine)  # and none of the other export


def test_a_chunk_file_changed_mid_run_is_never_sent(tmp_path: Path) -> None:
    with sandbox(FAST, job_seconds=0.5) as server:
        users = write_users(tmp_path / "users.json", 200)
        run_dir = tmp_path / "run"
        process = subprocess.Popen(
            cli(
                *run_args(tmp_path / "users.json", run_dir, "--job-slots", "1", request_bytes=8000)
            ),
            env=client_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: len(server.state.jobs()) >= 1)
        last = load_manifest(run_dir).chunks[-1]
        intruders = [{"email": f"intruder{i}@example.com"} for i in range(3)]
        (run_dir / last.file).write_bytes(orjson.dumps(intruders))
        _, err = process.communicate(timeout=120)
        assert process.returncode == 3, err  # jobs were sent: never "could not start"
        line = one_line(err)
        assert last.file in line
        assert "changed" in line
        sent = {email for job in server.state.jobs() for email in job.emails}
        assert not any(email.startswith("intruder") for email in sent)
        assert sent < {str(u["email"]) for u in users}


# -- case 2: a FIFO or <(...) is read once -----------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "chunk", "run"])
def test_an_input_from_a_fifo_is_read_once_and_whole(tmp_path: Path, command: str) -> None:
    users = write_users(tmp_path / "users.json", 5_200)  # more than the estimate's first MiB
    source = tmp_path / "users.fifo"
    with sandbox(FAST) as server, fifo_fed(source, (tmp_path / "users.json").read_bytes()):
        args: list[str | Path] = [command, source, "--log-format", "json"]
        if command == "chunk":
            args += ["--run-dir", tmp_path / "run"]
        if command == "run":
            args = run_args(source, tmp_path / "run", request_bytes=200_000)
        done = run_cli(args, client_env(server), timeout=120)
        assert done.returncode == 0, done.stderr
        assert summary(done.stdout)["users_read"] == 5_200
        if command == "run":
            assert_every_user_once(server, users)


def test_a_small_fifo_does_not_hang(tmp_path: Path) -> None:
    write_users(tmp_path / "users.json", 3)
    source = tmp_path / "users.fifo"
    with fifo_fed(source, (tmp_path / "users.json").read_bytes()):
        done = run_cli(["validate", source, "--log-format", "json"], dict(os.environ), timeout=30)
    assert done.returncode == 0, done.stderr
    assert summary(done.stdout)["users_read"] == 3


# -- case 4: a directory that is not ours, and places that cannot be run dirs ----------------------


def test_a_directory_that_is_not_ours_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: the sticky bit must survive
    (shared / "chunks").mkdir()
    (shared / "chunks" / "keep.txt").write_text("someone's")
    (shared / "rejects.ndjson").write_text("someone's rejects\n")
    before = {p: p.read_bytes() for p in shared.rglob("*") if p.is_file()}
    write_users(tmp_path / "users.json", 20)
    with sandbox(FAST) as server:
        commands: list[list[str | Path]] = [
            ["chunk", tmp_path / "users.json", "--run-dir", shared],
            run_args(tmp_path / "users.json", shared),
        ]
        for command in commands:
            done = run_cli(command, client_env(server))
            assert done.returncode == 2, done.stderr
            assert "is not empty and is not a run directory" in one_line(done.stderr)
        assert not server.state.jobs()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert {p: p.read_bytes() for p in shared.rglob("*") if p.is_file()} == before


def test_places_that_cannot_be_a_run_directory_get_one_line(tmp_path: Path) -> None:
    write_users(tmp_path / "users.json", 20)
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    places = {
        tmp_path / "a-file": "is a file, not a directory",
        tmp_path / "dangling": "symbolic link to nothing",
        tmp_path / "a-file" / "run": "a-file is a file",
        read_only_place(tmp_path) / "orchestrator-run": "cannot create the run directory",
    }
    for place, expected in places.items():
        done = run_cli(["chunk", tmp_path / "users.json", "--run-dir", place], dict(os.environ))
        assert done.returncode == 2, (place, done.stderr)
        assert expected in one_line(done.stderr)
    assert (tmp_path / "a-file").read_text() == "x"


# -- case 5: no output is the input -----------------------------------------------------------------


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path: Path) -> None:
    source = tmp_path / "users.json"
    write_users(source, 40)
    original = source.read_bytes()
    done = run_cli(["validate", source, "--rejects", source], dict(os.environ))
    assert done.returncode == 2
    assert "is the input file itself" in one_line(done.stderr)
    linked = tmp_path / "alias.ndjson"
    linked.hardlink_to(source)
    done = run_cli(["validate", source, "--rejects", linked], dict(os.environ))
    assert done.returncode == 2
    assert "is the input file itself" in one_line(done.stderr)
    assert source.read_bytes() == original

    # An input among the files a new plan rewrites (an unfinished plan's chunks or rejects).
    run_dir = tmp_path / "run"
    assert run_cli(["chunk", source, "--run-dir", run_dir], dict(os.environ)).returncode == 0
    (run_dir / "manifest.json").unlink()  # a planning pass that died before its manifest
    for inside in (run_dir / "chunks" / "mine.json", run_dir / "rejects.ndjson"):
        inside.write_bytes(original)
        done = run_cli(["chunk", inside, "--run-dir", run_dir], dict(os.environ))
        assert done.returncode == 2
        assert "would delete or rewrite" in one_line(done.stderr)
        assert inside.read_bytes() == original


def test_rejects_into_a_directory_or_a_read_only_place_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "users.json"
    write_users(source, 10)
    for target in (tmp_path, read_only_place(tmp_path) / "rejects.ndjson"):
        done = run_cli(["validate", source, "--rejects", target], dict(os.environ))
        assert done.returncode == 2, done.stderr
        assert "--rejects" in one_line(done.stderr)


# -- case 7: exit codes and tracebacks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--max-rps", "inf"),
        ("--max-rps", "nan"),
        ("--max-rps", "1e-9"),
        ("--max-attempts", "-3"),
        ("--max-attempts", "0"),
        ("--max-request-bytes", "1000000"),
        ("--job-slots", "50"),
    ],
)
def test_an_option_out_of_its_range_is_named_and_nothing_starts(
    tmp_path: Path, option: str, value: str
) -> None:
    write_users(tmp_path / "users.json", 10)
    with sandbox(FAST) as server:
        done = run_cli(
            [*run_args(tmp_path / "users.json", tmp_path / "run"), option, value],
            client_env(server),
        )
        assert done.returncode == 2, done.stderr
        assert one_line(done.stderr).startswith(f"orchestrator: error: {option} ")
        assert server.state.request_count == 0
    assert not (tmp_path / "run").exists()


def test_a_full_disk_mid_upload_stops_unfinished_and_resume_finishes(tmp_path: Path) -> None:
    with sandbox(FAST) as server:
        users = write_users(tmp_path / "users.json", 400)
        server.state.faults.fail_jobs(20)  # more transitions, so the journal outgrows the disk
        run_dir = tmp_path / "run"
        planned = run_cli(
            ["chunk", tmp_path / "users.json", "--run-dir", run_dir, "--max-request-bytes", "5000"],
            client_env(server),
        )
        assert planned.returncode == 0, planned.stderr
        room = (run_dir / "manifest.json").stat().st_size + 300

        def small_disk() -> None:  # every file this process writes stops growing at `room`
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))

        done = subprocess.run(
            cli(*run_args(tmp_path / "users.json", run_dir, request_bytes=5000)),
            env=client_env(server),
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=small_disk,
            check=False,
        )
        assert server.state.jobs()
        assert done.returncode == 3, done.stderr  # jobs were sent: never "could not start"
        line = one_line(done.stderr)
        assert "File too large" in line
        assert f"orchestrator resume --run-dir {run_dir}" in line

        resumed = run_cli(["resume", "--run-dir", run_dir, "--max-rps", "200"], client_env(server))
        assert resumed.returncode == 0, resumed.stderr
        assert_every_user_once(server, users)


def test_a_journal_time_that_is_not_a_time_does_not_break_the_report(tmp_path: Path) -> None:
    with sandbox(FAST) as server:
        write_users(tmp_path / "users.json", 30)
        run_dir = tmp_path / "run"
        assert (
            run_cli(run_args(tmp_path / "users.json", run_dir), client_env(server)).returncode == 0
        )
        manifest = orjson.loads((run_dir / "manifest.json").read_bytes())
        manifest["chunks"][0]["attempts"][0]["started_at"] = "last tuesday"
        manifest["chunks"][0]["attempts"][0]["ended_at"] = "not a time"
        (run_dir / "manifest.json").write_bytes(orjson.dumps(manifest))
        again = run_cli(["report", "--run-dir", run_dir, "--log-format", "json"], dict(os.environ))
        assert again.returncode == 0, again.stderr
        assert report(run_dir)["inserted"] == 30


# From the interpreter's own start-up on (a signal during it is Python's to report, before any of
# the tool runs), through loading, the pre-flight, planning and the upload.
@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3, 0.45, 0.6, 1.2, 2.5])
def test_ctrl_c_at_any_instant_exits_130_without_a_traceback(tmp_path: Path, delay: float) -> None:
    with sandbox(FAST, job_seconds=1.0) as server:
        write_users(tmp_path / "users.json", 3_000)
        run_dir = tmp_path / "run"
        process = start_cli(
            run_args(tmp_path / "users.json", run_dir, request_bytes=60_000), client_env(server)
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        if "init_import_site" in err:
            return  # the interpreter was still starting: none of the tool had run yet
        # Before Python installs its handler the signal itself ends the process: a shell shows
        # that as 130 too.
        assert process.returncode in (130, -signal.SIGINT), err
        assert "Traceback" not in err
        if process.returncode == 130:
            assert "interrupted" in err
        if "still run at Auth0" in err:  # what the run directory says is still running
            running = sum(
                1 for c in load_manifest(run_dir).chunks if c.status in ("pending", "processing")
            )
            assert f"{running} job(s) still run at Auth0" in err


def test_an_interrupt_counts_the_jobs_still_running(tmp_path: Path) -> None:
    with sandbox(FAST, job_seconds=3.0) as server:
        write_users(tmp_path / "users.json", 300)
        run_dir = tmp_path / "run"
        process = start_cli(
            run_args(tmp_path / "users.json", run_dir, request_bytes=8000), client_env(server)
        )
        wait_for(lambda: server.state.active_jobs == 2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert server.state.active_jobs == 2
        assert "2 job(s) still run at Auth0" in err
        assert f"orchestrator resume --run-dir {run_dir}" in err


# -- case 8: rate limits -----------------------------------------------------------------------------


def test_a_rate_limit_reset_already_past_still_waits_and_the_errors_are_fetched(
    tmp_path: Path,
) -> None:
    # The service's clock is two minutes behind ours: its x-ratelimit-reset (a UNIX time on its
    # clock) looks long past. Waits must still be real, or the retries burn out in milliseconds.
    with sandbox(FAST, clock_offset=-120.0) as server:
        users = write_users(tmp_path / "users.json", 40)
        server.state.faults.poison_users([str(users[2]["email"])], code="CONFLICT")
        run_dir = tmp_path / "run"
        server.state.faults.rate_limit_429s(4, path_prefix="/api/v2/jobs/job_")
        done = run_cli(
            run_args(tmp_path / "users.json", run_dir, request_bytes=50_000), client_env(server)
        )
        assert done.returncode == 1, done.stderr  # the poisoned user, and nothing else
        assert report(run_dir)["failed_by_code"] == {"CONFLICT": 1}
        assert (run_dir / "errors" / "000000.ndjson").read_bytes()  # the errors were fetched
        limited = [r.t for r in server.state.requests if r.status == 429]
        assert len(limited) == 4
        gaps = [later - earlier for earlier, later in itertools.pairwise(limited)]
        assert min(gaps) >= 0.9  # the floor (1 s, jittered upwards), not milliseconds
        waits = [e for e in events(done.stdout) if e["event"] == "rate_limit_wait"]
        assert waits
        assert all(isinstance(w["seconds"], float) and w["seconds"] >= 1.0 for w in waits)


# -- case 9: what is said ------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoding", "named"), [("utf-16", "UTF-16LE"), ("utf-32-be", "UTF-32BE")])
def test_a_wide_encoding_is_named(tmp_path: Path, encoding: str, named: str) -> None:
    write_users(tmp_path / "users.json", 5)
    source = tmp_path / f"users-{encoding}.json"
    source.write_bytes((tmp_path / "users.json").read_text().encode(encoding))
    commands: list[list[str | Path]] = [
        ["validate", source],
        ["chunk", source, "--run-dir", tmp_path / "run"],
    ]
    for command in commands:
        done = run_cli(command, dict(os.environ))
        assert done.returncode == 2, done.stderr
        line = one_line(done.stderr)
        assert f"is {named} encoded" in line
        assert "UTF-8" in line


@pytest.mark.parametrize("static", [False, True], ids=["client-credentials", "static-token"])
def test_a_token_the_service_echoes_is_never_shown(tmp_path: Path, static: bool) -> None:
    token = "sandbox-static-management-token-0123" if static else None
    # Without read:connections the pre-flight cannot check the connection: the import request
    # meets the refusal, whose message (the service's) is the line printed.
    with sandbox(FAST, static_token=token, scopes=("create:users", "read:users")) as server:
        write_users(tmp_path / "users.json", 60)
        env = client_env(server, static_token=token)
        faults = server.state.faults

        # A refusal that stops the run at once: its message is the one line printed.
        faults.echo_token_errors(5)
        args = run_args(tmp_path / "users.json", tmp_path / "refused")
        args[args.index(DATABASE_CONNECTION_ID)] = DISABLED_CONNECTION_ID
        refused = run_cli(args, env)
        assert refused.returncode == 2, refused.stderr
        assert "[redacted]" in one_line(refused.stderr)

        # Retried errors, in JSON events and in the text lines, and the run directory.
        faults.clear()
        faults.echo_token_errors(3)
        faults.fail_requests(3, status=503, method="POST", path_prefix="/api/v2/jobs")
        run_dir = tmp_path / "run"
        outputs = []
        for log_format in ("json", "text"):
            done = run_cli(
                [*run_args(tmp_path / "users.json", run_dir)[:-2], "--log-format", log_format], env
            )
            assert done.returncode == 0, done.stderr
            outputs += [done.stdout, done.stderr]
            faults.echo_token_errors(3)
            faults.fail_requests(3, status=503, method="POST", path_prefix="/api/v2/jobs")
        assert any("[redacted]" in text for text in outputs)
        files = [
            p.read_text() for p in run_dir.rglob("*") if p.is_file() and "chunks" not in p.parts
        ]
        for text in (*outputs, refused.stdout, refused.stderr, *files):
            assert "Bearer ey" not in text
            assert "eyJ" not in text
            if token:
                assert token not in text


def test_control_characters_from_the_service_never_reach_the_terminal(tmp_path: Path) -> None:
    with sandbox(FAST) as server:
        write_users(tmp_path / "users.json", 30)
        server.state.faults.fail_jobs(2, details="\x1b]0;owned\x07\x1b[2J boom\x00\x9b1m")
        done = run_cli(
            [
                *run_args(tmp_path / "users.json", tmp_path / "run")[:-2],
                "--log-format",
                "text",
            ],
            client_env(server),
        )
        assert done.returncode == 0, done.stderr
        assert "boom" in done.stderr  # the detail is shown ...
        for text in (done.stdout, done.stderr):
            assert not any(
                (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in text
            )
        manifest = (tmp_path / "run" / "manifest.json").read_text()
        assert "\\u001b" not in manifest  # ... and kept without them


# -- case 10: the small ones ----------------------------------------------------------------------------


def test_a_different_upsert_on_a_half_done_run_is_refused_with_the_way_to_change_it(
    tmp_path: Path,
) -> None:
    with sandbox(FAST, job_seconds=1.0) as server:
        write_users(tmp_path / "users.json", 200)
        run_dir = tmp_path / "run"
        args = run_args(tmp_path / "users.json", run_dir, request_bytes=8000)
        process = subprocess.Popen(
            cli(*args), env=client_env(server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: server.state.active_jobs >= 1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 130
        sent = len(server.state.jobs())
        for flag in ("--upsert", "--send-completion-email"):
            again = run_cli([*args, flag], client_env(server))
            assert again.returncode == 2, again.stderr
            line = one_line(again.stderr)
            assert f"was started without {flag}" in line
            assert "new --run-dir" in line
        assert len(server.state.jobs()) == sent
        finished = run_cli(args, client_env(server))  # the same way: it finishes
        assert finished.returncode == 0, finished.stderr


def test_a_dry_sync_writes_nothing_not_even_a_lock(tmp_path: Path) -> None:
    source, state = tmp_path / "export.json", tmp_path / "acme.sync"
    write_users(source, 50)
    with sandbox(FAST) as server:
        args: list[str | Path] = [
            "sync",
            source,
            "--state",
            state,
            "--connection-id",
            DATABASE_CONNECTION_ID,
            "--max-rps",
            "200",
            "--log-format",
            "json",
        ]
        assert run_cli(args, client_env(server)).returncode == 0
        before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        (tmp_path / "acme.sync.lock").unlink(missing_ok=True)
        before.pop("acme.sync.lock", None)
        dry = run_cli([*args, "--dry-run"], client_env(server))
        assert dry.returncode == 0, dry.stderr
        after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        assert after == before  # no lock, no -wal or -shm, nothing touched


def test_a_sync_state_in_a_read_only_place_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "export.json"
    write_users(source, 5)
    state = read_only_place(tmp_path) / "acme.sync"
    with sandbox(FAST) as server:
        done = run_cli(
            ["sync", source, "--state", state, "--connection-id", DATABASE_CONNECTION_ID],
            client_env(server),
        )
        assert done.returncode == 2, done.stderr
        assert "acme.sync" in one_line(done.stderr)
        assert not server.state.jobs()
