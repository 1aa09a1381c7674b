"""`orchestrator chunk INPUT --run-dir DIR`: plan only: chunk files and the manifest; no network."""

from __future__ import annotations

import argparse

from orchestrator.cli import options
from orchestrator.cli.output import EventLog
from orchestrator.cli.render import render_plan
from orchestrator.outcomes import Outcome

HELP = "plan only: write chunk files and the manifest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_input(parser)
    options.add_plan_options(parser)
    options.add_run_dir(parser)
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.plans import chunk

    result = chunk(args.input, args.run_dir, options.plan_settings(args))
    summary = result.summary()
    log.summary(render_plan(summary), summary)
    return result.outcome
