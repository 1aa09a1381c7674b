"""`orchestrator validate INPUT [--rejects PATH]`: judge every user; no network."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.cli import options
from orchestrator.cli.output import EventLog
from orchestrator.cli.render import render_plan
from orchestrator.outcomes import Outcome

HELP = "check every user; no network"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_input(parser)
    options.add_plan_options(parser, chunking=False)
    parser.add_argument("--rejects", type=Path, help="write rejected users with reasons here")
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.plans import validate

    result = validate(args.input, options.plan_settings(args), rejects=args.rejects)
    summary = result.summary()
    log.summary(render_plan(summary), summary)
    return result.outcome
