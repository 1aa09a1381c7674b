"""Command-line interface: arguments in, exit code out; the one place errors become exit codes.

Commands: validate, chunk, run, resume, status, report, check, verify, sandbox (see README). Every
deliberate error is printed as one line; a traceback only with --debug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from orchestrator import __version__
from orchestrator.constants import (
    DEFAULT_JOB_SLOTS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RPS,
    MAX_REQUEST_BYTES,
)
from orchestrator.errors import (
    ConfigError,
    InputError,
    OrchestratorError,
    RunDirError,
)
from orchestrator.manifest import PlanSettings
from orchestrator.output import EventLog
from orchestrator.planner import PlanOptions, PlanStats, count_only_sink, plan_export
from orchestrator.reader import ExportReader
from orchestrator.report import Outcome

PROG = "orchestrator"


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; state is saved and the run can be resumed."""


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="text for people, json for one JSON object per event (default: text on a terminal, "
        "json otherwise)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary and errors")
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between two progress lines when not on a terminal (default 10)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _add_plan_options(parser: argparse.ArgumentParser, *, chunking: bool = True) -> None:
    parser.add_argument(
        "input", help="the export: JSON array or NDJSON, optionally gzipped; - = stdin"
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=MAX_REQUEST_BYTES,
        help=f"largest whole request (multipart body) to send (default {MAX_REQUEST_BYTES})",
    )
    parser.add_argument(
        "--keep-user-id-prefix",
        action="store_true",
        help="keep a leading 'auth0|' in user_id (by default it is stripped: the import adds it)",
    )
    parser.add_argument(
        "--drop-unknown-fields",
        action="store_true",
        help="drop fields the import schema does not accept (e.g. an Auth0 export's created_at) "
        "instead of rejecting the user",
    )
    if chunking:
        parser.add_argument(
            "--external-id-prefix",
            default=None,
            help="prefix of each job's external_id, PREFIX-NNNNNN (default: orch-<random>)",
        )


def _job_slots(value: str) -> int:
    """`auto` (0) or a positive number of job slots."""
    if value == "auto":
        return 0
    try:
        slots = int(value)
    except ValueError:
        slots = -1
    if slots < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of slots or 'auto'")
    return slots


def _count(value: str) -> int:
    """A whole number >= 0 (--verify N, --sample N)."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 0")
    return number


def _add_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain", help="tenant domain (default: $AUTH0_DOMAIN)")
    parser.add_argument(
        "--base-url", help="API base URL, overrides https://DOMAIN (default: $AUTH0_BASE_URL)"
    )
    parser.add_argument(
        "--max-rps",
        type=float,
        default=None,
        help=f"request budget per second, every request counted (default {DEFAULT_MAX_RPS:g})",
    )
    parser.add_argument(
        "--job-slots",
        type=_job_slots,
        default=None,
        metavar="N|auto",
        help="import jobs to keep running at once (default auto: start at the public-cloud limit "
        f"of {DEFAULT_JOB_SLOTS} and use more only when the service shows it allows more)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=None,
        help=f"jobs per chunk before it is marked failed (default {DEFAULT_MAX_ATTEMPTS})",
    )


def build_parser(*, sandbox_options: bool = True) -> argparse.ArgumentParser:
    """The whole command line; `sandbox_options=False` leaves out the sandbox's own options,
    whose import (the aiohttp server) costs every other command a noticeable start-up."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Move very large user exports into Auth0 through bulk-import jobs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check every user; no network")
    _add_plan_options(validate, chunking=False)
    validate.add_argument("--rejects", type=Path, help="write rejected users with reasons here")
    _add_output_options(validate)

    chunk = commands.add_parser("chunk", help="plan only: write chunk files and the manifest")
    _add_plan_options(chunk)
    chunk.add_argument("--run-dir", type=Path, required=True, help="directory of the run")
    _add_output_options(chunk)

    run = commands.add_parser("run", help="plan (or resume), upload, wait for every job, report")
    _add_plan_options(run)
    run.add_argument("--run-dir", type=Path, required=True, help="directory of the run")
    run.add_argument(
        "--connection-id",
        default=os.environ.get("AUTH0_CONNECTION_ID"),
        help="target database connection, con_... (default: $AUTH0_CONNECTION_ID)",
    )
    run.add_argument("--upsert", action="store_true", help="update users that already exist")
    run.add_argument(
        "--send-completion-email",
        action="store_true",
        help="let Auth0 email the tenant owners about every job (default off)",
    )
    run.add_argument(
        "--verify",
        type=_count,
        default=0,
        metavar="N",
        help="at the end, look N random imported users up and compare them (needs read:users)",
    )
    _add_api_options(run)
    _add_output_options(run)

    resume = commands.add_parser("resume", help="continue an interrupted run")
    resume.add_argument("--run-dir", type=Path, required=True, help="directory of the run")
    _add_api_options(resume)
    _add_output_options(resume)

    status = commands.add_parser("status", help="what the manifest says about a run")
    status.add_argument("--run-dir", type=Path, required=True, help="directory of the run")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--refresh", action="store_true", help="ask the API for live job states")
    _add_api_options(status)
    _add_output_options(status)

    report = commands.add_parser("report", help="(re)write the report, fetch missing errors")
    report.add_argument("--run-dir", type=Path, required=True, help="directory of the run")
    _add_api_options(report)
    _add_output_options(report)

    check = commands.add_parser("check", help="pre-flight only: credentials, scopes, connection")
    check.add_argument(
        "--connection-id",
        default=os.environ.get("AUTH0_CONNECTION_ID"),
        help="target database connection, con_... (default: $AUTH0_CONNECTION_ID)",
    )
    _add_api_options(check)
    _add_output_options(check)

    verify = commands.add_parser("verify", help="look a sample of imported users up in Auth0")
    verify.add_argument("--run-dir", type=Path, required=True, help="directory of the run")
    verify.add_argument(
        "--sample", type=_count, default=100, metavar="N", help="users to look up (default 100)"
    )
    verify.add_argument("--seed", type=int, default=None, help="seed of the draw (reproducible)")
    _add_api_options(verify)
    _add_output_options(verify)

    from orchestrator.sync.parser import add_sync_parser

    add_sync_parser(commands)

    sandbox = commands.add_parser("sandbox", help="a local Auth0-compatible server for rehearsals")
    if sandbox_options:
        from orchestrator.sandbox import add_arguments as add_sandbox_arguments

        add_sandbox_arguments(sandbox)
    sandbox.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return parser


def plan_options(ns: argparse.Namespace, *, prefix: str | None = None) -> PlanOptions:
    from orchestrator.rundir import default_external_id_prefix

    return PlanOptions(
        max_request_bytes=ns.max_request_bytes,
        keep_user_id_prefix=ns.keep_user_id_prefix,
        drop_unknown_fields=ns.drop_unknown_fields,
        external_id_prefix=prefix
        or getattr(ns, "external_id_prefix", None)
        or default_external_id_prefix(),
    )


def render_plan(stats: PlanStats, options: PlanOptions, *, chunks_written: bool) -> str:
    lines = [
        f"users read      {stats.users_read:>10,}",
        f"accepted        {stats.users_accepted:>10,}",
        f"rejected        {stats.users_rejected:>10,}",
    ]
    for reason, count in sorted(stats.rejected_by_reason.items()):
        lines.append(f"  {reason:<28}{count:>8,}")
    if stats.dropped_fields:
        dropped = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.dropped_fields.items()))
        lines.append(f"dropped fields  {dropped}")
    verb = "chunks" if chunks_written else "chunks (not written)"
    lines.append(f"{verb:<16}{len(stats.chunks):>10,}")
    if stats.chunks:
        fill = stats.mean_fill(options.max_request_bytes)
        full = stats.mean_fill(options.max_request_bytes, include_last=False)
        lines.append(f"mean fill       {fill:>10.1%}   ({full:.1%} without the last chunk)")
        low, high = throughput_range(stats.users_accepted)
        span = f"about {low}" if low == high else f"{low} to {high}"
        lines.append(
            f"import requests {len(stats.chunks):>10,}   (one job per chunk; at Auth0's published "
            f"rates this takes {span}: the live ETA follows the first jobs)"
        )
    if chunks_written:
        lines.append(
            f"disk wait       {stats.disk_wait_s:>9.1f}s   (planning waited for chunk files to "
            "reach the disk)"
        )
    return "\n".join(lines)


#: Users per hour of a bulk import with 2 jobs in parallel: Auth0 reports ~400k/h for enterprise
#: tenants and ~10x less on the free tier (reference §13).
ENTERPRISE_USERS_PER_HOUR = 400_000
FREE_TIER_USERS_PER_HOUR = 40_000


def throughput_range(users: int) -> tuple[str, str]:
    """How long `users` take between the fastest and the slowest published import tier."""
    return (
        _hours(users / ENTERPRISE_USERS_PER_HOUR),
        _hours(users / FREE_TIER_USERS_PER_HOUR),
    )


def _hours(hours: float) -> str:
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def cmd_validate(ns: argparse.Namespace, log: EventLog) -> int:
    options = plan_options(ns, prefix="validate")
    reader = ExportReader(ns.input)
    if ns.rejects:
        fd = os.open(ns.rejects, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb", buffering=1 << 20) as rejects:
            stats = plan_export(
                reader, options, store_chunk=count_only_sink(options), rejects=rejects
            )
    else:
        stats = plan_export(reader, options, store_chunk=count_only_sink(options))
    log.summary(
        render_plan(stats, options, chunks_written=False),
        plan_summary(stats, options, chunks_written=False),
    )
    return Outcome.USERS_FAILED if stats.users_rejected else Outcome.OK


def plan_summary(
    stats: PlanStats, options: PlanOptions, *, chunks_written: bool
) -> dict[str, object]:
    disk = {"disk_wait_s": round(stats.disk_wait_s, 2)} if chunks_written else {}
    return {
        "users_read": stats.users_read,
        "accepted": stats.users_accepted,
        "rejected": stats.users_rejected,
        "rejected_by_reason": dict(stats.rejected_by_reason),
        "dropped_fields": dict(stats.dropped_fields),
        "chunks": len(stats.chunks),
        "import_requests": len(stats.chunks),
        "mean_fill": round(stats.mean_fill(options.max_request_bytes), 4),
        "estimated_hours": {
            "enterprise_tier": round(stats.users_accepted / ENTERPRISE_USERS_PER_HOUR, 3),
            "free_tier": round(stats.users_accepted / FREE_TIER_USERS_PER_HOUR, 3),
        },
        **disk,
    }


def cmd_chunk(ns: argparse.Namespace, log: EventLog) -> int:
    from orchestrator.rundir import create_plan

    options = plan_options(ns)
    tracker, stats = create_plan(ns.input, ns.run_dir, options, plan_settings(options, ns))
    tracker.close()
    log.summary(
        render_plan(stats, options, chunks_written=True),
        plan_summary(stats, options, chunks_written=True),
    )
    return Outcome.USERS_FAILED if stats.users_rejected else Outcome.OK


def plan_settings(options: PlanOptions, ns: argparse.Namespace) -> PlanSettings:
    return PlanSettings(
        connection_id=getattr(ns, "connection_id", None),
        upsert=getattr(ns, "upsert", False),
        send_completion_email=getattr(ns, "send_completion_email", False),
        max_request_bytes=options.max_request_bytes,
        job_slots=getattr(ns, "job_slots", None) or 0,
        max_attempts=getattr(ns, "max_attempts", None) or DEFAULT_MAX_ATTEMPTS,
        external_id_prefix=options.external_id_prefix,
        keep_user_id_prefix=options.keep_user_id_prefix,
        drop_unknown_fields=options.drop_unknown_fields,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(sandbox_options="sandbox" in args)
    ns = parser.parse_args(args)
    debug = getattr(ns, "debug", False)
    if ns.command == "sandbox":
        from orchestrator.sandbox import main_from_args

        return _guarded(lambda: main_from_args(ns), debug=debug)
    log = EventLog.for_terminal(
        log_format=getattr(ns, "log_format", None),
        quiet=getattr(ns, "quiet", False),
        progress_every=getattr(ns, "progress_interval", 10.0),
    )
    handlers = {
        "validate": cmd_validate,
        "chunk": cmd_chunk,
    }
    if ns.command in ("run", "resume", "status", "report"):
        from orchestrator import commands

        handlers.update(
            run=commands.cmd_run,
            resume=commands.cmd_resume,
            status=commands.cmd_status,
            report=commands.cmd_report,
        )
    if ns.command == "check":
        from orchestrator.preflight import cmd_check

        handlers["check"] = cmd_check
    if ns.command == "verify":
        from orchestrator.verify import cmd_verify

        handlers["verify"] = cmd_verify
    if ns.command == "sync":
        from orchestrator.sync.command import cmd_sync

        handlers["sync"] = cmd_sync
    return _guarded(lambda: handlers[ns.command](ns, log), debug=debug)


def _guarded(action: Callable[[], int], *, debug: bool) -> int:
    """Map the project's errors to exit codes, one clear line each.

    Errors that prevent a start arrive as ConfigError/InputError/RunDirError (the commands turn a
    credential or connection refusal before anything was imported into a ConfigError); any other
    error of ours means a run stopped unfinished.
    """
    try:
        return action()
    except (ConfigError, InputError, RunDirError) as exc:
        return _fail(exc, Outcome.CANNOT_START, debug)
    except OrchestratorError as exc:
        return _fail(exc, Outcome.UNFINISHED, debug)
    except (KeyboardInterrupt, Interrupted):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return Outcome.INTERRUPTED
    except BrokenPipeError:
        return Outcome.UNFINISHED


def _fail(exc: BaseException, code: int, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exception(exc)
    print(f"{PROG}: error: {exc}", file=sys.stderr)
    return code


def run() -> NoReturn:
    """Console-script entry point.

    SIGPIPE stays ignored, as Python sets it: with its default action, a write to a connection the
    service has just closed would kill the process instead of raising an error the client retries.
    A closed stdout (`| head`) ends quietly all the same: unfinished, and with no traceback.
    """
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush says nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = code or Outcome.UNFINISHED
    sys.exit(code)
