"""How many import jobs we may hold at Auth0 at once, and how that number is discovered.

The limit differs by deployment (2 on public cloud, up to 20 on private cloud). With a fixed limit the
governor simply counts permits. With discovery (`--job-slots auto`) it starts at the safe 2 and, while
every known slot is busy, lets one extra submission *probe* for another slot: the service either accepts
it while every other job of ours is still running (the limit is higher: keep it and probe again) or answers "There are N active import users jobs"
(the limit is N: stop probing). So a run never exceeds 2 until the service has said more, and it pays
at most one slot-limit 429 to learn the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from orchestrator.limits import MAX_JOB_SLOTS, PUBLIC_CLOUD_JOB_SLOTS


@dataclass(slots=True)
class Permit:
    """The right to hold one job; `probe` while the service has not yet confirmed the slot exists."""

    probe: bool = False
    running: bool = False  # a job created under this permit is running at the service


class SlotGovernor:
    """Hands out job permits up to the known limit, probing for more when discovery is on."""

    def __init__(self, limit: int, *, discover: bool = False, ceiling: int = MAX_JOB_SLOTS) -> None:
        self.limit = limit
        self.discovering = discover and limit < ceiling
        self._ceiling = ceiling
        self._held = 0
        self._probing = False
        self._refused_waiting = 0  # a refused probe waits for a slot ahead of everyone else
        self._running = 0  # permits whose job the service has accepted
        self._changed = anyio.Condition()

    @property
    def held(self) -> int:
        return self._held

    async def acquire(self) -> Permit:
        """Wait for a permit: a known free slot, or the single outstanding probe."""
        async with self._changed:
            while True:
                if self._held < self.limit and not self._refused_waiting:
                    self._held += 1
                    return Permit()
                # Probe only once every known slot holds a running job: then a refusal can only
                # mean the limit, and an acceptance is evidence of one more slot.
                if self.discovering and not self._probing and self._running >= self.limit:
                    self._probing = True
                    self._held += 1
                    return Permit(probe=True)
                await self._changed.wait()

    async def confirmed(self, permit: Permit) -> None:
        """The service accepted a job under this permit; a probe has found one more slot."""
        async with self._changed:
            if not permit.running:
                permit.running = True
                self._running += 1
            if permit.probe:
                permit.probe = False
                self._probing = False
                self.limit += 1
                if self.limit >= self._ceiling:
                    self.discovering = False
            self._changed.notify_all()

    async def inconclusive(self, permit: Permit) -> None:
        """A probe's job was accepted, but one of ours may have ended just before: learn nothing.

        The probe job took the place of the one that ended; the permit becomes an ordinary one and
        a later probe may try again.
        """
        if not permit.probe:
            return
        async with self._changed:
            permit.probe = False
            permit.running = True
            self._running += 1
            self._probing = False
            self._changed.notify_all()

    async def refused(self, permit: Permit, active_jobs: int | None) -> bool:
        """A slot-limit 429 under this permit.

        For a probe the limit is now known: the permit becomes an ordinary one, waiting for a free
        slot, and True is returned (submit again at once). For an ordinary permit someone else holds
        slots: False is returned, and the caller backs off before trying again.
        """
        if not permit.probe:
            return False
        async with self._changed:
            permit.probe = False
            self._probing = False
            self.discovering = False
            if active_jobs is not None and active_jobs >= PUBLIC_CLOUD_JOB_SLOTS:
                self.limit = min(active_jobs, self._ceiling)
            self._held -= 1
            self._refused_waiting += 1
            try:
                while self._held >= self.limit:
                    await self._changed.wait()
            finally:
                self._refused_waiting -= 1
            self._held += 1
            self._changed.notify_all()
        return True

    async def ended(self, permit: Permit) -> None:
        """The job held under this permit has ended; the permit is kept for the next job."""
        async with self._changed:
            if permit.running:
                permit.running = False
                self._running -= 1
                self._changed.notify_all()

    async def release(self, permit: Permit) -> None:
        async with self._changed:
            if permit.probe:
                self._probing = False
            if permit.running:
                permit.running = False
                self._running -= 1
            self._held -= 1
            self._changed.notify_all()
