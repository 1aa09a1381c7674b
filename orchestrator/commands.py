"""The commands that talk to the API: run, resume, status, report.

Each turns parsed arguments into settings, opens (or plans) the run directory, drives the uploader
inside one event loop, and ends with the report. Exit codes are decided here and in cli.py only.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import orjson

from orchestrator.cli import (
    PROG,
    Interrupted,
    plan_options,
    plan_settings,
    plan_summary,
    render_plan,
)
from orchestrator.client import ApiClient, ClientSettings
from orchestrator.constants import DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_RPS
from orchestrator.credentials import Credentials
from orchestrator.errors import (
    ApiError,
    AuthError,
    ConfigError,
    OrchestratorError,
    RequestRejectedError,
    RunDirError,
)
from orchestrator.manifest import Manifest, verify_chunk_files
from orchestrator.multipart import CONNECTION_ID_PATTERN
from orchestrator.output import EventLog
from orchestrator.preflight import PreflightSettings, ensure_ready
from orchestrator.report import (
    Outcome,
    build_report,
    exit_code,
    job_totals,
    render_report,
    write_report,
)
from orchestrator.rundir import create_plan, errors_file, has_plan, same_input
from orchestrator.tracker import Tracker, load_manifest
from orchestrator.uploader import Uploader, UploadSettings
from orchestrator.verify import verify_after_run

T = TypeVar("T")
PROGRESS_TICK = 1.0  # seconds between two looks at the run's state


def _credentials(ns: argparse.Namespace) -> Credentials:
    return Credentials.from_environment(os.environ, domain=ns.domain, base_url=ns.base_url)


def _client_settings(ns: argparse.Namespace) -> ClientSettings:
    max_rps = ns.max_rps if ns.max_rps is not None else DEFAULT_MAX_RPS
    if max_rps <= 0:
        raise ConfigError(f"--max-rps {max_rps:g} must be above 0")
    return ClientSettings(max_rps=max_rps)


def _check_connection_id(connection_id: str | None) -> str:
    if not connection_id:
        raise ConfigError("no connection: pass --connection-id con_... or set AUTH0_CONNECTION_ID")
    if not CONNECTION_ID_PATTERN.match(connection_id):
        raise ConfigError(
            f"--connection-id {connection_id!r} is not a connection id (con_ and 16 letters or "
            "digits); copy it from the connection's settings page"
        )
    return connection_id


def _run_async(function: Callable[[], Awaitable[T]]) -> T:
    """Run `function` in a fresh event loop; task-group error groups come out as their first error."""
    try:
        return anyio.run(function, backend="asyncio")
    except BaseExceptionGroup as group:
        raise _first_error(group) from group


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that matters in a group: an interruption first, then our own errors, in order."""
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    for kinds in ((Interrupted, KeyboardInterrupt), (OrchestratorError,)):
        for leaf in leaves:
            if isinstance(leaf, kinds):
                return leaf
    return leaves[0]


async def _preflight(
    credentials: Credentials,
    settings: ClientSettings,
    connection_id: str,
    log: EventLog,
    *,
    need_read_users: bool = False,
) -> None:
    """The full pre-flight before any planning: token, scopes, connection, service and clock.

    Raises:
        PreflightError: (a ConfigError, exit 2) one line per problem, in the first second.
    """
    checks = PreflightSettings(need_read_users=need_read_users)
    await ensure_ready(credentials, settings, connection_id, checks, log=log)


def cmd_run(ns: argparse.Namespace, log: EventLog) -> int:
    connection_id = _check_connection_id(ns.connection_id)
    credentials = _credentials(ns)
    client_settings = _client_settings(ns)
    verify_sample: int = getattr(ns, "verify", 0) or 0
    _run_async(
        lambda: _preflight(
            credentials, client_settings, connection_id, log, need_read_users=verify_sample > 0
        )
    )
    run_dir: Path = ns.run_dir
    if has_plan(run_dir):
        tracker = Tracker.open(run_dir)
        try:
            _check_same_plan(tracker.manifest, ns)
        except RunDirError:
            tracker.close()
            raise
        log.info(f"{run_dir} already holds this plan: resuming it")
    else:
        options = plan_options(ns)
        tracker, stats = create_plan(ns.input, run_dir, options, plan_settings(options, ns))
        log.plan(
            render_plan(stats, options, chunks_written=True),
            plan_summary(stats, options, chunks_written=True),
        )
    settings = tracker.manifest.settings
    if settings.connection_id not in (None, connection_id) and _anything_sent(tracker.manifest):
        tracker.close()
        raise RunDirError(
            f"{run_dir} was uploading to {settings.connection_id}, not {connection_id}; "
            "use a new --run-dir for another connection"
        )
    tracker.update_settings(
        connection_id=connection_id,
        upsert=ns.upsert,
        send_completion_email=ns.send_completion_email,
        job_slots=ns.job_slots if ns.job_slots is not None else settings.job_slots,
        max_attempts=ns.max_attempts or settings.max_attempts,
    )
    return upload_and_report(
        run_dir, tracker, credentials, client_settings, log, verify_sample=verify_sample
    )


def _check_same_plan(manifest: Manifest, ns: argparse.Namespace) -> None:
    plan = manifest.settings
    different = [
        name
        for name, mine in (
            ("--max-request-bytes", ns.max_request_bytes),
            ("--keep-user-id-prefix", ns.keep_user_id_prefix),
            ("--drop-unknown-fields", ns.drop_unknown_fields),
        )
        if getattr(plan, name[2:].replace("-", "_")) != mine
    ]
    if ns.external_id_prefix and ns.external_id_prefix != plan.external_id_prefix:
        different.append("--external-id-prefix")
    if different or not same_input(manifest, ns.input):
        what = ", ".join(different) if different else "the input file"
        raise RunDirError(
            f"{ns.run_dir} holds a plan made from other input or settings ({what} differ); "
            "use `orchestrator resume` to continue that run, or a new --run-dir"
        )


def _anything_sent(manifest: Manifest) -> bool:
    return any(chunk.attempts for chunk in manifest.chunks)


def cmd_resume(ns: argparse.Namespace, log: EventLog) -> int:
    run_dir: Path = ns.run_dir
    if not has_plan(run_dir):
        raise RunDirError(f"{run_dir} holds no run (no manifest.json); start one with `run`")
    credentials = _credentials(ns)
    client_settings = _client_settings(ns)
    tracker = Tracker.open(run_dir)
    if tracker.manifest.settings.connection_id is None:
        tracker.close()
        raise RunDirError(
            f"{run_dir} was planned with `chunk` and never run: start it with "
            "`orchestrator run INPUT --run-dir DIR --connection-id ...`"
        )
    if ns.job_slots is not None or ns.max_attempts:
        tracker.update_settings(
            job_slots=ns.job_slots,
            max_attempts=ns.max_attempts or tracker.manifest.settings.max_attempts,
        )
    return upload_and_report(run_dir, tracker, credentials, client_settings, log)


def upload_and_report(
    run_dir: Path,
    tracker: Tracker,
    credentials: Credentials,
    client_settings: ClientSettings,
    log: EventLog,
    *,
    verify_sample: int = 0,
) -> int:
    """Upload every unfinished chunk of the run, then report (and verify `verify_sample` users
    when > 0); returns the exit code."""
    try:
        verify_chunk_files(run_dir, tracker.manifest)
        retried = tracker.reset_failed()
        if retried:
            log.info(f"{retried} chunk(s) failed before: trying them again")
        settings = tracker.manifest.settings
        assert settings.connection_id is not None
        upload = UploadSettings(
            connection_id=settings.connection_id,
            upsert=settings.upsert,
            send_completion_email=settings.send_completion_email,
            job_slots=settings.job_slots,
            max_attempts=settings.max_attempts or DEFAULT_MAX_ATTEMPTS,
        )
        sent_before = _anything_sent(tracker.manifest)
        try:
            _run_async(lambda: _upload(run_dir, tracker, credentials, client_settings, upload, log))
        except (AuthError, RequestRejectedError) as exc:
            if not sent_before and not any(
                a.job_id for c in tracker.manifest.chunks for a in c.attempts
            ):
                raise ConfigError(
                    str(exc)
                ) from exc  # nothing was imported: the run could not start
            raise
        except Interrupted as exc:
            tracker.close()
            log.info(
                f"{PROG}: interrupted; state saved in {run_dir}. {exc} job(s) still run at Auth0; "
                f"`orchestrator resume --run-dir {run_dir}` re-attaches to them"
            )
            return Outcome.INTERRUPTED
    finally:
        tracker.close()
    report = build_report(run_dir, tracker.manifest)
    write_report(run_dir, report)
    log.summary(render_report(report), report)
    if verify_sample > 0:
        return verify_after_run(
            run_dir,
            tracker.manifest,
            credentials,
            client_settings,
            verify_sample,
            log,
            exit_code(report),
        )
    return exit_code(report)


async def _upload(
    run_dir: Path,
    tracker: Tracker,
    credentials: Credentials,
    client_settings: ClientSettings,
    upload: UploadSettings,
    log: EventLog,
) -> None:
    interrupted = False
    async with ApiClient(credentials, client_settings, events=log) as client:
        uploader = Uploader(run_dir, tracker, client, upload, events=log)
        async with anyio.create_task_group() as tasks:

            async def watch_signals() -> None:
                nonlocal interrupted
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        interrupted = True
                        tasks.cancel_scope.cancel()
                        return

            async def report_progress() -> None:
                started = time.monotonic()
                while True:
                    log.progress(_progress(tracker.manifest, uploader, started))
                    await anyio.sleep(PROGRESS_TICK)

            tasks.start_soon(watch_signals)
            tasks.start_soon(report_progress)
            await uploader.run()
            tasks.cancel_scope.cancel()
        if interrupted:
            raise Interrupted(str(len(uploader.active_jobs)))


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


def cmd_status(ns: argparse.Namespace, log: EventLog) -> int:
    run_dir: Path = ns.run_dir
    if not has_plan(run_dir):
        raise RunDirError(f"{run_dir} holds no run (no manifest.json)")
    manifest = load_manifest(run_dir)
    live: dict[str, str] = {}
    if ns.refresh:
        live = _run_async(lambda: _live_states(manifest, _credentials(ns), _client_settings(ns)))
    summary = status_summary(manifest, live)
    if ns.json:
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_status(summary) + "\n")
    return Outcome.OK


async def _live_states(
    manifest: Manifest, credentials: Credentials, settings: ClientSettings
) -> dict[str, str]:
    states: dict[str, str] = {}
    async with ApiClient(credentials, settings) as client:
        for chunk in manifest.chunks:
            if chunk.job_id and chunk.status in ("pending", "processing"):
                try:
                    job = await client.get_job(chunk.job_id)
                    states[chunk.job_id] = job.status
                except ApiError as exc:
                    states[chunk.job_id] = f"unknown ({exc})"
    return states


def status_summary(manifest: Manifest, live: dict[str, str]) -> dict[str, object]:
    by_status: dict[str, int] = {}
    for chunk in manifest.chunks:
        by_status[chunk.status] = by_status.get(chunk.status, 0) + 1
    return {
        "run_id": manifest.run_id,
        "input": manifest.input.path,
        "connection_id": manifest.settings.connection_id,
        "chunks": len(manifest.chunks),
        "chunks_by_status": by_status,
        "users_planned": manifest.totals.users_accepted,
        "rejected_locally": manifest.totals.users_rejected,
        **job_totals(manifest.chunks),
        "ambiguous_resubmissions": sum(c.ambiguous for c in manifest.chunks),
        "jobs": [
            {
                "chunk": c.index,
                "external_id": c.external_id,
                "status": c.status,
                "job_id": c.job_id,
                **({"live_status": live[c.job_id]} if c.job_id in live else {}),
            }
            for c in manifest.chunks
            if c.job_id or c.status not in ("planned",)
        ],
    }


def render_status(summary: dict[str, object]) -> str:
    by_status = summary["chunks_by_status"]
    assert isinstance(by_status, dict)
    states = ", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
    lines = [
        f"run {summary['run_id']}  ({summary['input']} -> {summary['connection_id']})",
        f"chunks   {summary['chunks']:,}: {states}",
        (
            f"users    {summary['users_planned']:,} planned, "
            f"{summary['rejected_locally']:,} rejected locally; {summary['inserted']:,} inserted, "
            f"{summary['updated']:,} updated, {summary['failed']:,} failed"
        ),
    ]
    jobs = summary["jobs"]
    assert isinstance(jobs, list)
    active = [j for j in jobs if j["status"] in ("submitting", "pending", "processing")]
    for job in active:
        live = f" (live: {job['live_status']})" if "live_status" in job else ""
        lines.append(f"  chunk {job['chunk']}: {job['status']} {job['job_id'] or ''}{live}")
    return "\n".join(lines)


def cmd_report(ns: argparse.Namespace, log: EventLog) -> int:
    run_dir: Path = ns.run_dir
    if not has_plan(run_dir):
        raise RunDirError(f"{run_dir} holds no run (no manifest.json)")
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
            credentials = _credentials(ns)
            settings = _client_settings(ns)

            async def fetch() -> None:
                async with ApiClient(credentials, settings, events=log) as client:
                    uploader = Uploader(
                        run_dir,
                        tracker,
                        client,
                        UploadSettings(connection_id=tracker.manifest.settings.connection_id or ""),
                        events=log,
                    )
                    for index in missing:
                        await uploader.save_errors(index)

            _run_async(fetch)
    finally:
        tracker.close()
    report = build_report(run_dir, tracker.manifest)
    write_report(run_dir, report)
    log.summary(render_report(report), report)
    return exit_code(report)
