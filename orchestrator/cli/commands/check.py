"""`orchestrator check --connection-id ID`: the pre-flight alone; exit 0 ready, 2 not."""

from __future__ import annotations

import argparse
import os

from orchestrator.cli import options
from orchestrator.cli.output import EventLog
from orchestrator.cli.render import render_checks
from orchestrator.outcomes import Outcome
from orchestrator.settings import PreflightSettings

HELP = "pre-flight only: credentials, scopes, connection"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_connection(parser)
    options.add_api_options(parser, sending=False)
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.checks import check

    connection_id = options.upload_settings(args, os.environ).connection_id
    result = check(options.target(args), connection_id, PreflightSettings(), log)
    log.summary(render_checks(result.report), result.report.to_json())
    return result.outcome
