"""`orchestrator sandbox [--port N] ...`: a local Auth0-compatible server for rehearsals."""

from __future__ import annotations

import argparse

from orchestrator.cli.output import EventLog
from orchestrator.outcomes import Outcome

HELP = "a local Auth0-compatible server for rehearsals"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Imported here: the aiohttp server costs every other command a noticeable start-up, and
    # the parser registers the sandbox's options only when `sandbox` is the command.
    from orchestrator.sandbox import add_arguments as add_sandbox_arguments

    add_sandbox_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.sandbox import main_from_args

    code = main_from_args(args)
    return Outcome.OK if code == 0 else Outcome.CANNOT_START
