"""`orchestrator verify --run-dir DIR [--sample N] [--seed S]`: look imported users up."""

from __future__ import annotations

import argparse

from orchestrator.cli import options
from orchestrator.cli.output import EventLog
from orchestrator.cli.render import render_verify
from orchestrator.outcomes import Outcome
from orchestrator.settings import VerifySettings

HELP = "look a sample of imported users up in Auth0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_run_dir(parser)
    parser.add_argument(
        "--sample",
        type=options.count,
        metavar="N",
        help=f"users to look up (default {options.default(VerifySettings, 'sample')})",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the draw (reproducible)")
    options.add_api_options(parser, sending=False)
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.checks import verify
    from orchestrator.rundir.claim import require_run

    require_run(args.run_dir)
    settings = VerifySettings(**options.given(args, "sample", "seed"))
    done = verify(args.run_dir, options.target(args), settings, log)
    log.summary(render_verify(done.result, done.path), done.result.summary())
    return done.outcome
