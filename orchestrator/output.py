"""What a run tells the person or the scheduler watching it: events, progress lines, the summary.

Text for people on a terminal; one JSON object per line (`--log-format json`, or whenever stdout is not
a terminal) for cron and log shippers. No other module prints. Nothing secret is ever passed in here:
events carry chunk numbers, job ids and counts, never tokens or users.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

import orjson

#: Events worth a line in text mode even without --verbose progress (JSON mode prints every event).
TEXT_EVENTS = {
    "job_submitted": "chunk {chunk}: job {job_id} submitted",
    "job_completed": "chunk {chunk}: job {job_id} completed: {inserted} inserted, "
    "{updated} updated, {failed} failed",
    "job_failed": "chunk {chunk}: job {job_id} ended {outcome}: {detail}",
    "chunk_failed": "chunk {chunk}: giving up: {detail}",
    "retry": "chunk {chunk}: retrying ({reason})",
    "slot_wait": "chunk {chunk}: every job slot is taken, waiting {seconds:.1f} s",
    "rate_limit_wait": "rate limit reached, waiting {seconds:.1f} s",
    "ambiguous_resubmission": "chunk {chunk}: the previous submission may have created a job "
    "({external_id}); submitting again",
    "errors_unavailable": "chunk {chunk}: per-user errors not fetched: {detail}",
    "progress": "{chunks_done}/{chunks} chunks, {active} active; {inserted} inserted, "
    "{updated} updated, {failed} failed; {rate}",
}


class EventLog:
    """Formats events and summaries for text or JSON output."""

    def __init__(self, *, json_lines: bool, quiet: bool, out: TextIO, err: TextIO) -> None:
        self.json_lines = json_lines
        self.quiet = quiet
        self._out = out
        self._err = err

    @classmethod
    def for_terminal(cls, *, log_format: str | None, quiet: bool) -> EventLog:
        json_lines = log_format == "json" or (log_format is None and not sys.stdout.isatty())
        return cls(json_lines=json_lines, quiet=quiet, out=sys.stdout, err=sys.stderr)

    def __call__(self, name: str, fields: Mapping[str, object]) -> None:
        """One event: a JSON line, or a text line when the event matters to a person."""
        if self.json_lines:
            if self.quiet and name not in ("chunk_failed", "errors_unavailable"):
                return
            record = {"ts": round(time.time(), 3), "event": name, **fields}
            self._out.write(orjson.dumps(record, default=str).decode() + "\n")
            self._out.flush()
            return
        template = TEXT_EVENTS.get(name)
        if template is None or (self.quiet and name not in ("chunk_failed",)):
            return
        try:
            line = template.format(**fields)
        except (KeyError, ValueError):
            line = f"{name} {dict(fields)}"
        self._err.write(line + "\n")
        self._err.flush()

    def summary(self, text: str, data: Mapping[str, object]) -> None:
        """The closing summary: text on stdout, or one `summary` JSON object."""
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
            self._err.write(text + "\n")
            self._err.flush()

    def info(self, text: str) -> None:
        """A line of information for people (not shown with --quiet; an event in JSON mode)."""
        if self.quiet:
            return
        if self.json_lines:
            self("info", {"message": text})
        else:
            self._err.write(text + "\n")
            self._err.flush()
