"""The sandbox's request budget: a token bucket like the Management API's global limit (reference §8).

Pure arithmetic on a clock the caller passes in; the app turns a decision into `x-ratelimit-*` headers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Outcome of one request against the bucket, in the terms of the `x-ratelimit-*` headers."""

    allowed: bool
    limit: int
    remaining: int
    #: Seconds from now until the bucket holds one more request.
    seconds_to_refill: float

    def headers(self, wall_now: float) -> dict[str, str]:
        """`x-ratelimit-reset` is the UNIX second at which the next request is added (rounded up)."""
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(math.ceil(wall_now + self.seconds_to_refill)),
        }


class TokenBucket:
    """`size` requests at once, refilled continuously at `rate` per second."""

    def __init__(self, *, size: int, rate: float, now: float) -> None:
        self._size = size
        self._rate = rate
        self._level = float(size)
        self._updated = now

    def take(self, now: float) -> RateDecision:
        """Spend one request if the bucket has one."""
        self._level = min(self._size, self._level + (now - self._updated) * self._rate)
        self._updated = now
        allowed = self._level >= 1.0
        if allowed:
            self._level -= 1.0
        return RateDecision(
            allowed=allowed,
            limit=self._size,
            remaining=math.floor(self._level),
            seconds_to_refill=self._seconds_to_next(),
        )

    def _seconds_to_next(self) -> float:
        if self._level >= self._size:
            return 0.0
        missing = 1.0 - (self._level - math.floor(self._level))
        return missing / self._rate
