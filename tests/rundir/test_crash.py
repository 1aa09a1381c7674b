"""Crash safety: SIGKILL the real `orchestrator run` process at random moments, then run it again.

Whatever the moment (planning, during a POST, while polling, while fetching errors), the next `run`
must finish the job: every valid user imported once, no chunk lost, and no chunk submitted again
unless its earlier submission was cut off mid-POST and the tenant did not have its users yet.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from orchestrator.rundir.tracker import load_manifest
from tests.run_helpers import FAST, cli, client_env, run_args, run_cli, sandbox, write_users

SEEDS = range(20)
USERS = 240
REQUEST_BYTES = 6_000


def last_journal_event(run_dir: Path) -> str | None:
    try:
        lines = (run_dir / "journal.ndjson").read_bytes().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            return str(orjson.loads(line)["event"])
        except orjson.JSONDecodeError:
            continue
    return None


def kill_at(process: subprocess.Popen[bytes], run_dir: Path, rng: random.Random, mode: str) -> None:
    """SIGKILL the process: during a POST, or after a random delay."""
    deadline = time.monotonic() + 20
    if mode == "post":
        # "submitting" is the last line between the intent being durable and the job id arriving.
        while time.monotonic() < deadline and process.poll() is None:
            if last_journal_event(run_dir) == "submitting":
                break
            time.sleep(0.002)
    else:
        time.sleep(rng.uniform(0.2, 2.5))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_then_run_again_loses_nothing_and_repeats_nothing(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    with sandbox(FAST, job_seconds=0.2) as server:
        server.state.faults.set_latency(0.0, 0.05)  # POSTs take a moment: kills land inside them
        users = write_users(tmp_path / "users.json", USERS)
        run_dir = tmp_path / "run"
        args = run_args(tmp_path / "users.json", run_dir, request_bytes=REQUEST_BYTES)
        env = client_env(server)
        kills = 1 + seed % 3
        for kill in range(kills):
            process = subprocess.Popen(
                cli(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            mode = "post" if (seed + kill) % 2 == 0 else "random"
            kill_at(process, run_dir, rng, mode)
        done = run_cli(args, env)
        assert done.returncode == 0, done.stderr

        manifest = load_manifest(run_dir)
        assert all(chunk.status == "completed" for chunk in manifest.chunks)
        assert sum(chunk.users for chunk in manifest.chunks) == USERS
        jobs = server.state.jobs()
        for chunk in manifest.chunks:
            sent = [job for job in jobs if job.external_id == chunk.external_id]
            # Sent once, or again only after a submission whose outcome could not be known.
            assert 1 <= len(sent) <= 1 + chunk.ambiguous, (chunk.index, len(sent), chunk.ambiguous)
            if chunk.job_id is None:
                # Killed during the POST of a job that ran: the tenant showed its users imported.
                assert chunk.resolutions[-1].resent == 0
            else:
                assert chunk.job_id in {job.id for job in sent}
        # Every user is in the tenant exactly once, and counted once: nothing failed.
        assert server.state.user_count == USERS
        for user in users[:: USERS // 12]:
            assert len(server.state.users_by_email(str(user["email"]))) == 1
        result = orjson.loads((run_dir / "report.json").read_bytes())
        assert (result["inserted"], result["failed"]) == (USERS, 0)
