"""`run`, `resume`, `report` and `status`: a planned run sent to Auth0, watched, and reported.

`upload_and_report` is the heart shared with the nightly sync: every unfinished chunk is sent and
polled to its end inside one event loop, Ctrl-C/SIGTERM stop it with the state saved, and the report
is rebuilt from the run directory.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from orchestrator.app.loop import SignalWatch, run_async
from orchestrator.app.target import Target
from orchestrator.auth0.client import ApiClient
from orchestrator.errors import (
    ApiError,
    AuthError,
    ConfigError,
    Interrupted,
    RequestRejectedError,
    RunDirError,
    RunStopped,
)
from orchestrator.events import EventSink, info, warning
from orchestrator.outcomes import Outcome
from orchestrator.plan.passwords import usable_hashes
from orchestrator.results.preflight import ensure_ready
from orchestrator.results.report import build_report, job_totals, report_outcome, write_report
from orchestrator.results.status import status_summary
from orchestrator.results.verify import VerifyResult
from orchestrator.rundir.chunkfiles import verify_chunk_files
from orchestrator.rundir.create import create_plan, same_input
from orchestrator.rundir.layout import errors_file, has_plan
from orchestrator.rundir.manifest import Manifest
from orchestrator.rundir.tracker import Tracker, load_manifest
from orchestrator.settings import (
    PlanSettings,
    PreflightSettings,
    UploadSettings,
)
from orchestrator.upload.uploader import Uploader

#: Seconds between two looks at the run's state for the progress display.
PROGRESS_TICK: Final = 1.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run (or its resumption, or its report) ended.

    Attributes:
        outcome: what the run achieved.
        run_dir: its directory.
        report: the report as written to report.json (None when interrupted before one was made).
        active_jobs: jobs of this run still running at Auth0 when it stopped (`resume` re-attaches).
        verification: the verification that followed the run (`run --verify N`), if any.
        verify_problem: why that verification could not be done, if it could not.
    """

    outcome: Outcome
    run_dir: Path
    report: dict[str, object] | None = None
    active_jobs: int = 0
    verification: VerifyResult | None = None
    verify_problem: str | None = None


def anything_sent(manifest: Manifest) -> bool:
    """Whether any chunk of the run was ever submitted."""
    return any(chunk.attempts for chunk in manifest.chunks)


def preflight(
    target: Target,
    connection_id: str,
    events: EventSink,
    settings: PreflightSettings | None = None,
) -> None:
    """The full pre-flight before any planning: token, scopes, connection, service and clock.

    Raises:
        PreflightError: (a ConfigError) one line per problem, in the first second.
    """
    run_async(
        lambda: ensure_ready(
            target.credentials, target.client, connection_id, settings, events=events
        )
    )


def run(
    source: str,
    run_dir: Path,
    plan: PlanSettings,
    upload: UploadSettings,
    target: Target,
    events: EventSink,
    *,
    need_read_users: bool = False,
) -> RunResult:
    """Plan `source` into `run_dir` (or resume the plan already there) and send it all.

    Raises:
        ConfigError: the pre-flight failed, or the service refused the run before any job existed.
        RunDirError: the run directory is unusable, or holds a plan of other input or settings.
        InputError: the export is malformed (nothing was sent).
    """
    preflight(target, upload.connection_id, events, PreflightSettings(need_read_users))
    if has_plan(run_dir):
        tracker = Tracker.open(run_dir)
        try:
            _check_same_plan(tracker.manifest, source, run_dir, plan)
            _check_same_sending(tracker.manifest, run_dir, upload)
        except RunDirError:
            tracker.close()
            raise
        info(events, f"{run_dir} already holds this plan: resuming it")
    else:
        tracker, stats = create_plan(source, run_dir, plan, upload)
        events("plan", stats.as_json(plan.max_request_bytes, chunks_written=True))
    tracker.update_settings(
        connection_id=upload.connection_id,
        upsert=upload.upsert,
        send_completion_email=upload.send_completion_email,
        job_slots=upload.job_slots,
        max_attempts=upload.max_attempts,
    )
    with_hashes = usable_hashes(tracker.manifest.totals.credentials)
    if upload.upsert and with_hashes:
        warning(
            events,
            f"--upsert with {with_hashes:,} password hashes: Auth0 sets a hash on a user's first "
            "import only; users who already exist keep their password, and an upsert carrying a "
            "hash fails for them (the report lists them); import new users without --upsert",
        )
    return upload_and_report(run_dir, tracker, target, events)


def _check_same_plan(manifest: Manifest, source: str, run_dir: Path, plan: PlanSettings) -> None:
    recorded = manifest.settings
    different = [
        flag
        for flag, mine, theirs in (
            ("--max-request-bytes", plan.max_request_bytes, recorded.max_request_bytes),
            ("--keep-user-id-prefix", plan.keep_user_id_prefix, recorded.keep_user_id_prefix),
            ("--drop-unknown-fields", plan.drop_unknown_fields, recorded.drop_unknown_fields),
            ("--from", plan.source.format, recorded.source_format),
        )
        if mine != theirs
    ]
    prefix = plan.external_id_prefix
    if prefix and prefix != recorded.external_id_prefix:
        different.append("--external-id-prefix")
    if different or not same_input(manifest, source):
        what = ", ".join(different) if different else "the input file"
        raise RunDirError(
            f"{run_dir} holds a plan made from other input or settings ({what} differ); "
            "use `orchestrator resume` to continue that run, or a new --run-dir"
        )


def _check_same_sending(manifest: Manifest, run_dir: Path, upload: UploadSettings) -> None:
    """Chunks already sent went to one connection with one set of flags: the rest must too."""
    recorded = manifest.settings
    if recorded.connection_id is None or not anything_sent(manifest):
        return
    if recorded.connection_id != upload.connection_id:
        raise RunDirError(
            f"{run_dir} was uploading to {recorded.connection_id}, not {upload.connection_id}; "
            "use a new --run-dir for another connection"
        )
    for flag, mine, theirs in (
        ("--upsert", upload.upsert, recorded.upsert),
        ("--send-completion-email", upload.send_completion_email, recorded.send_completion_email),
    ):
        if mine != theirs:
            said = "with" if theirs else "without"
            raise RunDirError(
                f"{run_dir} was started {said} {flag} and has sent chunks so; run it again "
                f"{said} {flag} (or `orchestrator resume --run-dir {run_dir}`) to finish it the "
                f"same way, or plan into a new --run-dir to send every user the other way"
            )


def resume(
    run_dir: Path,
    target: Target,
    events: EventSink,
    *,
    job_slots: int | None = None,
    max_attempts: int | None = None,
) -> RunResult:
    """Continue an interrupted run with the settings recorded in its manifest.

    Raises:
        RunDirError: no run there, or one planned by `chunk` and never run.
    """
    tracker = Tracker.open(run_dir)
    if tracker.manifest.settings.connection_id is None:
        tracker.close()
        raise RunDirError(
            f"{run_dir} was planned with `chunk` and never run: start it with "
            "`orchestrator run INPUT --run-dir DIR --connection-id ...`"
        )
    tracker.update_settings(job_slots=job_slots, max_attempts=max_attempts)
    return upload_and_report(run_dir, tracker, target, events)


def upload_and_report(
    run_dir: Path, tracker: Tracker, target: Target, events: EventSink
) -> RunResult:
    """Send every unfinished chunk of the run, then write its report; closes the tracker.

    Raises:
        RunDirError: a chunk file changed, or the run sends to another tenant (nothing sent now).
        ConfigError: the service refused the run before any job of it existed.
        RunStopped: the run stopped unfinished after something was sent (the disk filled up, a
            chunk file changed mid-run, ...): never "could not start", whatever the cause.
    """
    try:
        stopped = _send(run_dir, tracker, target, events)
    except BaseException:
        with contextlib.suppress(RunDirError):
            tracker.close()  # the first error says what happened
        raise
    try:
        tracker.close()
        if stopped is not None:
            return RunResult(Outcome.INTERRUPTED, run_dir, active_jobs=stopped.active_jobs)
        report = build_report(run_dir, tracker.manifest)
        write_report(run_dir, report)
    except (RunDirError, OSError) as exc:
        if not anything_sent(tracker.manifest):
            raise
        raise RunStopped(
            f"{_reason(exc)}; what was sent is recorded: fix that, then "
            f"`orchestrator resume --run-dir {run_dir}`"
        ) from exc
    return RunResult(report_outcome(report), run_dir, report)


def _send(run_dir: Path, tracker: Tracker, target: Target, events: EventSink) -> Interrupted | None:
    """The upload itself; returns the interruption that stopped it, if one did."""
    verify_chunk_files(run_dir, tracker.manifest)
    credentials = target.credentials
    check_tenant(tracker.manifest, target, run_dir)
    recorded = tracker.manifest.tenant
    if recorded is not None and recorded.base_url != credentials.base_url:
        info(
            events,
            f"{run_dir} was sent through {recorded.base_url}; now through "
            f"{credentials.base_url} (the same tenant)",
        )
    tracker.record_tenant(credentials.audience, credentials.base_url)
    retried = tracker.reset_failed()
    if retried:
        info(events, f"{retried} chunk(s) failed before: trying them again")
    upload = tracker.manifest.settings.upload_settings()
    sent_before = anything_sent(tracker.manifest)
    try:
        run_async(lambda: _upload(run_dir, tracker, target, upload, events))
    except (AuthError, RequestRejectedError) as exc:
        if not sent_before and not any(
            a.job_id for c in tracker.manifest.chunks for a in c.attempts
        ):
            # Nothing was imported: the run could not start.
            raise ConfigError(str(exc)) from exc
        raise
    except (ConfigError, RunDirError) as exc:
        if not anything_sent(tracker.manifest):
            raise
        # Something was sent: whatever went wrong, the run is stopped unfinished, not unstarted.
        raise RunStopped(str(exc)) from exc
    except Interrupted as stop:
        return stop
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot write{where}: {exc.strerror or exc}"
    return str(exc)


def check_tenant(manifest: Manifest, target: Target, run_dir: Path) -> None:
    """A run sends to one tenant: refuse credentials of another.

    Raises:
        RunDirError: the run directory records another tenant (one line: both, what to do).
    """
    recorded = manifest.tenant
    mine = target.credentials.audience
    if recorded is not None and recorded.audience != mine:
        raise RunDirError(
            f"{run_dir} was sent to the tenant {_tenant_name(recorded.audience)}, not "
            f"{_tenant_name(mine)}: use that tenant's credentials (AUTH0_DOMAIN and its "
            "client or token), or a new --run-dir for this tenant"
        )


def _tenant_name(audience: str) -> str:
    """The tenant's domain, from its Management API audience (https://DOMAIN/api/v2/)."""
    name = audience.removeprefix("https://").removeprefix("http://")
    return name.removesuffix("/").removesuffix("/api/v2")


async def _upload(
    run_dir: Path, tracker: Tracker, target: Target, upload: UploadSettings, events: EventSink
) -> None:
    signals = SignalWatch()
    async with ApiClient(target.credentials, target.client, events=events) as client:
        uploader = Uploader(run_dir, tracker, client, upload, events=events)
        async with anyio.create_task_group() as tasks:

            async def report_progress() -> None:
                started = time.monotonic()
                while True:
                    events("progress", _progress(tracker.manifest, uploader, started))
                    await anyio.sleep(PROGRESS_TICK)

            tasks.start_soon(signals.watch, tasks)
            tasks.start_soon(report_progress)
            await uploader.run()
            tasks.cancel_scope.cancel()
        if signals.stopped:
            # The jobs whose id is on disk and whose end was not seen: a POST answered just as
            # the signal came is recorded, though its worker never got to count it.
            running = [c for c in tracker.manifest.chunks if c.status in ("pending", "processing")]
            raise Interrupted(len(running))


def _progress(manifest: Manifest, uploader: Uploader, started: float) -> dict[str, object]:
    """The run's counts now; the rate and ETA come from the users this process has seen finish."""
    done = [c for c in manifest.chunks if c.status in ("completed", "failed")]
    users_done = sum(c.users for c in done)
    users_total = sum(c.users for c in manifest.chunks)
    finished_here = users_done - uploader.users_done_before
    elapsed = max(time.monotonic() - started, 1e-9)
    per_second = finished_here / elapsed if finished_here > 0 else 0.0
    eta = (users_total - users_done) / per_second if per_second else None
    return {
        "chunks": len(manifest.chunks),
        "chunks_done": len(done),
        "chunks_failed": sum(1 for c in done if c.status == "failed"),
        "active": len(uploader.active_jobs),
        "jobs_in_flight": [
            f"{job_id} ({uploader.job_states.get(job_id, 'submitted')})"
            for job_id in sorted(uploader.active_jobs.values())
        ],
        "users": users_total,
        "users_done": users_done,
        **job_totals(manifest.chunks),
        "users_per_hour": round(per_second * 3600),
        "eta_seconds": round(eta) if eta is not None else None,
        "rate": f"{per_second * 3600:,.0f} users/hour"
        + (f", ETA {eta / 60:.1f} min" if eta is not None else ""),
    }


def report(run_dir: Path, target: Callable[[], Target], events: EventSink) -> RunResult:
    """(Re)write the report, first fetching the per-user errors still missing.

    Args:
        target: gives the tenant's credentials; called only when errors must be fetched.
    """
    tracker = Tracker.open(run_dir)
    try:
        missing = [
            c.index
            for c in tracker.manifest.chunks
            if c.status == "completed"
            and (c.summary or {}).get("failed")
            and not (c.errors_saved and errors_file(run_dir, c.index).is_file())
        ]
        if missing:
            tenant = target()
            check_tenant(tracker.manifest, tenant, run_dir)
            upload = tracker.manifest.settings.upload_settings()

            async def fetch() -> None:
                async with ApiClient(tenant.credentials, tenant.client, events=events) as client:
                    uploader = Uploader(run_dir, tracker, client, upload, events=events)
                    for index in missing:
                        await uploader.save_errors(index)

            run_async(fetch)
    finally:
        tracker.close()
    built = build_report(run_dir, tracker.manifest)
    write_report(run_dir, built)
    return RunResult(report_outcome(built), run_dir, built)


@dataclass(frozen=True, slots=True)
class StatusResult:
    """What the manifest says (with live job states when asked)."""

    summary: dict[str, object]
    outcome: Outcome = Outcome.OK


def status(run_dir: Path, target: Target | None) -> StatusResult:
    """The run's state; with a `target`, the live state of its running jobs is asked too."""
    manifest = load_manifest(run_dir)
    live: dict[str, str] = {}
    if target is not None:
        check_tenant(manifest, target, run_dir)
        live = run_async(lambda: _live_states(manifest, target))
    return StatusResult(status_summary(manifest, live))


async def _live_states(manifest: Manifest, target: Target) -> dict[str, str]:
    states: dict[str, str] = {}
    async with ApiClient(target.credentials, target.client) as client:
        for chunk in manifest.chunks:
            if chunk.job_id and chunk.status in ("pending", "processing"):
                try:
                    job = await client.get_job(chunk.job_id)
                    states[chunk.job_id] = job.status
                except ApiError as exc:
                    states[chunk.job_id] = f"unknown ({exc})"
    return states
