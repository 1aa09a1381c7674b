"""Retry policy for API requests: which failures are retried and how long to wait before the next try.

Pure arithmetic, no I/O and no sleeping: the client asks `retry_delay` and does the waiting itself.
Job-slot waits (SlotsBusyError) are not retries and are owned by the job workers.
"""

from __future__ import annotations

import random

from orchestrator.errors import RateLimitedError, ServerError, TransportError
from orchestrator.settings import RetryPolicy


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
