"""`orchestrator sync`: one night of the incremental import, from the lock to the summary.

Takes the lock; finishes what an earlier invocation left (resumes its upload, or discards a diff that
never finished); classifies tonight's export against the state; imports new and changed users with
upsert through the normal plan and upload machinery in a run directory of its own; then marks synced
the users Auth0 took. Exit codes are decided here (SYNC_BUSY) and in cli.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import BinaryIO, Final

import orjson

from orchestrator.cli import (
    PROG,
    Interrupted,
    plan_options,
    plan_settings,
    plan_summary,
    render_plan,
)
from orchestrator.commands import (
    _anything_sent,
    _check_connection_id,
    _client_settings,
    _credentials,
    _preflight,
    _run_async,
    upload_and_report,
)
from orchestrator.errors import ConfigError, RunDirError
from orchestrator.fsutil import (
    PRIVATE_FILE_MODE,
    make_private_dir,
    utc_now_iso,
    write_private_atomic,
)
from orchestrator.output import EventLog
from orchestrator.planner import PlanOptions
from orchestrator.reader import ExportReader
from orchestrator.report import Outcome
from orchestrator.rundir import create_plan, has_plan, new_run_id
from orchestrator.sync.diff import DiffCounts, DiffResult, diff_export
from orchestrator.sync.lock import SyncBusyError, SyncLock, lock_path
from orchestrator.sync.parser import add_sync_parser
from orchestrator.sync.promote import night_outcome
from orchestrator.sync.state import Night, SyncState
from orchestrator.tracker import Tracker, load_manifest

__all__ = ["SYNC_BUSY", "add_sync_parser", "cmd_sync"]

#: Exit code when another sync holds the state's lock (nothing was done).
SYNC_BUSY: Final = 4

#: Files of a night's run directory, next to the usual run files (manifest, chunks, report, ...).
NIGHT_INPUT: Final = "sync-input.ndjson"
NIGHT_REJECTS: Final = "sync-rejects.ndjson"
MISSING: Final = "missing.ndjson"
NIGHT_REPORT: Final = "sync.json"


def cmd_sync(ns: argparse.Namespace, log: EventLog) -> int:
    """Run one sync; returns its exit code (SYNC_BUSY when another sync holds the lock)."""
    options = plan_options(ns)
    state_path: Path = ns.state
    if not state_path.parent.is_dir():
        raise ConfigError(f"--state {state_path}: directory {state_path.parent} does not exist")
    runs_dir: Path = ns.runs_dir or state_path.with_name(state_path.name + ".runs")
    try:
        lock = SyncLock.acquire(lock_path(state_path))
    except SyncBusyError as exc:
        log("sync_busy", {"message": str(exc)})
        sys.stderr.write(f"{PROG}: {exc}\n")
        return SYNC_BUSY
    with lock:
        if ns.dry_run:
            return _dry_run(ns, log, state_path, options)
        connection_id = _check_connection_id(ns.connection_id)
        with SyncState.open(state_path) as state:
            return _Sync(ns, log, state, runs_dir, options, connection_id).run()


def _dry_run(ns: argparse.Namespace, log: EventLog, state_path: Path, options: PlanOptions) -> int:
    """Classify tonight's export without sending or recording anything."""
    state = SyncState.open(state_path) if state_path.exists() else SyncState.in_memory()
    with state:
        if ns.connection_id:
            _check_connection(state, ns.connection_id, record=False)
        night = state.open_night()
        if night is not None:
            log.info(
                f"night {night.run_dir.name} is unfinished ({night.status}); a real sync resumes "
                "it before its own diff, so these counts may shrink"
            )
        result = diff_export(
            ExportReader(ns.input), state, options, send=None, rejects=None, record_pending=False
        )
        result.counts.missing = sum(1 for _ in _missing_keys(state, result))
    counts = result.counts
    data: dict[str, object] = {"command": "sync", "dry_run": True, **counts.as_json()}
    log.summary(_render_counts(counts, title="sync dry run: nothing sent, state unchanged"), data)
    return Outcome.USERS_FAILED if counts.rejected else Outcome.OK


class _Sync:
    """One real (not dry-run) sync, under the lock, with the state open."""

    def __init__(
        self,
        ns: argparse.Namespace,
        log: EventLog,
        state: SyncState,
        runs_dir: Path,
        options: PlanOptions,
        connection_id: str,
    ) -> None:
        self.ns = ns
        self.log = log
        self.state = state
        self.runs_dir = runs_dir
        self.options = options
        self.connection_id = connection_id
        self.credentials = _credentials(ns)
        self.client_settings = _client_settings(ns)

    def run(self) -> int:
        _check_connection(self.state, self.connection_id, record=False)
        _run_async(
            lambda: _preflight(self.credentials, self.client_settings, self.connection_id, self.log)
        )
        _check_connection(self.state, self.connection_id, record=True)
        self._check_normalisation()
        night = self.state.open_night()
        if night is not None:
            code = self._finish_earlier(night)
            if code is not None:
                return code
        return self._new_night()

    def _check_normalisation(self) -> None:
        """Warn when the switches that shape a user's JSON changed: every user will look changed."""
        current = (
            f"keep_user_id_prefix={int(self.options.keep_user_id_prefix)},"
            f"drop_unknown_fields={int(self.options.drop_unknown_fields)}"
        )
        before = self.state.get_meta("normalisation")
        if before != current:
            if before is not None and self.state.user_count():
                self.log.info(
                    f"normalisation switches changed ({before} -> {current}): users whose JSON "
                    "they change will be sent again"
                )
            self.state.set_meta("normalisation", current)

    # -- a night left by an earlier invocation -------------------------------------------------

    def _finish_earlier(self, night: Night) -> int | None:
        """Resume or discard an unfinished night; an exit code only if this sync must stop."""
        run_dir = night.run_dir
        try:
            manifest = load_manifest(run_dir) if has_plan(run_dir) else None
        except RunDirError as exc:
            self._abandon(night, exc)
            return None
        if night.status == "diffing" and (manifest is None or not _anything_sent(manifest)):
            # `uploading` is recorded before the first POST: nothing of this night reached Auth0.
            self.log.info(f"discarding {run_dir}: its diff never finished and nothing was sent")
            shutil.rmtree(run_dir, ignore_errors=True)
            self.state.close_night(night, {"abandoned": "diff unfinished"}, status="abandoned")
            return None
        if manifest is None:
            self.log.info(
                f"{run_dir} is gone: its users were not marked synced and are sent again tonight"
            )
            self.state.close_night(night, {"abandoned": "run dir gone"}, status="abandoned")
            return None
        self.log.info(f"resuming the unfinished night {run_dir} before tonight's diff")
        try:
            tracker = Tracker.open(run_dir)
            if self.ns.job_slots is not None or self.ns.max_attempts:
                tracker.update_settings(
                    job_slots=self.ns.job_slots,
                    max_attempts=self.ns.max_attempts or tracker.manifest.settings.max_attempts,
                )
            if night.status != "uploading":
                night = self.state.mark_uploading(night, tracker.manifest.run_id)
            code = self._upload(night, tracker, final=False)
        except RunDirError as exc:
            self._abandon(night, exc)
            return None
        return code if code == Outcome.INTERRUPTED else None

    def _abandon(self, night: Night, exc: RunDirError) -> None:
        """Give up a night that cannot be resumed, so that it does not block every later night.

        Nothing of it is marked synced: tonight's diff sends its users again (with upsert,
        harmless for those that did arrive).
        """
        self.log.info(f"abandoning {night.run_dir}, which cannot be resumed: {exc}")
        self.state.close_night(night, {"abandoned": str(exc)}, status="abandoned")

    # -- tonight ------------------------------------------------------------------------------------

    def _new_night(self) -> int:
        run_dir = self.runs_dir / new_run_id()
        night = self.state.begin_night(run_dir)
        try:
            with _sigterm_interrupts():
                make_private_dir(run_dir)
                result = self._diff(run_dir, night)
        except BaseException:
            # Nothing was sent: leave no half-written night (or its copy of users) behind.
            self.state.abort_diff()
            shutil.rmtree(run_dir, ignore_errors=True)
            self.state.close_night(night, {"abandoned": "diff failed"}, status="abandoned")
            raise
        counts = result.counts
        self.log.info(_render_counts(counts, title=f"sync {run_dir.name}: tonight's export"))
        if self.log.json_lines:
            self.log("sync_classified", {"run_dir": str(run_dir), **counts.as_json()})
        if counts.to_send == 0:
            (run_dir / NIGHT_INPUT).unlink(missing_ok=True)
            self.state.close_night(night, {**counts.as_json(), "input": self.ns.input})
            return self._finish(
                night, counts, self.ns.input, run_code=Outcome.OK, synced=0, jobs=0, final=True
            )
        night_options = dataclasses.replace(
            self.options, keep_user_id_prefix=True, drop_unknown_fields=False
        )
        # The night's input is normalised already: planning it must not strip a prefix again.
        settings = dataclasses.replace(
            plan_settings(night_options, self.ns),
            connection_id=self.connection_id,
            upsert=True,
        )
        tracker, stats = create_plan(str(run_dir / NIGHT_INPUT), run_dir, night_options, settings)
        self.log.plan(
            render_plan(stats, night_options, chunks_written=True),
            plan_summary(stats, night_options, chunks_written=True),
        )
        night = self.state.mark_uploading(night, tracker.manifest.run_id)
        return self._upload(night, tracker, final=True)

    def _diff(self, run_dir: Path, night: Night) -> DiffResult:
        with (
            _private_writer(run_dir / NIGHT_INPUT) as send,
            _private_writer(run_dir / NIGHT_REJECTS) as rejects,
        ):
            result = diff_export(
                ExportReader(self.ns.input),
                self.state,
                self.options,
                send=send,
                rejects=rejects,
                record_pending=True,
                progress=_DiffProgress(self.log),
            )
        result.counts.missing = _write_missing(self.state, result, run_dir / MISSING)
        recorded = {**result.counts.as_json(), "input": self.ns.input}
        self.state.finish_diff(night, result.next_slot, recorded)
        return result

    def _upload(self, night: Night, tracker: Tracker, *, final: bool) -> int:
        """Upload the night's run, then mark synced what Auth0 took; returns the night's exit code.

        `final` is False for an earlier night resumed before tonight's diff.
        """
        run_code = upload_and_report(
            night.run_dir,
            tracker,
            self.credentials,
            self.client_settings,
            _RunLog.wrapping(self.log),
        )
        if run_code == Outcome.INTERRUPTED:
            return run_code
        manifest = load_manifest(night.run_dir)
        outcome = night_outcome(night.run_dir, manifest)
        recorded = self.state.night_counts(night)
        jobs = sum(1 for c in manifest.chunks for a in c.attempts if a.job_id)
        promotion = self.state.promote(
            night,
            outcome.chunks,
            {
                **recorded,
                "jobs": jobs,
                "failed_users": outcome.failed_users,
                "unfinished_chunks": outcome.unfinished_chunks,
                "untraceable_chunks": outcome.untraceable_chunks,
            },
        )
        self.state.checkpoint()
        if promotion.skipped_chunks:
            self.log.info(
                f"chunk(s) {list(promotion.skipped_chunks)} did not match tonight's pending users: "
                "their users stay unsynced and are sent again next night"
            )
        counts = _counts_from(recorded)
        source = str(recorded.get("input", ""))
        return self._finish(
            night,
            counts,
            source,
            run_code=run_code,
            synced=promotion.synced,
            jobs=jobs,
            final=final,
        )

    def _finish(
        self,
        night: Night,
        counts: DiffCounts,
        source: str,
        *,
        run_code: int,
        synced: int,
        jobs: int,
        final: bool,
    ) -> int:
        """Write the night's sync.json and report it: the `summary` if it is tonight's (`final`)."""
        not_synced = counts.to_send - synced
        if run_code == Outcome.UNFINISHED:
            code = Outcome.UNFINISHED
        elif not_synced or counts.rejected:
            code = Outcome.USERS_FAILED
        else:
            code = Outcome.OK
        report: dict[str, object] = {
            "command": "sync",
            "run_dir": str(night.run_dir),
            "run_id": night.run_id,
            "input": source,
            "connection_id": self.connection_id,
            "started_at": night.started_at,
            "finished_at": utc_now_iso(),
            **counts.as_json(),
            "sent": counts.to_send,
            "jobs": jobs,
            "synced": synced,
            "not_synced": not_synced,
            "missing_file": str(night.run_dir / MISSING),
            "state": str(self.state.path),
            "state_bytes": self.state.size_bytes(),
            "exit_code": code,
        }
        write_private_atomic(
            night.run_dir / NIGHT_REPORT, orjson.dumps(report, option=orjson.OPT_INDENT_2)
        )
        if final:
            self.log.summary(_render_summary(report, counts), report)
        elif self.log.json_lines:
            self.log("night_summary", report)
        else:
            self.log.info(_render_summary(report, counts))
        return code


class _DiffProgress:
    """Reports a long diff's progress every `log.progress_every` seconds (a `diff_progress` event)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._last = time.monotonic()

    def __call__(self, counts: DiffCounts) -> None:
        now = time.monotonic()
        if now - self._last < self._log.progress_every:
            return
        self._last = now
        if self._log.json_lines:
            self._log("diff_progress", counts.as_json())
        else:
            self._log.info(
                f"diff: {counts.users_read:,} users read: {counts.new:,} new, "
                f"{counts.changed:,} changed, {counts.unchanged:,} unchanged, "
                f"{counts.rejected:,} rejected"
            )


class _RunLog(EventLog):
    """The night's upload logs as `run` does, except that its report is a `run_summary` event:
    the one `summary` event of a sync is the sync's own, last."""

    @classmethod
    def wrapping(cls, log: EventLog) -> _RunLog:
        return cls(
            json_lines=log.json_lines,
            quiet=log.quiet,
            out=log._out,
            err=log._err,
            live=log.live,
            progress_every=log.progress_every,
        )

    def summary(self, text: str, data: Mapping[str, object]) -> None:
        if self.json_lines:
            self.close_live()
            self("run_summary", data)
        else:
            super().summary(text, data)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the diff like Ctrl-C (cleanly, exit 130) instead of killing the process.

    The upload handles SIGTERM itself (it saves its state and lets running jobs run).
    """

    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise Interrupted("0")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler installed outside Python, left alone
            signal.signal(signal.SIGTERM, previous)
    if received:
        # The handler's exception was swallowed (it landed inside a __del__, which Python
        # only reports): stop now, at the end of the block, all the same.
        raise Interrupted("0")


def _check_connection(state: SyncState, connection_id: str, *, record: bool) -> None:
    """A state belongs to one connection: its `unchanged` means "already in that connection"."""
    bound = state.get_meta("connection_id")
    if bound is None:
        if record:
            state.set_meta("connection_id", connection_id)
        return
    if bound != connection_id:
        raise ConfigError(
            f"--state {state.path} keeps connection {bound} in step, not {connection_id}; "
            "use one state file per connection"
        )


def _private_writer(path: Path) -> BinaryIO:
    """A new file, 0600 from the start (it holds users or their keys), buffered for streaming."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "wb", buffering=1 << 20)


def _missing_keys(state: SyncState, result: DiffResult) -> Iterator[str]:
    """Keys of the state's users absent from tonight's export."""
    if result.seen.count(1) == state.user_count():
        return iter(())  # every user of the state was seen: no scan needed
    return state.missing(result.seen)


def _write_missing(state: SyncState, result: DiffResult, path: Path) -> int:
    """Write missing.ndjson ({"key": ...} per line); returns how many keys it holds."""
    count = 0
    with _private_writer(path) as out:
        for key in _missing_keys(state, result):
            out.write(orjson.dumps({"key": key}) + b"\n")
            count += 1
    return count


def _counts_from(recorded: dict[str, object]) -> DiffCounts:
    """The diff's counts as stored with the night (to report a night resumed by a later sync)."""

    def number(name: str) -> int:
        value = recorded.get(name, 0)
        return value if isinstance(value, int) else 0

    def mapping(name: str) -> dict[str, int]:
        value = recorded.get(name)
        return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}

    counts = DiffCounts(
        users_read=number("users_read"),
        new=number("new"),
        changed=number("changed"),
        unchanged=number("unchanged"),
        rejected=number("rejected_locally"),
        missing=number("missing"),
    )
    counts.rejected_by_reason.update(mapping("rejected_by_reason"))
    counts.dropped_fields.update(mapping("dropped_fields"))
    return counts


def _render_counts(counts: DiffCounts, *, title: str) -> str:
    lines = [
        title,
        f"  users read        {counts.users_read:>10,}",
        f"  new               {counts.new:>10,}",
        f"  changed           {counts.changed:>10,}",
        f"  unchanged         {counts.unchanged:>10,}",
        f"  missing           {counts.missing:>10,}   (not in the export; never deleted)",
        f"  rejected locally  {counts.rejected:>10,}" + _breakdown(counts.rejected_by_reason),
    ]
    return "\n".join(lines)


def _render_summary(report: dict[str, object], counts: DiffCounts) -> str:
    lines = [
        _render_counts(counts, title=f"sync {Path(str(report['run_dir'])).name}"),
        f"  sent              {report['sent']:>10,}   in {report['jobs']:,} job(s)",
        f"  synced            {report['synced']:>10,}",
        f"  not synced        {report['not_synced']:>10,}   (sent again next night)",
    ]
    if counts.missing:
        lines.append(f"  missing keys in {report['missing_file']}")
    return "\n".join(lines)


def _breakdown(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return "  (" + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) + ")"
