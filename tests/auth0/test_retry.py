"""Retry arithmetic: validation, exponential backoff with bounded jitter, which errors are retried."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.auth0.retry import backoff, retry_delay
from orchestrator.errors import (
    AuthError,
    ConfigError,
    InputError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    SlotsBusyError,
    TransportError,
)
from orchestrator.settings import RetryPolicy


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"wait_initial": -1.0},
        {"wait_initial": 2.0, "wait_max": 1.0},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_invalid_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(wait_initial=0.5, wait_max=3.0, jitter=0.0)
    rng = random.Random(1)
    assert [backoff(policy, n, rng) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert backoff(policy, 10_000, rng) == 3.0


@given(
    attempt=st.integers(min_value=1, max_value=200),
    jitter=st.floats(min_value=0.0, max_value=0.99),
    seed=st.integers(),
)
def test_backoff_stays_within_jitter_bounds(attempt: int, jitter: float, seed: int) -> None:
    policy = RetryPolicy(wait_initial=0.5, wait_max=30.0, jitter=jitter)
    base = min(30.0, 0.5 * 2.0 ** (attempt - 1))
    delay = backoff(policy, attempt, random.Random(seed))
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


def test_jitter_spreads_delays() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    delays = {backoff(policy, 3, rng) for _ in range(50)}
    assert len(delays) > 40


@pytest.mark.parametrize(
    "exc",
    [
        TransportError("reset"),
        TransportError("refused", maybe_processed=False),
        ServerError("boom", status=503),
        RateLimitedError("slow down", status=429),
    ],
)
def test_retryable_errors_get_backoff(exc: Exception) -> None:
    policy = RetryPolicy(wait_initial=1.0, jitter=0.0)
    assert retry_delay(policy, 1, exc, random.Random(0)) == 1.0
    assert retry_delay(policy, 3, exc, random.Random(0)) == 4.0


@pytest.mark.parametrize(
    "exc",
    [
        AuthError("no", status=401),
        AuthError("scope", status=403),
        RequestRejectedError("too big", status=413),
        SlotsBusyError("There are 2 active import users jobs", status=429, active_jobs=2),
        InputError("bad", path="x"),
        ValueError("not ours"),
    ],
)
def test_not_retryable(exc: Exception) -> None:
    assert retry_delay(RetryPolicy(), 1, exc, random.Random(0)) is None


def test_rate_limit_honours_retry_after_never_earlier() -> None:
    policy = RetryPolicy(jitter=0.25, wait_max=1.0)
    exc = RateLimitedError("slow down", status=429, retry_after=7.0)
    rng = random.Random(3)
    delays = [retry_delay(policy, 1, exc, rng) for _ in range(100)]
    assert all(d is not None and 7.0 <= d <= 7.0 * 1.25 for d in delays)


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(attempts=3, jitter=0.0)
    exc = ServerError("boom", status=500)
    assert retry_delay(policy, 2, exc, random.Random(0)) is not None
    assert retry_delay(policy, 3, exc, random.Random(0)) is None
    assert retry_delay(RetryPolicy(attempts=1), 1, exc, random.Random(0)) is None
