"""Pre-flight checks: prove in the first second that a run can work, before anything is planned.

Owns the checks of the credentials, the token's scopes, the target connection and the service
(reachability, clock offset) and their one-line verdicts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal

from orchestrator.auth0.answers import printable
from orchestrator.auth0.client import ApiClient
from orchestrator.auth0.credentials import Credentials
from orchestrator.auth0.token import TokenInfo
from orchestrator.errors import (
    ApiError,
    AuthError,
    ConfigError,
    RequestRejectedError,
)
from orchestrator.events import EventSink, discard, info
from orchestrator.settings import ClientSettings, PreflightSettings

CheckStatus = Literal["ok", "warning", "not_checked", "failed"]

CREATE_USERS: Final = "create:users"
READ_USERS: Final = "read:users"
READ_CONNECTIONS: Final = "read:connections"
#: Where scopes are granted, for every "grant it" message.
_GRANT_WHERE: Final = (
    "grant it to the application in the Auth0 dashboard (Applications > APIs > Auth0 Management "
    "API > Machine to Machine Applications), then use a new token"
)
#: A static token expiring sooner than this may not outlive a long run (it cannot be refreshed).
_STATIC_TOKEN_MARGIN: Final = 3600.0
MARKS: Final[dict[CheckStatus, str]] = {
    "ok": "ok",
    "warning": "WARNING",
    "not_checked": "not checked",
    "failed": "FAILED",
}


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict of the pre-flight: what was checked, how it went, and what to do about it."""

    name: str
    status: CheckStatus
    message: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "message": self.message}


@dataclass(frozen=True, slots=True)
class PreflightReport:
    """Every verdict of one pre-flight, in the order credentials, scopes, connection, service."""

    checks: tuple[Check, ...]
    seconds: float

    @property
    def problems(self) -> list[Check]:
        """The failed checks: each one stops the run."""
        return [check for check in self.checks if check.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "checks": [check.to_json() for check in self.checks],
        }


class PreflightError(ConfigError):
    """The pre-flight found problems; the message has one line per problem (exit 2)."""

    def __init__(self, report: PreflightReport) -> None:
        self.report = report
        problems = report.problems
        if len(problems) == 1:
            text = f"{problems[0].name}: {problems[0].message}"
        else:
            lines = [f"pre-flight found {len(problems)} problems; no import job was sent:"]
            lines += [f"  {check.name}: {check.message}" for check in problems]
            text = "\n".join(lines)
        super().__init__(text)


async def preflight(
    credentials: Credentials,
    client_settings: ClientSettings,
    connection_id: str,
    settings: PreflightSettings | None = None,
    *,
    events: EventSink = discard,
) -> PreflightReport:
    """Run every pre-flight check with a client of its own; never raises for a failed check.

    Args:
        credentials: Target and credentials, as the run will use them.
        client_settings: The run's client settings (request budget); retries are shortened.
        connection_id: The target connection, already checked against the id pattern.
        settings: What is required; defaults to a plain run's needs.
        events: receives the client's retry/rate-limit events.

    Returns:
        The verdicts; ``report.ok`` is False when the run must not start.
    """
    settings = settings or PreflightSettings()
    brief = replace(client_settings, retry=settings.retry)
    async with ApiClient(credentials, brief, events=events) as client:
        return await run_checks(client, connection_id, settings, target=credentials.base_url)


async def ensure_ready(
    credentials: Credentials,
    client_settings: ClientSettings,
    connection_id: str,
    settings: PreflightSettings | None = None,
    *,
    events: EventSink = discard,
) -> PreflightReport:
    """`preflight`, then report its notes and refuse to go on if anything failed.

    Raises:
        PreflightError: one line per failed check.
    """
    report = await preflight(credentials, client_settings, connection_id, settings, events=events)
    events("preflight", report.to_json())
    for check in report.checks:
        if check.status in ("warning", "not_checked"):
            info(events, f"pre-flight: {check.name} {MARKS[check.status]}: {check.message}")
    if not report.ok:
        raise PreflightError(report)
    return report


async def run_checks(
    client: ApiClient,
    connection_id: str,
    settings: PreflightSettings | None = None,
    *,
    target: str = "the service",
) -> PreflightReport:
    """The checks, with an open client: token, scopes, connection, then the service's answers.

    Args:
        client: An open client; its clock offset is read after the requests.
        connection_id: The target connection.
        settings: What is required.
        target: How to name the service in messages (its base URL).
    """
    settings = settings or PreflightSettings()
    started = time.monotonic()
    checks: list[Check]
    try:
        info = await client.token_info()
    except AuthError as exc:
        checks = [Check("credentials", "failed", str(exc)), *_skipped("no token was obtained")]
        return PreflightReport(tuple(checks), time.monotonic() - started)
    except ApiError as exc:
        checks = [
            Check("service", "failed", _unreachable(target, exc)),
            *_skipped("the token endpoint did not answer"),
        ]
        return PreflightReport(tuple(checks), time.monotonic() - started)
    connection_checks, reached = await _probe_connection(client, connection_id, info, target)
    refused = [c for c in connection_checks if c.name == "credentials"]
    if refused:
        # The API refused the token itself: scope and connection verdicts would mean nothing.
        checks = [*refused, *_skipped("the token was refused")]
        return PreflightReport(tuple(checks), time.monotonic() - started)
    checks = [_token_check(info), *_scope_checks(info, settings), *connection_checks]
    if reached:
        checks.append(judge_clock(client.server_clock_offset, settings, target))
    return PreflightReport(tuple(checks), time.monotonic() - started)


def _skipped(reason: str) -> list[Check]:
    return [Check(name, "not_checked", f"skipped: {reason}") for name in ("scopes", "connection")]


def _token_check(info: TokenInfo) -> Check:
    """The token's origin and lifetime; a static token that is expired or about to expire."""
    left = None if info.expires_at is None else info.expires_at - time.time()
    if info.source != "static":
        life = "" if left is None else f", valid for {_duration(left)}"
        return Check("credentials", "ok", f"token obtained with the client-credentials grant{life}")
    if left is not None and left <= 0:
        return Check(
            "credentials",
            "failed",
            f"AUTH0_TOKEN expired {_duration(-left)} ago: get a new Management API token, or use "
            "AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET (refreshed automatically)",
        )
    if left is not None and left < _STATIC_TOKEN_MARGIN:
        return Check(
            "credentials",
            "warning",
            f"AUTH0_TOKEN expires in {_duration(left)} and cannot be refreshed: a long run will "
            "stop unfinished; use AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET instead",
        )
    life = "" if left is None else f", valid for {_duration(left)}"
    return Check("credentials", "ok", f"AUTH0_TOKEN accepted by the API{life}")


def _scope_checks(info: TokenInfo, settings: PreflightSettings) -> list[Check]:
    if not info.scopes_known:
        return [
            Check(
                "scopes",
                "not_checked",
                "the token is opaque and its grant named no scopes: if create:users is missing, "
                "the first import job will be refused (403)",
            )
        ]
    checks: list[Check] = []
    if CREATE_USERS not in info.scopes:
        checks.append(
            Check(
                "scopes",
                "failed",
                f"the token lacks {CREATE_USERS}, which every import job needs: {_GRANT_WHERE}",
            )
        )
    if READ_USERS not in info.scopes:
        status: CheckStatus = "failed" if settings.need_read_users else "warning"
        checks.append(
            Check(
                "scopes",
                status,
                f"the token lacks {READ_USERS}, which verification (--verify, `orchestrator "
                f"verify`) needs to look users up: {_GRANT_WHERE}",
            )
        )
    if not checks:
        granted = ", ".join(sorted(info.scopes & {CREATE_USERS, READ_USERS, READ_CONNECTIONS}))
        checks.append(Check("scopes", "ok", f"granted: {granted}"))
    return checks


async def _probe_connection(
    client: ApiClient, connection_id: str, info: TokenInfo, target: str
) -> tuple[list[Check], bool]:
    """GET the connection and judge it; returns the verdicts and whether the service answered.

    A static token is only proven valid by an API call, so it probes even without
    read:connections (a 403 still proves the token and the service); a granted token that is known
    to lack the scope skips the call.
    """
    lacks_scope = info.scopes_known and READ_CONNECTIONS not in info.scopes
    not_checked = Check(
        "connection",
        "not_checked",
        f"the token lacks {READ_CONNECTIONS}: could not check that {connection_id} exists and is "
        "an enabled database connection (the first import job will tell)",
    )
    if lacks_scope and info.source != "static":
        return [not_checked], True
    try:
        body = await client.get_connection(connection_id)
    except AuthError as exc:
        if exc.status == 403:
            return [not_checked], True
        return [Check("credentials", "failed", str(exc))], True
    except RequestRejectedError as exc:
        if exc.status == 404:
            message = (
                f"{connection_id} does not exist in this tenant: copy the id of the target "
                "database connection (Authentication > Database > the connection's settings)"
            )
            return [Check("connection", "failed", message)], True
        return [Check("connection", "failed", str(exc))], True
    except ApiError as exc:
        return [Check("service", "failed", _unreachable(target, exc))], False
    return judge_connection(connection_id, body), True


def judge_connection(connection_id: str, body: Mapping[str, object]) -> list[Check]:
    """Whether a connection (GET /api/v2/connections/{id}) can receive a bulk import.

    It must be a database connection (strategy ``auth0``), enabled for at least one application,
    and, for a custom database, have import mode on (reference §1 prerequisites).
    """
    name = body.get("name")
    label = f"{connection_id} ({printable(name)})" if isinstance(name, str) else connection_id
    strategy = body.get("strategy")
    if strategy != "auth0":
        strategy = printable(str(strategy))
        return [
            Check(
                "connection",
                "failed",
                f"{label} is a {strategy} connection, not a database connection: bulk import only "
                "goes into a database connection; pass the id of one (Authentication > Database)",
            )
        ]
    raw_options = body.get("options")
    options: Mapping[str, object] = raw_options if isinstance(raw_options, dict) else {}
    custom = options.get("enabledDatabaseCustomization") is True
    checks: list[Check] = []
    if custom and options.get("import_mode") is not True:
        checks.append(
            Check(
                "connection",
                "failed",
                f'{label} is a custom database without import mode: turn on "Import Users to '
                'Auth0" in its Custom Database settings, or import into another connection',
            )
        )
    clients = body.get("enabled_clients")
    if isinstance(clients, list) and not clients:
        checks.append(
            Check(
                "connection",
                "failed",
                f"{label} is enabled for no application, and the import requires an enabled "
                "connection: enable it for at least one application (its Applications tab)",
            )
        )
    elif not isinstance(clients, list):
        # Newer tenants list a connection's applications on another endpoint.
        checks.append(
            Check(
                "connection",
                "not_checked",
                f"{label}: whether it is enabled for an application could not be read (no "
                "enabled_clients in the answer)",
            )
        )
    if not any(check.status == "failed" for check in checks):
        kind = "a custom database with import mode" if custom else "a database connection"
        apps = f", enabled for {len(clients)} application(s)" if isinstance(clients, list) else ""
        checks.insert(0, Check("connection", "ok", f"{label}: {kind}{apps}"))
    return checks


def judge_clock(offset: float | None, settings: PreflightSettings, target: str) -> Check:
    """The clock verdict for a server-minus-local offset in seconds (None: no Date header seen)."""
    if offset is None:
        return Check(
            "service",
            "not_checked",
            f"{target} answered, but without an HTTP Date header: the clock offset is unknown",
        )
    side = "behind" if offset > 0 else "ahead of"
    size = abs(offset)
    described = f"the local clock is {size:.0f} s {side} the service's (HTTP Date)"
    if size > settings.clock_fail:
        return Check(
            "service",
            "failed",
            f"{described}: synchronise it (NTP); rate-limit waits are computed from the "
            "service's UNIX times and would be wrong",
        )
    if size > settings.clock_warn:
        return Check(
            "service",
            "warning",
            f"{described}: synchronise it (NTP) so that rate-limit waits are exact",
        )
    return Check("service", "ok", f"{target} answered; clocks agree within {max(size, 1):.0f} s")


def _unreachable(target: str, exc: ApiError) -> str:
    return (
        f"cannot use {target}: {exc}; check AUTH0_DOMAIN / AUTH0_BASE_URL, the network and any "
        "proxy, or try again later if the service is failing"
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
