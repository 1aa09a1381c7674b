"""`sync`: one night of the incremental import, from the lock to the summary.

Takes the lock; finishes what an earlier invocation left (resumes its upload, or discards a diff that
never finished); classifies tonight's export against the state; imports new and changed users with
upsert through the normal plan and upload machinery in a run directory of its own; then marks synced
the users Auth0 took.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import BinaryIO, Final

import orjson

from orchestrator.app.plans import refuse_overwriting_input
from orchestrator.app.runs import anything_sent, preflight, upload_and_report
from orchestrator.app.target import Target
from orchestrator.errors import ConfigError, Interrupted, RunDirError
from orchestrator.events import EventSink, info
from orchestrator.fsutil import (
    PRIVATE_FILE_MODE,
    utc_now_iso,
    write_private_atomic,
)
from orchestrator.outcomes import Outcome
from orchestrator.rundir.claim import claim_new
from orchestrator.rundir.create import create_plan, new_run_id
from orchestrator.rundir.layout import has_plan
from orchestrator.rundir.tracker import Tracker, load_manifest
from orchestrator.settings import PlanSettings, SourceSettings, SyncSettings, UploadSettings
from orchestrator.sources.formats import Export
from orchestrator.sync.diff import DiffCounts, DiffResult, diff_export
from orchestrator.sync.lock import SyncBusyError, SyncLock, lock_path
from orchestrator.sync.promote import night_outcome
from orchestrator.sync.state import Night, SyncState

#: Files of a night's run directory, next to the usual run files (manifest, chunks, report, ...).
NIGHT_INPUT: Final = "sync-input.ndjson"
NIGHT_REJECTS: Final = "sync-rejects.ndjson"
MISSING: Final = "missing.ndjson"
NIGHT_REPORT: Final = "sync.json"


@dataclass(frozen=True, slots=True)
class SyncResult:
    """How a sync ended.

    Attributes:
        outcome: OK in step; USERS_FAILED some users rejected or not synced; UNFINISHED the upload
            stopped; BUSY another sync holds the lock; INTERRUPTED stopped by a signal.
        report: tonight's summary (sync.json), None when busy or interrupted before one existed.
        counts: tonight's classification.
        busy: the lock holder's message when BUSY.
        active_jobs: jobs still running at Auth0 when interrupted.
        dry_run: whether it only classified.
    """

    outcome: Outcome
    report: dict[str, object] | None = None
    counts: DiffCounts | None = None
    busy: str | None = None
    active_jobs: int = 0
    dry_run: bool = False


def sync(
    source: str,
    sync_settings: SyncSettings,
    plan: PlanSettings,
    upload: UploadSettings | None,
    target: Target | None,
    events: EventSink,
) -> SyncResult:
    """Run one sync (a dry run when `sync_settings.dry_run`).

    Args:
        upload: the connection and sending settings (upsert is always on); None only for a dry
            run that names no connection.
        target: the tenant; None only for a dry run.

    Raises:
        ConfigError: a state that is not one, belongs to another connection, or cannot be written.
    """
    state_path = sync_settings.state
    if not state_path.parent.is_dir():
        raise ConfigError(f"--state {state_path}: directory {state_path.parent} does not exist")
    refuse_overwriting_input(state_path, source, "--state")
    if sync_settings.dry_run:
        return _dry_run(source, state_path, plan, upload, events)
    if upload is None or target is None:
        raise ConfigError("no connection: a sync needs --connection-id")
    try:
        lock = SyncLock.acquire(lock_path(state_path))
    except SyncBusyError as exc:
        events("sync_busy", {"message": str(exc)})
        return SyncResult(Outcome.BUSY, busy=str(exc))
    with lock, SyncState.open(state_path) as state:
        upload = dataclasses.replace(upload, upsert=True)
        return _Night(source, sync_settings, plan, upload, target, events, state).run()


def _dry_run(
    source: str,
    state_path: Path,
    plan: PlanSettings,
    upload: UploadSettings | None,
    events: EventSink,
) -> SyncResult:
    """Classify tonight's export without sending or writing anything (not even the lock file)."""
    state = SyncState.open_read_only(state_path) if state_path.exists() else SyncState.in_memory()
    with state:
        if upload is not None:
            _check_connection(state, upload.connection_id, record=False)
        night = state.open_night()
        if night is not None:
            info(
                events,
                f"night {night.run_dir.name} is unfinished ({night.status}); a real sync resumes "
                "it before its own diff, so these counts may shrink",
            )
        result = diff_export(
            Export(source, plan.source, fingerprint=False),
            state,
            plan,
            send=None,
            rejects=None,
            record_pending=False,
        )
        result.counts.missing = sum(1 for _ in _missing_keys(state, result))
    return SyncResult(
        Outcome.USERS_FAILED if result.counts.rejected else Outcome.OK,
        counts=result.counts,
        dry_run=True,
    )


class _Night:
    """One real (not dry-run) sync, under the lock, with the state open."""

    def __init__(
        self,
        source: str,
        settings: SyncSettings,
        plan: PlanSettings,
        upload: UploadSettings,
        target: Target,
        events: EventSink,
        state: SyncState,
    ) -> None:
        self.source = source
        self.runs_dir = settings.nights_dir
        self.plan = plan
        self.upload = upload
        self.target = target
        self.events = events
        self.state = state

    def run(self) -> SyncResult:
        connection_id = self.upload.connection_id
        _check_connection(self.state, connection_id, record=False)
        preflight(self.target, connection_id, self.events)
        _check_connection(self.state, connection_id, record=True)
        self._check_normalisation()
        night = self.state.open_night()
        if night is not None:
            stopped = self._finish_earlier(night)
            if stopped is not None:
                return stopped
        return self._new_night()

    def _check_normalisation(self) -> None:
        """Warn when the switches that shape a user's JSON changed: every user will look changed."""
        current = (
            f"keep_user_id_prefix={int(self.plan.keep_user_id_prefix)},"
            f"drop_unknown_fields={int(self.plan.drop_unknown_fields)}"
        )
        before = self.state.get_meta("normalisation")
        if before != current:
            if before is not None and self.state.user_count():
                info(
                    self.events,
                    f"normalisation switches changed ({before} -> {current}): users whose JSON "
                    "they change will be sent again",
                )
            self.state.set_meta("normalisation", current)

    # -- a night left by an earlier invocation -------------------------------------------------

    def _finish_earlier(self, night: Night) -> SyncResult | None:
        """Resume or discard an unfinished night; a result only if this sync must stop."""
        run_dir = night.run_dir
        try:
            manifest = load_manifest(run_dir) if has_plan(run_dir) else None
        except RunDirError as exc:
            self._abandon(night, exc)
            return None
        if night.status == "diffing" and (manifest is None or not anything_sent(manifest)):
            # `uploading` is recorded before the first POST: nothing of this night reached Auth0.
            info(self.events, f"discarding {run_dir}: its diff never finished and nothing was sent")
            shutil.rmtree(run_dir, ignore_errors=True)
            self.state.close_night(night, {"abandoned": "diff unfinished"}, status="abandoned")
            return None
        if manifest is None:
            info(
                self.events,
                f"{run_dir} is gone: its users were not marked synced and are sent again tonight",
            )
            self.state.close_night(night, {"abandoned": "run dir gone"}, status="abandoned")
            return None
        info(self.events, f"resuming the unfinished night {run_dir} before tonight's diff")
        try:
            tracker = Tracker.open(run_dir)
            tracker.update_settings(
                job_slots=self.upload.job_slots, max_attempts=self.upload.max_attempts
            )
            if night.status != "uploading":
                night = self.state.mark_uploading(night, tracker.manifest.run_id)
            result = self._upload(night, tracker, final=False)
        except RunDirError as exc:
            self._abandon(night, exc)
            return None
        return result if result.outcome is Outcome.INTERRUPTED else None

    def _abandon(self, night: Night, exc: RunDirError) -> None:
        """Give up a night that cannot be resumed, so that it does not block every later night.

        Nothing of it is marked synced: tonight's diff sends its users again (with upsert,
        harmless for those that did arrive).
        """
        info(self.events, f"abandoning {night.run_dir}, which cannot be resumed: {exc}")
        self.state.close_night(night, {"abandoned": str(exc)}, status="abandoned")

    # -- tonight ------------------------------------------------------------------------------------

    def _new_night(self) -> SyncResult:
        run_dir = self.runs_dir / new_run_id()
        night = self.state.begin_night(run_dir)
        journal = None
        ours = not run_dir.exists()  # a new name: whatever appears there is this night's
        try:
            with _sigterm_interrupts():
                journal = claim_new(run_dir)
                result = self._diff(run_dir, night)
        except BaseException:
            # Nothing was sent: leave no half-written night (or its copy of users) behind, even
            # when the stop came while the directory was being claimed.
            if journal is not None:
                journal.close()
            if ours:
                shutil.rmtree(run_dir, ignore_errors=True)
            self.state.abort_diff()
            self.state.close_night(night, {"abandoned": "diff failed"}, status="abandoned")
            raise
        assert journal is not None  # claimed before the diff began
        counts = result.counts
        self.events("sync_classified", {"run_dir": str(run_dir), **counts.as_json()})
        if counts.to_send == 0:
            journal.close()
            (run_dir / NIGHT_INPUT).unlink(missing_ok=True)
            self.state.close_night(night, {**counts.as_json(), "input": self.source})
            return self._finish(
                night, counts, self.source, run=Outcome.OK, synced=0, jobs=0, final=True
            )
        # The night's input is normalised already: planning it must not strip a prefix again.
        night_plan = dataclasses.replace(
            self.plan, keep_user_id_prefix=True, drop_unknown_fields=False, source=SourceSettings()
        )
        tracker, stats = create_plan(
            str(run_dir / NIGHT_INPUT), run_dir, night_plan, self.upload, claimed=journal
        )
        self.events("plan", stats.as_json(night_plan.max_request_bytes, chunks_written=True))
        night = self.state.mark_uploading(night, tracker.manifest.run_id)
        return self._upload(night, tracker, final=True)

    def _diff(self, run_dir: Path, night: Night) -> DiffResult:
        with (
            _private_writer(run_dir / NIGHT_INPUT) as send,
            _private_writer(run_dir / NIGHT_REJECTS) as rejects,
        ):
            result = diff_export(
                Export(self.source, self.plan.source, fingerprint=False),
                self.state,
                self.plan,
                send=send,
                rejects=rejects,
                record_pending=True,
                progress=_DiffProgress(self.events),
            )
        result.counts.missing = _write_missing(self.state, result, run_dir / MISSING)
        recorded = {**result.counts.as_json(), "input": self.source}
        self.state.finish_diff(night, result.next_slot, recorded)
        return result

    def _upload(self, night: Night, tracker: Tracker, *, final: bool) -> SyncResult:
        """Upload the night's run, then mark synced what Auth0 took.

        `final` is False for an earlier night resumed before tonight's diff.
        """
        run = upload_and_report(night.run_dir, tracker, self.target, self.events)
        if run.outcome is Outcome.INTERRUPTED:
            return SyncResult(Outcome.INTERRUPTED, active_jobs=run.active_jobs)
        if run.report is not None:
            self.events("run_summary", run.report)
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
            info(
                self.events,
                f"chunk(s) {list(promotion.skipped_chunks)} did not match tonight's pending users: "
                "their users stay unsynced and are sent again next night",
            )
        return self._finish(
            night,
            _counts_from(recorded),
            str(recorded.get("input", "")),
            run=run.outcome,
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
        run: Outcome,
        synced: int,
        jobs: int,
        final: bool,
    ) -> SyncResult:
        """Write the night's sync.json; tonight's (`final`) is the result, an earlier one an event."""
        not_synced = counts.to_send - synced
        if run is Outcome.UNFINISHED:
            outcome = Outcome.UNFINISHED
        elif not_synced or counts.rejected:
            outcome = Outcome.USERS_FAILED
        else:
            outcome = Outcome.OK
        report: dict[str, object] = {
            "command": "sync",
            "run_dir": str(night.run_dir),
            "run_id": night.run_id,
            "input": source,
            "connection_id": self.upload.connection_id,
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
            "outcome": str(outcome),
        }
        write_private_atomic(
            night.run_dir / NIGHT_REPORT, orjson.dumps(report, option=orjson.OPT_INDENT_2)
        )
        if not final:
            self.events("night_summary", report)
        return SyncResult(outcome, report=report, counts=counts)


class _DiffProgress:
    """Reports a long diff's progress (a `diff_progress` event after each round of lookups)."""

    def __init__(self, events: EventSink) -> None:
        self._events = events

    def __call__(self, counts: DiffCounts) -> None:
        self._events("diff_progress", counts.as_json())


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the diff like Ctrl-C (cleanly, exit 130) instead of killing the process.

    The upload handles SIGTERM itself (it saves its state and lets running jobs run).
    """

    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise Interrupted(0)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler installed outside Python, left alone
            signal.signal(signal.SIGTERM, previous)
    if received:
        # The handler's exception was swallowed (it landed inside a __del__, which Python
        # only reports): stop now, at the end of the block, all the same.
        raise Interrupted(0)


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
