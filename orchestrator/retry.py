"""Retry policy for API requests: which failures are retried and how long to wait before the next try.

Pure arithmetic, no I/O and no sleeping: the client asks `retry_delay` and does the waiting itself.
Job-slot waits (SlotsBusyError) are not retries and are owned by the job workers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from orchestrator.errors import ConfigError, RateLimitedError, ServerError, TransportError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request is retried.

    Attributes:
        attempts: Tries in total, the first one included (1 = never retry).
        wait_initial: Delay before the second try, in seconds; it doubles per try.
        wait_max: Ceiling of the exponential delay, in seconds.
        jitter: Relative spread, 0 <= jitter < 1: a delay d becomes d * (1 +/- jitter), so that
            clients that failed together do not come back together.
    """

    attempts: int = 6
    wait_initial: float = 0.5
    wait_max: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"retry attempts must be at least 1, got {self.attempts}")
        if self.wait_initial < 0:
            raise ConfigError(f"retry wait_initial must be >= 0, got {self.wait_initial}")
        if self.wait_max < self.wait_initial:
            raise ConfigError(
                f"retry wait_max ({self.wait_max}) must be >= wait_initial ({self.wait_initial})"
            )
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"retry jitter must be in [0, 1), got {self.jitter}")


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Exponential delay with jitter after the failed try number ``attempt`` (1-based).

    ``min(wait_max, wait_initial * 2**(attempt-1)) * (1 + uniform(-jitter, jitter))``.
    """
    # Cap the exponent first: 2**attempt for a large attempt would overflow a float.
    base = min(policy.wait_max, policy.wait_initial * 2.0 ** min(attempt - 1, 64))
    return base * (1.0 + rng.uniform(-policy.jitter, policy.jitter))


def retry_delay(
    policy: RetryPolicy, attempt: int, exc: BaseException, rng: random.Random
) -> float | None:
    """Seconds to wait before retrying after try number ``attempt`` failed with ``exc``.

    Args:
        policy: The retry policy.
        attempt: The try that just failed, 1-based.
        exc: What it failed with.
        rng: Source of jitter (seeded in tests).

    Returns:
        None when the error is not retryable (AuthError, RequestRejectedError, SlotsBusyError and
        anything that is not an API error) or the attempts are used up; otherwise the delay. A
        rate-limit 429 waits what the server asked (``retry_after``) plus up to ``jitter`` of it,
        never less; without that hint, or for transport errors and 5xx, it is `backoff`.
    """
    if attempt >= policy.attempts:
        return None
    if isinstance(exc, RateLimitedError):
        if exc.retry_after is not None and exc.retry_after >= 0:
            # Only ever later than the server asked: coming back early just earns another 429.
            return exc.retry_after * (1.0 + rng.uniform(0.0, policy.jitter))
        return backoff(policy, attempt, rng)
    if isinstance(exc, TransportError | ServerError):
        return backoff(policy, attempt, rng)
    return None
