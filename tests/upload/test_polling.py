"""Adaptive polling: few looks per job, a fine look right after the predicted end."""

from __future__ import annotations

from orchestrator.settings import PollTiming
from orchestrator.upload.polling import DurationModel, JobPoller


def simulate(duration: float, durations: DurationModel, timing: PollTiming) -> tuple[int, float]:
    """Poll a job whose progress is linear over `duration`; returns (polls, lateness)."""
    poller = JobPoller(0.0, durations, timing)
    now = poller.next_delay(0.0)
    polls = 0
    while True:
        polls += 1
        if now >= duration:
            return polls, now - duration
        percentage = int(100 * now / duration)
        time_left = int(duration - now) + 1
        now += poller.next_delay(now, percentage, time_left)


def test_a_known_duration_is_caught_quickly_with_few_polls() -> None:
    durations = DurationModel()
    durations.observe(3.0)
    polls, late = simulate(3.0, durations, PollTiming())
    assert late <= 0.1
    assert polls <= 6


def test_the_first_job_learns_from_its_own_progress() -> None:
    polls, late = simulate(20.0, DurationModel(), PollTiming())
    assert late <= 0.3
    assert polls <= 12


def test_a_slow_job_backs_off_instead_of_hammering() -> None:
    durations = DurationModel()
    durations.observe(1.0)
    poller = JobPoller(0.0, durations, PollTiming())
    delays = [poller.next_delay(t) for t in (5.0, 10.0, 30.0)]
    assert delays == sorted(delays)
    assert delays[-1] == PollTiming().coarse


def test_nothing_known_starts_with_the_first_delay_and_grows() -> None:
    poller = JobPoller(0.0, DurationModel(), PollTiming(first=0.5, coarse=10.0))
    assert poller.next_delay(0.0) == 0.5
    assert poller.next_delay(4.0) == 4.0
    assert poller.next_delay(60.0) == 10.0
