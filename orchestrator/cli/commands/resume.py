"""`orchestrator resume --run-dir DIR`: continue a run with the settings recorded in it."""

from __future__ import annotations

import argparse

from orchestrator.cli import options
from orchestrator.cli.output import EventLog
from orchestrator.cli.runs import tell_run
from orchestrator.outcomes import Outcome

HELP = "continue an interrupted run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_run_dir(parser)
    options.add_api_options(parser)
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.runs import resume
    from orchestrator.rundir.claim import require_run

    require_run(args.run_dir)
    result = resume(
        args.run_dir,
        options.target(args),
        log,
        job_slots=args.job_slots,
        max_attempts=args.max_attempts,
    )
    return tell_run(result, log)
