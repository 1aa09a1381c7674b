"""`orchestrator run INPUT --run-dir DIR --connection-id ID`: plan (or resume), send, report."""

from __future__ import annotations

import argparse
import os

from orchestrator.cli import options
from orchestrator.cli.output import EventLog
from orchestrator.cli.runs import tell_run
from orchestrator.outcomes import Outcome
from orchestrator.settings import VerifySettings

HELP = "plan (or resume), upload, wait for every job, report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_input(parser)
    options.add_plan_options(parser)
    options.add_run_dir(parser)
    options.add_connection(parser)
    options.add_sending_options(parser)
    parser.add_argument(
        "--verify",
        type=options.count,
        default=0,
        metavar="N",
        help="at the end, look N random imported users up and compare them (needs read:users)",
    )
    options.add_api_options(parser)
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.checks import verify_after_run
    from orchestrator.app.runs import run

    plan = options.plan_settings(args)
    upload = options.upload_settings(args, os.environ)
    target = options.target(args)
    verify = VerifySettings(sample=args.verify) if args.verify else None
    result = run(
        args.input, args.run_dir, plan, upload, target, log, need_read_users=verify is not None
    )
    if verify is not None:
        result = verify_after_run(result, target, verify, log)
    return tell_run(result, log)
