"""`check` and `verify`: what the tenant says before a run (the pre-flight) and after it (a sample
of the imported users looked up, or test accounts signed in)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from orchestrator.app.loop import run_async
from orchestrator.app.runs import RunResult, check_tenant
from orchestrator.app.target import Target
from orchestrator.auth0.client import ApiClient
from orchestrator.auth0.credentials import LoginClient
from orchestrator.errors import AuthError, ConfigError, OrchestratorError, RunDirError
from orchestrator.events import EventSink
from orchestrator.outcomes import Outcome
from orchestrator.results.logins import (
    LoginsResult,
    read_accounts,
    sign_in_all,
    write_logins,
)
from orchestrator.results.preflight import PreflightReport, preflight
from orchestrator.results.verify import VerifyResult, verify_run, write_verify
from orchestrator.rundir.manifest import Manifest
from orchestrator.rundir.tracker import load_manifest
from orchestrator.settings import PreflightSettings, VerifySettings


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The pre-flight's verdicts."""

    report: PreflightReport

    @property
    def outcome(self) -> Outcome:
        return Outcome.OK if self.report.ok else Outcome.CANNOT_START


def check(
    target: Target, connection_id: str, settings: PreflightSettings, events: EventSink
) -> CheckResult:
    """The pre-flight alone: token, scopes, connection, service and clocks."""
    return CheckResult(
        run_async(
            lambda: preflight(
                target.credentials, target.client, connection_id, settings, events=events
            )
        )
    )


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    """A verification and where it was written."""

    result: VerifyResult
    path: Path

    @property
    def outcome(self) -> Outcome:
        return self.result.outcome


def verify(
    run_dir: Path, target: Target, settings: VerifySettings, events: EventSink
) -> VerifyOutcome:
    """Look a random sample of the run's imported users up and compare their profiles.

    Raises:
        RunDirError: no run there, one that never sent anything, or one sent to another tenant.
        ConfigError: the token lacks read:users (nothing can be verified).
    """
    manifest = load_manifest(run_dir)
    if manifest.settings.connection_id is None:
        raise RunDirError(f"{run_dir} was planned but never run: there is nothing to verify")
    check_tenant(manifest, target, run_dir)
    return _verify(run_dir, manifest, target, settings, events)


def _verify(
    run_dir: Path,
    manifest: Manifest,
    target: Target,
    settings: VerifySettings,
    events: EventSink,
) -> VerifyOutcome:
    async def sample() -> VerifyResult:
        return await verify_run(
            run_dir, manifest, target.credentials, target.client, settings, events=events
        )

    result = run_async(sample)
    return VerifyOutcome(result, write_verify(run_dir, result))


def verify_after_run(
    run: RunResult, target: Target, settings: VerifySettings, events: EventSink
) -> RunResult:
    """`run --verify N`: verify a finished run; a missing or differing user makes it USERS_FAILED.

    A verification that cannot be done (API unreachable, scope lost) leaves the run's own outcome
    unchanged, with the reason: the import itself is over.
    """
    if run.outcome is Outcome.INTERRUPTED:
        return run
    try:
        done = _verify(run.run_dir, load_manifest(run.run_dir), target, settings, events)
    except OrchestratorError as exc:
        return dataclasses.replace(run, verify_problem=str(exc))
    outcome = run.outcome
    if outcome is Outcome.OK and done.result.outcome is Outcome.USERS_FAILED:
        outcome = Outcome.USERS_FAILED
    return dataclasses.replace(run, outcome=outcome, verification=done.result)


@dataclass(frozen=True, slots=True)
class LoginsOutcome:
    """A login check and where it was written."""

    result: LoginsResult
    path: Path

    @property
    def outcome(self) -> Outcome:
        return self.result.outcome


def verify_logins(
    run_dir: Path,
    logins: Path,
    login_client: LoginClient,
    target: Target,
    events: EventSink,
    *,
    realm: str | None = None,
) -> LoginsOutcome:
    """Sign the test accounts of `logins` in to the run's connection: proof that their passwords
    arrived usable.

    Args:
        realm: the connection's name; None looks it up from the run's connection id (needs
            read:connections).

    Raises:
        RunDirError: no run there, or one that never sent anything.
        InputError: the login file is unreadable or incomplete.
        ConfigError: the application may not sign users in, or the realm is unknown.
    """
    manifest = load_manifest(run_dir)
    connection_id = manifest.settings.connection_id
    if connection_id is None:
        raise RunDirError(f"{run_dir} was planned but never run: no account can sign in yet")
    accounts = read_accounts(logins)

    async def sign_in() -> LoginsResult:
        name = realm or await _connection_name(connection_id, target)
        return await sign_in_all(
            accounts, name, login_client, target.credentials, target.client, events=events
        )

    result = run_async(sign_in)
    return LoginsOutcome(result, write_logins(run_dir, result))


async def _connection_name(connection_id: str, target: Target) -> str:
    async with ApiClient(target.credentials, target.client) as client:
        try:
            connection = await client.get_connection(connection_id)
        except AuthError as exc:
            if exc.status != 403:
                raise
            raise ConfigError(
                "the connection's name (the realm accounts sign in to) needs read:connections: "
                "grant it, or pass --realm NAME"
            ) from None
    name = connection.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"the connection {connection_id} has no name: pass --realm NAME")
    return name
