"""The request budget's reading of the server's rate-limit answers and of its clock (pure: answers
are built by hand, nothing is sent)."""

from __future__ import annotations

import random
import time

import pytest

from orchestrator.auth0.budget import RequestBudget
from orchestrator.auth0.http import RawAnswer
from orchestrator.settings import ClientSettings


def budget(**settings: object) -> tuple[RequestBudget, list[dict[str, object]]]:
    seen: list[dict[str, object]] = []
    made = RequestBudget(
        ClientSettings(**settings),  # type: ignore[arg-type]
        lambda name, fields: seen.append({"event": name, **fields}),
        random.Random(3),
    )
    return made, seen


def answer(
    *, reset: float | None = None, offset: float = 0.0, remaining: str | None = None
) -> RawAnswer:
    return RawAnswer(
        status=429,
        content=b"{}",
        retry_after=None,
        remaining=remaining,
        reset=None if reset is None else str(int(reset)),
        clock_offset=offset,
        clock_floor=offset - 0.5,
    )


@pytest.mark.parametrize("past", [1, 30, 3600])
def test_a_reset_already_past_still_waits_the_floor(past: int) -> None:
    made, seen = budget()
    wait = made.note("GET", "/api/v2/jobs/x", answer(reset=time.time() - past), limited=True)
    assert wait == 1.0
    (event,) = seen
    assert isinstance(event["seconds"], float)
    assert 1.0 <= event["seconds"] <= 1.25  # jittered upwards only


def test_a_reset_is_read_on_the_servers_clock() -> None:
    # The server's clock is 120 s behind ours: its reset "3 s from now" is a UNIX time that is
    # 117 s in our past. Read on its clock, it is 3 s away.
    made, _ = budget()
    server_now = time.time() - 120
    wait = made.note("GET", "/x", answer(reset=server_now + 3, offset=-120.0), limited=True)
    assert wait is not None
    assert 2.0 <= wait <= 3.5


def test_a_far_reset_is_capped() -> None:
    made, seen = budget(max_server_wait=5.0)
    wait = made.note("GET", "/x", answer(reset=time.time() + 3600), limited=True)
    assert wait == 5.0
    assert seen[0]["capped"] is True


def test_the_clock_floor_is_the_tightest_bound_and_restarts_after_a_step() -> None:
    made, _ = budget()
    for offset in (2.3, 2.9, 2.6):
        made.note("GET", "/x", answer(offset=offset, remaining="5"), limited=False)
    assert made.clock_floor == pytest.approx(2.4)  # the greatest of the lower bounds
    assert made.clock_offset == 2.6  # the latest estimate
    made.note("GET", "/x", answer(offset=-40.0, remaining="5"), limited=False)
    assert made.clock_floor == pytest.approx(-40.5)  # a clock was stepped: start again
