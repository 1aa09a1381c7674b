"""How the commands that send (`run`, `resume`, `report`) tell their result."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.cli.output import EventLog
from orchestrator.cli.render import render_report, render_verify
from orchestrator.outcomes import Outcome
from orchestrator.rundir.layout import VERIFY

if TYPE_CHECKING:
    from orchestrator.app.runs import RunResult

PROG = "orchestrator"


def tell_run(result: RunResult, log: EventLog) -> Outcome:
    """Print a run's end: its report, or where it stopped; then its verification, if any."""
    run_dir = result.run_dir
    if result.outcome is Outcome.INTERRUPTED:
        log("interrupted", {"run_dir": str(run_dir), "active_jobs": result.active_jobs})
        log.error(
            f"{PROG}: interrupted; state saved in {run_dir}. {result.active_jobs} job(s) still "
            f"run at Auth0; `orchestrator resume --run-dir {run_dir}` re-attaches to them"
        )
        return result.outcome
    if result.report is not None:
        log.summary(render_report(result.report), result.report)
    if result.verify_problem is not None:
        log(
            "info",
            {
                "message": f"verification could not be done ({result.verify_problem}); run "
                f"`orchestrator verify --run-dir {run_dir}` to try again"
            },
        )
    if result.verification is not None:
        if log.json_lines:
            # The run's summary was the summary event; this one is an event of its own.
            log("verify", result.verification.summary())
        else:
            log.summary(
                render_verify(result.verification, run_dir / VERIFY),
                result.verification.summary(),
            )
    return result.outcome
