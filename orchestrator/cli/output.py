"""What a command tells the person or the scheduler watching it: events, progress, the summary.

Text for people on a terminal, with a live view under the event lines (`rich`: a bar of users, the
rate and ETA, one line per job in flight); one JSON object per line (`--log-format json`, or whenever
stdout is not a terminal) for cron and log shippers. No other module prints. Events carry chunk
numbers, job ids, counts and messages, never tokens or users.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, TextIO

import orjson

from orchestrator.cli.render import (
    duration,
    render_diff_progress,
    render_plan,
    render_report,
    render_resolved,
    render_sync_counts,
    render_sync_summary,
)

if TYPE_CHECKING:  # rich is imported only when a terminal shows the live view
    from rich.console import Console
    from rich.live import Live
    from rich.progress import Progress, TaskID
    from rich.text import Text

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
    "warning": "warning: {message}",
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
    {"chunk_failed", "errors_unavailable", "outcome_unresolved", "duplicates_unchecked", "warning"}
)
#: Events sent often; shown at most every `progress_every` seconds (or drawn live on a terminal).
THROTTLED: Final = frozenset({"progress", "diff_progress"})
#: In text mode on a terminal, job-by-job lines are left to the live view.
QUIET_ON_TERMINAL: Final = frozenset({"job_submitted"})


class EventLog:
    """Formats events, progress and summaries for a terminal, a log file or a scheduler.

    Args:
        json_lines: one JSON object per event on `out`; otherwise text on `err`.
        quiet: only the summary and what needs attention.
        live: show the live view on `err` (a terminal, text mode); text lines appear above it.
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
        self._view: LiveView | None = None
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
                self._live_view().update(fields)
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
            self._write(block(fields))
            return
        template = TEXT_EVENTS.get(name)
        if template is None:
            return
        try:
            line = template.format(**fields)
        except (KeyError, ValueError):
            line = f"{name} {dict(fields)}"
        self._write(line)

    def close_live(self) -> None:
        """Take the live view away: the summary that follows says it all."""
        view, self._view = self._view, None
        if view is not None:
            view.stop()
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
        """An error line on stderr (never hidden by --quiet); the live view first goes away."""
        self.close_live()
        self._err.write(text + "\n")
        self._err.flush()

    def _write(self, text: str) -> None:
        if self._view is not None:
            self._view.print(text)
        else:
            self._err.write(text + "\n")
            self._err.flush()

    def _live_view(self) -> LiveView:
        if self._view is None:
            self._view = LiveView(self._err, redirect=self._err is sys.stderr)
            # Whatever ends the process, the terminal gets its cursor back.
            atexit.register(self.close_live)
        return self._view


class LiveView:
    """The live view of a run on a terminal, drawn with `rich` under the lines of events.

    `rich` replaces a hand-written redraw: it measures what it drew (wide characters, wrapped
    lines, a resized terminal) and prints event lines above the view without tearing it, which
    counting lines and moving the cursor by hand did not do reliably.

    Args:
        err: where it is drawn (a terminal; tests give a StringIO).
        redirect: let other writes to sys.stderr appear above the view.
    """

    def __init__(self, err: TextIO, *, redirect: bool = False) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.text import Text

        self._console: Console = Console(
            file=err, force_terminal=True, highlight=False, markup=False, emoji=False
        )
        self._progress: Progress = Progress(
            TextColumn("users  "),
            BarColumn(),
            TextColumn("{task.fields[count]}  {task.fields[rate]}  ETA {task.fields[eta]}"),
            console=self._console,
            auto_refresh=False,
        )
        self._task: TaskID = self._progress.add_task(
            "users", total=None, count="", rate="", eta="after the first job"
        )
        self._chunks: Text = Text()
        self._jobs: Text = Text()
        self._live: Live = Live(
            Group(self._chunks, self._progress, self._jobs),
            console=self._console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=redirect,
        )
        self._live.start()

    def update(self, fields: Mapping[str, object]) -> None:
        """Redraw from a `progress` event's fields."""
        eta = fields.get("eta_seconds")
        done, total = _count(fields.get("users_done")), _count(fields.get("users"))
        self._progress.update(
            self._task,
            total=total or None,
            completed=done,
            count=f"{done:,}/{total:,}",
            rate=f"{_count(fields.get('users_per_hour')):,} users/hour",
            eta=duration(eta) if isinstance(eta, int | float) else "after the first job",
        )
        self._chunks.plain = (
            f"chunks  {fields.get('chunks_done', 0)}/{fields.get('chunks', 0)} done, "
            f"{fields.get('active', 0)} active, {fields.get('chunks_failed', 0)} failed\n"
            f"result  {_count(fields.get('inserted')):,} inserted, "
            f"{_count(fields.get('updated')):,} updated, {_count(fields.get('failed')):,} failed"
        )
        jobs = fields.get("jobs_in_flight")
        listed = [str(job) for job in jobs] if isinstance(jobs, list) else []
        self._jobs.plain = "\n".join(f"in flight: {job}" for job in listed) or "in flight: none"
        self._live.refresh()

    def print(self, text: str) -> None:
        """A line (or block) of text above the view."""
        self._live.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def stop(self) -> None:
        self._live.stop()


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
