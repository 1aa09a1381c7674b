"""`orchestrator sandbox` / `python -m orchestrator.sandbox`: run a sandbox until interrupted.

`add_arguments` and `settings_from_args` let the main CLI embed the command; `serve` runs it and hands
the environment a client needs to the `ready` callback.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import sys
from collections.abc import Callable, Sequence

import anyio

from orchestrator.errors import ConfigError
from orchestrator.limits import MAX_REQUEST_BYTES, PUBLIC_CLOUD_JOB_SLOTS
from orchestrator.sandbox.connections import default_connections
from orchestrator.sandbox.runner import SandboxServer
from orchestrator.sandbox.settings import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_JOB_FAILURE_DETAILS,
    DEFAULT_SCOPES,
    FaultPlan,
    RequestMatch,
    SandboxSettings,
)

DEFAULT_PORT = 8765
#: The command's rate limit: Enterprise non-production's global bucket (reference §8).
DEFAULT_CLI_RATE = 2.0
DEFAULT_CLI_BURST = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every sandbox setting and fault to `parser`."""
    tenant = parser.add_argument_group("sandbox tenant")
    tenant.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    tenant.add_argument("--host", default="127.0.0.1", help="a loopback address")
    tenant.add_argument("--domain", default="sandbox.local")
    tenant.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    tenant.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    tenant.add_argument("--scopes", default=" ".join(DEFAULT_SCOPES), help="granted scopes")
    tenant.add_argument("--no-grant", action="store_true", help="the token endpoint answers 403")
    tenant.add_argument(
        "--no-password-grant",
        action="store_true",
        help="user logins (the password-realm grant) answer 403 unauthorized_client",
    )
    tenant.add_argument("--static-token", help="also accept this Management API token")
    tenant.add_argument("--token-lifetime", type=float, default=86_400.0, metavar="SECONDS")
    tenant.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="shift the sandbox's clock (Date, x-ratelimit-reset, created_at), e.g. -300",
    )
    jobs = parser.add_argument_group("jobs and limits")
    jobs.add_argument("--job-slots", type=int, default=PUBLIC_CLOUD_JOB_SLOTS)
    jobs.add_argument("--job-latency", type=float, default=0.5, metavar="SECONDS")
    jobs.add_argument("--job-seconds", type=float, default=1.0, metavar="SECONDS")
    jobs.add_argument("--job-seconds-per-user", type=float, default=0.001, metavar="SECONDS")
    jobs.add_argument("--expire-after", type=float, default=7200.0, metavar="SECONDS")
    jobs.add_argument("--retention", type=float, default=86_400.0, metavar="SECONDS")
    jobs.add_argument("--max-request-bytes", type=int, default=MAX_REQUEST_BYTES)
    jobs.add_argument("--rate-limit-per-second", type=float, default=DEFAULT_CLI_RATE)
    jobs.add_argument("--rate-limit-burst", type=int, default=DEFAULT_CLI_BURST)
    jobs.add_argument("--no-rate-limit", action="store_true", help="unlimited requests")
    jobs.add_argument("--retry-after", action="store_true", help="add Retry-After to rate 429s")
    jobs.add_argument("--user-store", choices=("full", "keys", "none"), default="full")
    jobs.add_argument("--seed", type=int, help="fixes job ids and user ids (default: random)")
    _add_fault_arguments(parser)


def _add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group("faults (each counts the next N matching requests/jobs)")
    faults.add_argument("--fail-requests", type=int, default=0, metavar="N")
    faults.add_argument("--fail-status", type=int, default=503, choices=(500, 502, 503))
    faults.add_argument("--fail-method", help="only requests with this method")
    faults.add_argument("--fail-path", help="only requests whose path starts with this")
    faults.add_argument("--reset-requests", type=int, default=0, metavar="N")
    faults.add_argument("--reset-path", help="only requests whose path starts with this")
    faults.add_argument("--reset-after-create", type=int, default=0, metavar="N")
    faults.add_argument("--fail-jobs", type=int, default=0, metavar="N")
    faults.add_argument("--fail-jobs-details", default=DEFAULT_JOB_FAILURE_DETAILS)
    faults.add_argument("--rate-limit-429s", type=int, default=0, metavar="N")
    faults.add_argument("--latency", type=float, default=0.0, metavar="SECONDS")
    faults.add_argument("--latency-max", type=float, metavar="SECONDS")
    faults.add_argument("--lose-user", action="append", default=[], metavar="EMAIL")
    faults.add_argument(
        "--poison", action="append", default=[], metavar="EMAIL[=CODE]", help="default CONFLICT"
    )
    faults.add_argument("--errors-generic-form", action="store_true")
    faults.add_argument(
        "--echo-token-errors",
        type=int,
        default=0,
        metavar="N",
        help="the next N API error messages quote the request's bearer token",
    )


def settings_from_args(ns: argparse.Namespace) -> SandboxSettings:
    """The settings the parsed flags describe.

    Raises:
        ConfigError: a value out of range or a non-loopback host.
    """
    unlimited = ns.no_rate_limit
    return SandboxSettings(
        host=ns.host,
        port=ns.port,
        domain=ns.domain,
        client_id=ns.client_id,
        client_secret=ns.client_secret,
        scopes=tuple(ns.scopes.split()),
        client_granted=not ns.no_grant,
        password_grant=not ns.no_password_grant,
        static_token=ns.static_token,
        token_lifetime=ns.token_lifetime,
        job_slots=ns.job_slots,
        job_latency=ns.job_latency,
        job_seconds=ns.job_seconds,
        job_seconds_per_user=ns.job_seconds_per_user,
        expire_after=ns.expire_after,
        retention=ns.retention,
        max_request_bytes=ns.max_request_bytes,
        rate_limit_per_second=None if unlimited else ns.rate_limit_per_second,
        rate_limit_burst=None if unlimited else ns.rate_limit_burst,
        rate_limit_retry_after=ns.retry_after,
        user_store=ns.user_store,
        clock_offset=ns.clock_offset,
        # A random seed by default: a restarted sandbox must not hand out a job id a client
        # still remembers from the previous one.
        seed=secrets.randbelow(2**31) if ns.seed is None else ns.seed,
        faults=_fault_plan(ns),
    )


def _fault_plan(ns: argparse.Namespace) -> FaultPlan:
    poisoned = {}
    for spec in ns.poison:
        email, _, code = str(spec).partition("=")
        poisoned[email.lower()] = code or "CONFLICT"
    return FaultPlan(
        fail_requests=ns.fail_requests,
        fail_requests_status=ns.fail_status,
        fail_requests_match=RequestMatch(ns.fail_method, ns.fail_path),
        reset_requests=ns.reset_requests,
        reset_requests_match=RequestMatch(None, ns.reset_path),
        reset_after_create=ns.reset_after_create,
        fail_jobs=ns.fail_jobs,
        fail_jobs_details=ns.fail_jobs_details,
        rate_limit_429s=ns.rate_limit_429s,
        latency=ns.latency,
        latency_max=ns.latency_max,
        lose_users=frozenset(email.lower() for email in ns.lose_user),
        poisoned_users=poisoned,
        errors_generic_form=ns.errors_generic_form,
        echo_token_errors=ns.echo_token_errors,
    )


def describe(server: SandboxServer) -> str:
    """The lines a person pastes into a shell to point the client at `server`."""
    settings = server.settings
    lines = [
        f"# Auth0 sandbox listening on {server.base_url} (loopback only). Ctrl-C stops it.",
        f"export AUTH0_BASE_URL={server.base_url}",
        f"export AUTH0_DOMAIN={settings.domain}",
        f"export AUTH0_CLIENT_ID={settings.client_id}",
        f"export AUTH0_CLIENT_SECRET={settings.client_secret}",
    ]
    if settings.static_token:
        lines.append(f"export AUTH0_TOKEN={settings.static_token}")
    lines.append("# connections:")
    for connection in default_connections():
        state = "enabled" if connection.enabled else "disabled"
        kind = "custom database" if connection.custom_database else connection.strategy
        lines.append(f"#   {connection.id}  {connection.name} ({kind}, {state})")
    return "\n".join(lines)


async def serve(settings: SandboxSettings, *, ready: Callable[[str], None] | None = None) -> None:
    """Run a sandbox until cancelled; `ready` receives `describe(server)` once it listens."""
    async with SandboxServer(settings) as server:
        if ready is not None:
            ready(describe(server))
        await anyio.sleep_forever()


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def _serve_until_signal(settings: SandboxSettings) -> None:
    """`serve`, stopped cleanly by SIGTERM as well as Ctrl-C."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await serve(settings, ready=_write)
    except asyncio.CancelledError:
        return


def main_from_args(ns: argparse.Namespace) -> int:
    """Run the sandbox the parsed flags describe until Ctrl-C or SIGTERM; returns 0.

    Raises:
        ConfigError: a bad flag value, or the port cannot be bound.
    """
    settings = settings_from_args(ns)
    try:
        asyncio.run(_serve_until_signal(settings))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the port is taken, most often
        where = f"{settings.host}:{settings.port}"
        raise ConfigError(f"the sandbox cannot listen on {where}: {exc.strerror or exc}") from exc
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m orchestrator.sandbox`; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="orchestrator sandbox",
        description="A local Auth0-compatible server to rehearse a bulk import.",
    )
    add_arguments(parser)
    try:
        return main_from_args(parser.parse_args(argv))
    except ConfigError as exc:
        sys.stderr.write(f"orchestrator sandbox: {exc}\n")
        return 2
