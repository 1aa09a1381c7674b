"""The request budget: one rate for every request we send, and the server's own rate-limit answers.

Usage: every request first awaits `RequestBudget.wait()`; every answer goes through `note()`, which
closes the gate for everyone when the server says the budget is spent (`x-ratelimit-remaining: 0`, or a
rate-limit 429 with `x-ratelimit-reset` / `Retry-After`). Waits are read on the server's clock (its
`Date` header), never shorter than a floor, and jittered so that clients that stopped together do not
come back together.
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Final

import anyio
from aiolimiter import AsyncLimiter

from orchestrator.auth0.http import RawAnswer
from orchestrator.events import EventSink
from orchestrator.settings import ClientSettings

#: Below this, x-ratelimit-reset cannot be a UNIX time (2001-09-09): read it as seconds from now.
_EPOCH_FLOOR: Final = 1e9
#: An answer's offset bound this far below the others is a clock that was stepped, not noise (the
#: bounds of one clock pair differ by a second and the latency at most).
_CLOCK_STEP: Final = 5.0


def limiter_shape(max_rps: float) -> tuple[float, float]:
    """``(max_rate, time_period)`` of the AsyncLimiter that holds ``max_rps`` requests per second.

    AsyncLimiter lets ``max_rate`` requests through at once, then refills at max_rate/time_period.
    A fractional rate becomes one request per 1/rps seconds (no burst); a rate >= 1 becomes
    round(rps) per second, i.e. a burst of round(rps) on top of the sustained rate.
    """
    if max_rps < 1:
        return 1.0, 1.0 / max_rps
    return float(round(max_rps)), 1.0


class RequestBudget:
    """The shared pace of one client's requests; create it inside the running event loop.

    Attributes:
        clock_offset: the server's clock minus ours (seconds), from the latest Date header.
        clock_floor: the greatest lower bound of that offset over every answer so far: never
            above the true offset, and within a few milliseconds of it after a few dozen answers
            (each Date is whole seconds, stamped at some point of its exchange).
        waited_seconds: seconds requests spent waiting here, summed over requests.
    """

    def __init__(self, settings: ClientSettings, events: EventSink, rng: random.Random) -> None:
        self._settings = settings
        self._events = events
        self._rng = rng
        max_rate, period = limiter_shape(settings.max_rps)
        self._limiter = AsyncLimiter(max_rate, period)
        # "No request starts before" this monotonic time: one 429 pauses every task, not just the
        # one that received it.
        self._not_before = 0.0
        self.clock_offset: float | None = None
        self.clock_floor: float | None = None
        self.waited_seconds = 0.0

    async def wait(self) -> None:
        """Wait until the next request may start."""
        started = time.monotonic()
        await self._wait_not_before()
        await self._limiter.acquire()
        # Another answer may have pushed the gate while this request queued in the limiter.
        await self._wait_not_before()
        self.waited_seconds += time.monotonic() - started

    async def _wait_not_before(self) -> None:
        # Polling, not an Event: the gate is a time, and it may move later while we sleep.
        while (delay := self._not_before - time.monotonic()) > 0:  # noqa: ASYNC110
            await anyio.sleep(delay)

    def note(self, method: str, path: str, answer: RawAnswer, *, limited: bool) -> float | None:
        """Take an answer's rate-limit headers into account; returns the wait it imposes.

        ``limited`` marks a rate-limit 429, which always imposes at least the floor. Otherwise only
        ``x-ratelimit-remaining: 0`` matters.
        """
        if answer.clock_offset is not None:
            self.clock_offset = answer.clock_offset
        floor = answer.clock_floor
        if floor is not None:
            known = self.clock_floor
            # A bound far below the others means one of the clocks was stepped: start again.
            stepped = known is not None and floor < known - _CLOCK_STEP
            self.clock_floor = floor if known is None or stepped else max(known, floor)
        if not limited and (answer.remaining or "").strip() != "0":
            return None
        asked = server_wait(
            answer.retry_after, answer.reset, time.time() + (self.clock_offset or 0)
        )
        floor = self._settings.min_server_wait if limited else 0.0
        wait = max(asked if asked is not None else floor, floor)
        capped = wait > self._settings.max_server_wait
        wait = min(wait, self._settings.max_server_wait)
        if wait <= 0:
            return 0.0
        pause = wait * (1.0 + self._rng.uniform(0.0, self._settings.retry.jitter))
        not_before = time.monotonic() + pause
        if not_before > self._not_before:
            self._not_before = not_before
            self._events(
                "rate_limit_wait",
                {
                    "method": method,
                    "path": path,
                    "seconds": round(pause, 3),
                    "reason": "429" if limited else "remaining=0",
                    "capped": capped,
                },
            )
        return wait


def server_wait(retry_after: str | None, reset: str | None, server_now: float) -> float | None:
    """Seconds the server asks to wait: Retry-After (seconds or HTTP date), else X-RateLimit-Reset.

    ``server_now`` is the current time on the server's clock, so a UNIX reset time is read as the
    server meant it even when our clock is off.
    """
    if retry_after is not None:
        value = retry_after.strip()
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return email.utils.parsedate_to_datetime(value).timestamp() - server_now
        except (TypeError, ValueError):
            pass
    if reset is not None:
        try:
            value_f = float(reset.strip())
        except ValueError:
            return None
        return value_f - server_now if value_f >= _EPOCH_FLOOR else value_f
    return None
