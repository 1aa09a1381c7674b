"""`check` and `verify`: what the tenant says before a run (the pre-flight) and after it (a sample
of the imported users looked up)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from orchestrator.app.loop import run_async
from orchestrator.app.runs import RunResult, check_tenant
from orchestrator.app.target import Target
from orchestrator.errors import OrchestratorError, RunDirError
from orchestrator.events import EventSink
from orchestrator.outcomes import Outcome
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
