"""Deciding from the tenant what became of users whose job was never seen: the verdict on one user,
the sample, the clock, and the lookups against the sandbox (users-by-email)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from orchestrator.auth0.client import ApiClient
from orchestrator.rundir.tracker import Tracker
from orchestrator.settings import UploadSettings
from orchestrator.upload.resolve import (
    LookupUnavailable,
    Resolver,
    parse_time,
    spread,
    verdict,
)
from orchestrator.upload.uploader import Uploader
from tests.auth0.test_client import client_settings, grant, sandbox
from tests.rundir.test_tracker import new_tracker
from tests.sandbox_helpers import get_token, run_job

SINCE = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
DB = "Username-Password-Authentication"


def profile(
    created: datetime, updated: datetime | None = None, connection: str = DB
) -> dict[str, object]:
    def iso(moment: datetime) -> str:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return {
        "email": "a@example.com",
        "created_at": iso(created),
        "updated_at": iso(updated or created),
        "identities": [{"provider": "auth0", "connection": connection, "isSocial": False}],
    }


@pytest.mark.parametrize(
    ("profiles", "upsert", "expected"),
    [
        ([], False, "missing"),
        ([profile(SINCE + timedelta(seconds=5))], False, "inserted"),
        ([profile(SINCE)], False, "inserted"),  # at the bound counts
        ([profile(SINCE - timedelta(seconds=1))], False, "missing"),  # existed before
        ([profile(SINCE - timedelta(days=3), SINCE + timedelta(seconds=1))], False, "missing"),
        ([profile(SINCE - timedelta(days=3), SINCE + timedelta(seconds=1))], True, "updated"),
        ([profile(SINCE + timedelta(seconds=5), connection="other-db")], False, "missing"),
        (
            [
                profile(SINCE + timedelta(seconds=5), connection="other-db"),
                profile(SINCE + timedelta(seconds=7)),
            ],
            False,
            "inserted",
        ),
    ],
    ids=[
        "absent",
        "created-after",
        "created-at-the-bound",
        "created-before",
        "updated-without-upsert",
        "updated-with-upsert",
        "other-connection",
        "one-of-two-connections",
    ],
)
def test_verdict(profiles: list[dict[str, object]], upsert: bool, expected: str) -> None:
    assert verdict(profiles, DB, SINCE, upsert=upsert) == expected


def test_without_the_connection_name_any_database_identity_counts() -> None:
    social = profile(SINCE + timedelta(seconds=1))
    social["identities"] = [{"provider": "google-oauth2", "connection": "google-oauth2"}]
    assert verdict([social], None, SINCE, upsert=False) == "missing"
    assert verdict([profile(SINCE + timedelta(seconds=1))], None, SINCE, upsert=False) == (
        "inserted"
    )


def test_the_sample_spreads_over_the_chunk() -> None:
    assert spread(3, 5) == [0, 1, 2]
    assert spread(1000, 5) == [0, 250, 500, 749, 999]
    assert spread(10, 1) == [0]
    rng = random.Random(4)
    for _ in range(200):
        count, sample = rng.randint(1, 5000), rng.randint(1, 12)
        picked = spread(count, sample)
        assert picked == sorted(set(picked))
        assert len(picked) == min(count, sample) or count > sample
        assert picked[0] == 0
        assert picked[-1] == count - 1 or sample == 1


def test_times_are_read_aware_and_anything_else_is_none() -> None:
    assert parse_time("2026-11-27T02:24:04.123Z") == datetime(
        2026, 11, 27, 2, 24, 4, 123000, tzinfo=UTC
    )
    assert parse_time("2026-11-27T02:24:04") == datetime(2026, 11, 27, 2, 24, 4, tzinfo=UTC)
    for value in (None, "", "yesterday", 17):
        assert parse_time(value) is None


async def test_lookups_settle_from_a_sample_and_the_server_clock(tmp_path: Path) -> None:
    # The service's clock is 300 s behind ours: users it created a moment ago carry created_at
    # times 300 s before our "now", older than a submission timed on our clock. The offset its
    # Date headers allow carries our time over to its clock.
    async with (
        sandbox(clock_offset=-300.0) as server,
        ApiClient(grant(server), client_settings()) as client,
    ):
        resolver = Resolver(
            client, "con_SandboxDatabase1", upsert=False, sample=3, concurrency=2, tolerance=0.25
        )
        submitted = datetime.now(UTC).isoformat()
        users: list[dict[str, object]] = [{"email": f"u{i}@example.com"} for i in range(9)]
        async with aiohttp.ClientSession() as session:
            token = await get_token(session, server)
            await run_job(session, server, token, users)
        settled = await resolver.settle(users, submitted)
        assert (settled.looked_up, settled.found) == (9, 9)  # found in the sample: all looked up
        assert (settled.inserted, settled.updated, settled.missing) == (9, 0, [])
        floor = client.server_clock_floor
        assert floor is not None
        assert -301.0 < floor <= -300.0 + 0.05  # never above the true offset
        assert settled.since < datetime.now(UTC) - timedelta(seconds=299)
        strangers: list[dict[str, object]] = [{"email": f"x{i}@example.com"} for i in range(9)]
        none = await resolver.settle(strangers, submitted)  # none in the sample: that is enough
        assert (none.looked_up, none.found, none.missing) == (3, 0, list(range(9)))
        # Users created before the submission are not the chunk's.
        later = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        verdicts, _ = await resolver.look_up(users[:2], later)
        assert verdicts == ["missing", "missing"]


async def test_a_token_without_read_users_cannot_settle() -> None:
    async with (
        sandbox(scopes=("create:users",)) as server,
        ApiClient(grant(server), client_settings()) as client,
    ):
        resolver = Resolver(
            client, "con_SandboxDatabase1", upsert=False, sample=5, concurrency=4, tolerance=2
        )
        with pytest.raises(LookupUnavailable, match="read:users"):
            await resolver.settle([{"email": "a@example.com"}], None)


async def test_a_probe_whose_neighbour_job_is_gone_learns_nothing_and_goes_on(
    tmp_path: Path,
) -> None:
    # A job of ours the service no longer knows (deleted after the retention) ended at some
    # point: the probe is inconclusive, not a reason to stop the run.
    async with sandbox() as server, ApiClient(grant(server), client_settings()) as client:
        tracker: Tracker = new_tracker(tmp_path / "run")
        uploader = Uploader(
            tmp_path / "run", tracker, client, UploadSettings("con_SandboxDatabase1")
        )
        uploader.active_jobs.update({0: "job_AAAAAAAAAAAAAAAA", 1: "job_BBBBBBBBBBBBBBBB"})
        for _ in range(2):
            await uploader.slots.confirmed(await uploader.slots.acquire())
        probe = await uploader.slots.acquire()
        assert probe.probe
        await uploader._settle_probe(probe, 2)
        assert not probe.probe
        assert uploader.slots.limit == 2  # nothing learnt
        tracker.close()
