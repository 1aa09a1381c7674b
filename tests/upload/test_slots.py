"""Job-slot discovery: never more than 2 jobs until the service shows it allows more."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from orchestrator.upload.slots import SlotGovernor
from tests.run_helpers import FAST, client_env, manifest, run_args, run_cli, sandbox, write_users


async def test_a_fixed_limit_hands_out_that_many_permits() -> None:
    governor = SlotGovernor(2)
    first, second = await governor.acquire(), await governor.acquire()
    assert not first.probe
    assert not second.probe
    with anyio.move_on_after(0.05) as scope:
        await governor.acquire()
    assert scope.cancelled_caught
    await governor.release(first)
    assert not (await governor.acquire()).probe


async def test_discovery_probes_only_once_every_slot_runs_a_job() -> None:
    governor = SlotGovernor(2, discover=True)
    first = await governor.acquire()
    await governor.acquire()
    await governor.confirmed(first)
    with anyio.move_on_after(0.05) as scope:
        await governor.acquire()  # the second slot has no running job yet: no probe
    assert scope.cancelled_caught


async def test_discovery_probes_once_and_grows_when_the_service_accepts() -> None:
    governor = SlotGovernor(2, discover=True)
    for _ in range(2):
        await governor.confirmed(await governor.acquire())
    probe = await governor.acquire()
    assert probe.probe
    with anyio.move_on_after(0.05) as scope:
        await governor.acquire()  # only one probe at a time
    assert scope.cancelled_caught
    await governor.confirmed(probe)
    assert governor.limit == 3
    assert not probe.probe
    assert (await governor.acquire()).probe  # and probes again


async def test_a_refused_probe_fixes_the_limit_and_waits_for_a_free_slot() -> None:
    governor = SlotGovernor(2, discover=True)
    first = await governor.acquire()
    second = await governor.acquire()
    await governor.confirmed(first)
    await governor.confirmed(second)
    probe = await governor.acquire()
    async with anyio.create_task_group() as tasks:

        async def free_one_later() -> None:
            await anyio.sleep(0.05)
            await governor.release(first)

        tasks.start_soon(free_one_later)
        assert await governor.refused(probe, active_jobs=2)
    assert governor.limit == 2
    assert not governor.discovering
    assert not probe.probe
    assert governor.held == 2


@pytest.mark.parametrize(("tenant_slots", "expected_peak"), [(4, 4), (2, 2)])
def test_auto_uses_what_the_tenant_allows(
    tmp_path: Path, tenant_slots: int, expected_peak: int
) -> None:
    with sandbox(FAST, job_slots=tenant_slots, job_seconds=0.4) as server:
        users = write_users(tmp_path / "users.json", 300)
        run_dir = tmp_path / "run"
        done = run_cli(
            run_args(tmp_path / "users.json", run_dir, request_bytes=5_000), client_env(server)
        )
        assert done.returncode == 0, done.stderr
        assert len(manifest(run_dir).chunks) >= 10
        assert server.state.user_count == len(users)
        assert server.state.peak_active_jobs == expected_peak
        assert server.state.too_many_requests.get("job_slots", 0) <= 1
