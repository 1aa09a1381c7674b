"""Crash safety of `sync`: SIGKILL the real process mid-night (diffing, during a POST, while jobs
run), then sync again.

Whatever the moment, the next sync must resume or discard the killed night and end with: every user
Auth0 took marked synced with tonight's fingerprint, no user marked synced that Auth0 did not take
(poisoned users keep their old state), no unchanged user sent again, and no chunk sent twice except
after a POST whose outcome could not be known.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.plan.normalise import Normaliser
from orchestrator.plan.schema import check_user
from orchestrator.rundir.tracker import load_manifest
from orchestrator.settings import PlanSettings
from orchestrator.sync.diff import user_fingerprint
from orchestrator.sync.state import SyncState
from tests.run_helpers import FAST, cli, client_env, run_cli, sandbox
from tests.rundir.test_crash import last_journal_event
from tests.sync.test_e2e import emails_sent, make_users, summary, sync_args, write_export

SEEDS = range(4)
USERS = 200
REQUEST_BYTES = "5000"  # small chunks: many jobs, many moments to be killed at


def new_night_dirs(runs: Path, before: set[Path]) -> list[Path]:
    return [p for p in runs.iterdir() if p not in before] if runs.is_dir() else []


def kill_at(
    process: subprocess.Popen[bytes], runs: Path, before: set[Path], rng: random.Random, mode: str
) -> None:
    """SIGKILL the sync: right after a `submitting` line (inside a POST), or after a delay."""
    if mode == "post":
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            if any(last_journal_event(d) == "submitting" for d in new_night_dirs(runs, before)):
                break
            time.sleep(0.002)
    else:
        time.sleep(rng.uniform(0.05, 0.5) if mode == "early" else rng.uniform(0.5, 2.5))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def expected_fingerprint(user: dict[str, Any]) -> bytes:
    normalised = Normaliser(PlanSettings())(user)
    assert check_user(normalised) == []
    assert isinstance(normalised, dict)
    return user_fingerprint(normalised)


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_mid_sync_then_sync_again_is_correct(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    users = make_users(USERS)
    source, state_path = tmp_path / "export.ndjson", tmp_path / "state.db"
    runs = tmp_path / "state.db.runs"
    args = sync_args(source, state_path, "--max-request-bytes", REQUEST_BYTES)
    with sandbox(FAST, job_seconds=0.1, job_latency=0.0) as server:
        env = client_env(server)
        write_export(source, users)
        assert run_cli(args, env).returncode == 0  # the first night, undisturbed
        old = {u["user_id"]: expected_fingerprint(u) for u in users}
        # Tonight is a day later, as nights are: a killed POST's resolution asks which users were
        # written since its first submission (less a second of clock doubt), and must not take
        # the writes of a night that ended a moment ago for tonight's.
        server.state.age_users(24 * 3600)

        changed = users[::10]
        for user in changed:
            user["name"] = f"{user['name']} (moved)"
        new = make_users(10, prefix="late")
        tonight = users + new
        poisoned = [changed[0], new[0]]
        server.state.faults.poison_users([u["email"] for u in poisoned], code="CONFLICT")
        server.state.faults.set_latency(0.0, 0.05)  # POSTs take a moment: kills land inside
        write_export(source, tonight)
        jobs_before = len(server.state.jobs())
        nights_before = set(runs.iterdir())

        for kill in range(1 + seed % 2):
            process = subprocess.Popen(
                cli(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            mode = ("post", "late", "early")[(seed + kill) % 3]
            kill_at(process, runs, nights_before, rng, mode)
        done = run_cli(args, env)
        assert done.returncode == 1, done.stderr  # the poisoned users are not synced
        assert summary(done)["not_synced"] >= 2

        # Auth0 has tonight's version of everyone it took; nobody was sent who had not changed.
        sent = emails_sent(server, jobs_before)
        assert set(sent) <= {u["email"] for u in changed + new}
        assert server.state.user_count == USERS + len(new) - 1
        for user in changed[1:]:
            (profile,) = server.state.users_by_email(user["email"])
            assert profile["name"] == user["name"]
        check_state(state_path, tonight, poisoned, old)
        check_each_chunk_sent_once(server, runs)

        server.state.faults.clear()
        jobs_before = len(server.state.jobs())
        again = run_cli(args, env)
        assert again.returncode == 0, again.stderr
        assert emails_sent(server, jobs_before) == sorted(u["email"] for u in poisoned)
        check_state(state_path, tonight, [], old)


def check_state(
    state_path: Path,
    tonight: list[dict[str, Any]],
    poisoned: list[dict[str, Any]],
    old: dict[str, bytes],
) -> None:
    """Every user Auth0 took is synced with tonight's fingerprint; a poisoned one is not."""
    failed = {u["user_id"] for u in poisoned}
    with SyncState.open(state_path) as state:
        assert state.open_night() is None
        assert state.pending_count() == 0
        known = state.lookup([u["user_id"] for u in tonight])
        for user in tonight:
            key = user["user_id"]
            if key in failed:
                # Never imported tonight: the state still holds what the first night sent, if any.
                assert (known[key].fingerprint if key in known else None) == old.get(key), key
            else:
                assert known[key].fingerprint == expected_fingerprint(user), key


def check_each_chunk_sent_once(server: Any, runs: Path) -> None:
    """A chunk is sent again only after a POST whose outcome could not be known."""
    jobs = server.state.jobs()
    for night in runs.iterdir():
        if not (night / "manifest.json").exists():
            continue
        for chunk in load_manifest(night).chunks:
            count = sum(1 for job in jobs if job.external_id == chunk.external_id)
            assert count <= 1 + chunk.ambiguous, (night.name, chunk.index, count)
