"""What a command tells the person or the scheduler watching it: events, progress, the summary.

Text for people on a terminal, with a live status block redrawn in place; one JSON object per line
(`--log-format json`, or whenever stdout is not a terminal) for cron and log shippers. No other module
prints. Events carry chunk numbers, job ids, counts and messages, never tokens or users.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Final, TextIO

import orjson

from orchestrator.cli.render import (
    render_diff_progress,
    render_plan,
    render_progress,
    render_report,
    render_resolved,
    render_sync_counts,
    render_sync_summary,
)

#: Events worth a line in text mode (JSON mode prints every event).
TEXT_EVENTS: Final = {
    "job_submitted": "chunk {chunk}: job {job_id} submitted",
    "job_completed": "chunk {chunk}: job {job_id} completed: {inserted} inserted, "
    "{updated} updated, {failed} failed",
    "job_failed": "chunk {chunk}: job {job_id} ended {outcome}: {detail}",
    "chunk_failed": "chunk {chunk}: giving up: {detail}",
    "retry": "chunk {chunk}: retrying ({reason})",
    "slot_wait": "chunk {chunk}: every job slot is taken, waiting {seconds:.1f} s",
    "slots_discovered": "the tenant allows {job_slots} import jobs at once",
    "rate_limit_wait": "rate limit reached, waiting {seconds:.1f} s",
    "unknown_outcome": "chunk {chunk}: {detail}; whether its {users} users were imported is "
    "unknown: looking them up before sending any again",
    "outcome_unresolved": "chunk {chunk}: {detail}; it is not sent again (see the report)",
    "duplicates_unchecked": "chunk {chunk}: {users} DUPLICATED_USER failure(s) not checked: "
    "{detail}",
    "errors_unavailable": "chunk {chunk}: per-user errors not fetched: {detail}",
    "progress": "{chunks_done}/{chunks} chunks done, {active} active; {inserted} inserted, "
    "{updated} updated, {failed} failed; {rate}",
    "info": "{message}",
}
#: Events whose text is a whole block, rendered from their fields.
TEXT_BLOCKS: Final[dict[str, Callable[[Mapping[str, object]], str]]] = {
    "plan": render_plan,
    "run_summary": render_report,
    "night_summary": render_sync_summary,
    "diff_progress": render_diff_progress,
    "resolved": render_resolved,
    "sync_classified": lambda counts: render_sync_counts(
        counts, title=f"sync {str(counts.get('run_dir', '')).rsplit('/', 1)[-1]}: tonight's export"
    ),
}
#: Events still shown with --quiet: the ones that need a person's attention.
ALWAYS: Final = frozenset(
    {"chunk_failed", "errors_unavailable", "outcome_unresolved", "duplicates_unchecked"}
)
#: Events sent often; shown at most every `progress_every` seconds (or drawn live on a terminal).
THROTTLED: Final = frozenset({"progress", "diff_progress"})
#: In text mode on a terminal, job-by-job lines are left to the live block.
QUIET_ON_TERMINAL: Final = frozenset({"job_submitted"})


class EventLog:
    """Formats events, progress and summaries for a terminal, a log file or a scheduler.

    Args:
        json_lines: one JSON object per event on `out`; otherwise text on `err`.
        quiet: only the summary and what needs attention.
        live: redraw a status block in place on `err` (a terminal, text mode).
        progress_every: seconds between two throttled events when not live.
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
        # The first throttled line of each kind after one interval.
        self._last: dict[str, float] = dict.fromkeys(THROTTLED, time.monotonic())

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

    def __call__(self, name: str, fields: Mapping[str, object], /) -> None:
        """One event: a JSON line, or text when the event matters to a person."""
        if self.quiet and name not in ALWAYS:
            return
        if name in THROTTLED:
            if name == "progress" and self.live:
                self._block = render_progress(fields)
                self._redraw()
                return
            now = time.monotonic()
            if now - self._last[name] < self.progress_every:
                return
            self._last[name] = now
        if self.json_lines:
            record = {"ts": round(time.time(), 3), "event": name, **fields}
            self._out.write(orjson.dumps(record, default=str).decode() + "\n")
            self._out.flush()
            return
        if self.live and name in QUIET_ON_TERMINAL:
            return
        block = TEXT_BLOCKS.get(name)
        if block is not None:
            self._write_above_block(block(fields))
            return
        template = TEXT_EVENTS.get(name)
        if template is None:
            return
        try:
            line = template.format(**fields)
        except (KeyError, ValueError):
            line = f"{name} {dict(fields)}"
        self._write_above_block(line)

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
            self._out.write(orjson.dumps({"event": "summary", **data}, default=str).decode() + "\n")
        else:
            self._out.write(text + "\n")
        self._out.flush()

    def error(self, text: str) -> None:
        """An error line on stderr (never hidden by --quiet); the live block first goes away."""
        self.close_live()
        self._err.write(text + "\n")
        self._err.flush()

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
