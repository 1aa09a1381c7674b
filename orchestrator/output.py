"""What a run tells the person or the scheduler watching it: events, progress, the summary.

Text for people on a terminal, with a live status block redrawn in place; one JSON object per line
(`--log-format json`, or whenever stdout is not a terminal) for cron and log shippers. No other module
prints. Nothing secret is ever passed in here: events carry chunk numbers, job ids and counts, never
tokens or users.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

import orjson

#: Events worth a line in text mode (JSON mode prints every event).
TEXT_EVENTS = {
    "job_submitted": "chunk {chunk}: job {job_id} submitted",
    "job_completed": "chunk {chunk}: job {job_id} completed: {inserted} inserted, "
    "{updated} updated, {failed} failed",
    "job_failed": "chunk {chunk}: job {job_id} ended {outcome}: {detail}",
    "chunk_failed": "chunk {chunk}: giving up: {detail}",
    "retry": "chunk {chunk}: retrying ({reason})",
    "slot_wait": "chunk {chunk}: every job slot is taken, waiting {seconds:.1f} s",
    "slots_discovered": "the tenant allows {job_slots} import jobs at once",
    "rate_limit_wait": "rate limit reached, waiting {seconds:.1f} s",
    "ambiguous_resubmission": "chunk {chunk}: the previous submission may have created a job "
    "({external_id}); submitting again",
    "errors_unavailable": "chunk {chunk}: per-user errors not fetched: {detail}",
    "progress": "{chunks_done}/{chunks} chunks done, {active} active; {inserted} inserted, "
    "{updated} updated, {failed} failed; {rate}",
}
#: Events still shown with --quiet: the ones that need a person's attention.
ALWAYS = frozenset({"chunk_failed", "errors_unavailable"})
#: In text mode on a terminal, job-by-job lines are left to the live block.
QUIET_ON_TERMINAL = frozenset({"job_submitted", "progress"})


class EventLog:
    """Formats events, progress and summaries for a terminal, a log file or a scheduler.

    Args:
        json_lines: one JSON object per event on `out`; otherwise text on `err`.
        quiet: only the summary and what needs attention.
        live: redraw a status block in place on `err` (a terminal, text mode).
        progress_every: seconds between `progress` events when not live.
    """

    def __init__(
        self,
        *,
        json_lines: bool,
        quiet: bool,
        out: TextIO,
        err: TextIO,
        live: bool = False,
        progress_every: float = 10.0,
    ) -> None:
        self.json_lines = json_lines
        self.quiet = quiet
        self.live = live and not json_lines and not quiet
        self.progress_every = progress_every
        self._out = out
        self._err = err
        self._block_lines = 0
        self._block: list[str] = []
        self._last_progress = time.monotonic()  # the first progress line after one interval

    @classmethod
    def for_terminal(
        cls, *, log_format: str | None, quiet: bool, progress_every: float = 10.0
    ) -> EventLog:
        json_lines = log_format == "json" or (log_format is None and not sys.stdout.isatty())
        return cls(
            json_lines=json_lines,
            quiet=quiet,
            out=sys.stdout,
            err=sys.stderr,
            live=sys.stderr.isatty(),
            progress_every=progress_every,
        )

    def __call__(self, name: str, fields: Mapping[str, object]) -> None:
        """One event: a JSON line, or a text line when the event matters to a person."""
        if self.quiet and name not in ALWAYS:
            return
        if self.json_lines:
            record = {"ts": round(time.time(), 3), "event": name, **fields}
            self._out.write(orjson.dumps(record, default=str).decode() + "\n")
            self._out.flush()
            return
        template = TEXT_EVENTS.get(name)
        if template is None or (self.live and name in QUIET_ON_TERMINAL):
            return
        try:
            line = template.format(**fields)
        except (KeyError, ValueError):
            line = f"{name} {dict(fields)}"
        self._write_above_block(line)

    def progress(self, fields: Mapping[str, object]) -> None:
        """The run's state, called about once a second: redraws the live block, or emits a
        `progress` event every `progress_every` seconds."""
        if self.live:
            self._block = render_progress(fields)
            self._redraw()
            return
        now = time.monotonic()
        if now - self._last_progress >= self.progress_every:
            self._last_progress = now
            self("progress", fields)

    def close_live(self) -> None:
        """Take the status block away: the summary that follows says it all."""
        if self.live:
            self._clear_block()
            self._block = []
            self._err.flush()

    def summary(self, text: str, data: Mapping[str, object]) -> None:
        """The closing summary: text on stdout, or one `summary` JSON object."""
        self.close_live()
        if self.json_lines:
            self._out.write(orjson.dumps({"event": "summary", **data}).decode() + "\n")
        else:
            self._out.write(text + "\n")
        self._out.flush()

    def plan(self, text: str, data: Mapping[str, object]) -> None:
        """The plan's counts before uploading: text lines, or one `plan` JSON event."""
        if self.json_lines:
            self("plan", data)
        elif not self.quiet:
            self._write_above_block(text)

    def info(self, text: str) -> None:
        """A line of information for people (not shown with --quiet; an event in JSON mode)."""
        if self.quiet:
            return
        if self.json_lines:
            self("info", {"message": text})
        else:
            self._write_above_block(text)

    def _write_above_block(self, text: str) -> None:
        self._clear_block()
        self._err.write(text + "\n")
        self._redraw()

    def _clear_block(self) -> None:
        if self._block_lines:
            # Up to the block's first line, then clear to the end of the screen.
            self._err.write(f"\x1b[{self._block_lines}F\x1b[J")
            self._block_lines = 0

    def _redraw(self) -> None:
        if self.live and self._block:
            self._clear_block()
            self._err.write("\n".join(self._block) + "\n")
            self._block_lines = len(self._block)
        self._err.flush()


def render_progress(fields: Mapping[str, object]) -> list[str]:
    """The live block: chunks, users, rate and ETA, and the jobs in flight."""
    eta = fields.get("eta_seconds")
    eta_text = _duration(eta) if isinstance(eta, int | float) else "after the first job"
    jobs = fields.get("jobs_in_flight") or []
    flight = ", ".join(str(job) for job in jobs) if isinstance(jobs, list) and jobs else "none"
    return [
        (
            f"chunks  {fields['chunks_done']}/{fields['chunks']} done, {fields['active']} active, "
            f"{fields.get('chunks_failed', 0)} failed    users  {fields['inserted']:,} inserted, "
            f"{fields['updated']:,} updated, {fields['failed']:,} failed"
        ),
        f"rate    {fields['users_per_hour']:,} users/hour    ETA {eta_text}    in flight: {flight}",
    ]


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
