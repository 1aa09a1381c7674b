"""`orchestrator status --run-dir DIR [--json] [--refresh]`: what the manifest says."""

from __future__ import annotations

import argparse
import sys

import orjson

from orchestrator.cli import options
from orchestrator.cli.output import EventLog
from orchestrator.cli.render import render_status
from orchestrator.outcomes import Outcome

HELP = "what the manifest says about a run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_run_dir(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--refresh", action="store_true", help="ask the API for live job states")
    options.add_api_options(parser, sending=False)
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.runs import status
    from orchestrator.rundir.claim import require_run

    require_run(args.run_dir)
    result = status(args.run_dir, options.target(args) if args.refresh else None)
    if args.json:
        sys.stdout.write(orjson.dumps(result.summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_status(result.summary) + "\n")
    return result.outcome
