"""When to look at a running job next: adaptive polling that lands right after the job ends.

Pure arithmetic over observations, no I/O. The goal is to refill a job slot within a fraction of a second
of its job ending while sending only a handful of GETs per job: early polls are sparse, and the end is
predicted from the job's own progress rate (two `percentage_done` samples), its `time_left_seconds`, or
the duration of the jobs before it, with fine polls only in the last moments.
"""

from __future__ import annotations

from orchestrator.settings import PollTiming


class DurationModel:
    """The typical job duration seen so far in this run (exponentially weighted), shared by workers."""

    __slots__ = ("_mean",)

    def __init__(self) -> None:
        self._mean: float | None = None

    @property
    def mean(self) -> float | None:
        return self._mean

    def observe(self, seconds: float) -> None:
        self._mean = seconds if self._mean is None else 0.7 * self._mean + 0.3 * seconds


class JobPoller:
    """Decides the delay before the next GET of one job.

    Args:
        submitted_at: monotonic time the job was created (its POST answered).
        durations: the run's duration model, for a first guess of when the job ends.
    """

    __slots__ = ("_durations", "_last_sample", "_submitted_at", "_timing")

    def __init__(
        self, submitted_at: float, durations: DurationModel, timing: PollTiming | None = None
    ) -> None:
        self._submitted_at = submitted_at
        self._durations = durations
        self._timing = timing or PollTiming()
        self._last_sample: tuple[float, int] | None = None

    def next_delay(
        self, now: float, percentage_done: int | None = None, time_left_seconds: int | None = None
    ) -> float:
        """Seconds to wait before the next look, given what the last look said."""
        timing = self._timing
        end = self._predicted_end(now, percentage_done, time_left_seconds)
        if end is None:
            waited = now - self._submitted_at
            return min(timing.coarse, max(timing.first, waited))
        remaining = end - now
        if remaining < 0:
            # Later than predicted: back off in proportion, so a slow job does not drain the budget.
            return min(timing.coarse, timing.fine - remaining / 2)
        if remaining <= timing.lead:
            return max(timing.fine, remaining + timing.fine / 2)
        # Approach the end in shrinking steps: each look refines the estimate.
        return min(timing.coarse, max(timing.fine, remaining * 0.7))

    def _predicted_end(
        self, now: float, percentage_done: int | None, time_left_seconds: int | None
    ) -> float | None:
        rate_end = None
        if percentage_done is not None and 0 < percentage_done < 100:
            previous = self._last_sample
            self._last_sample = (now, percentage_done)
            if previous is not None and percentage_done > previous[1] and now > previous[0]:
                rate = (percentage_done - previous[1]) / (now - previous[0])
                rate_end = now + (100 - percentage_done) / rate
        if rate_end is not None:
            return rate_end
        guesses = []
        if time_left_seconds is not None and time_left_seconds >= 0:
            guesses.append(now + time_left_seconds)
        if self._durations.mean is not None:
            guesses.append(self._submitted_at + self._durations.mean)
        if not guesses:
            return None
        # time_left_seconds is whole seconds: trust the learned duration when it is finer and agrees.
        return min(guesses)
