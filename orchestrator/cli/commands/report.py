"""`orchestrator report --run-dir DIR`: (re)write the report, fetch per-user errors still missing."""

from __future__ import annotations

import argparse

from orchestrator.cli import options
from orchestrator.cli.output import EventLog
from orchestrator.cli.runs import tell_run
from orchestrator.outcomes import Outcome

HELP = "(re)write the report, fetch missing errors"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_run_dir(parser)
    options.add_api_options(parser, sending=False)
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.runs import report
    from orchestrator.rundir.claim import require_run

    require_run(args.run_dir)
    return tell_run(report(args.run_dir, lambda: options.target(args), log), log)
