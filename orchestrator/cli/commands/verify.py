"""`orchestrator verify --run-dir DIR [--sample N] [--seed S] | --logins FILE`: look imported users
up, or sign test accounts in."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from orchestrator.cli import options
from orchestrator.cli.output import EventLog
from orchestrator.cli.render import render_logins, render_verify
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
    parser.add_argument(
        "--logins",
        type=Path,
        metavar="FILE",
        help="instead, sign these test accounts in (CSV or NDJSON of email,password) through the "
        "password-realm grant: proof their passwords arrived usable; passwords are never "
        "logged or written",
    )
    parser.add_argument(
        "--realm",
        metavar="NAME",
        help="with --logins: the connection's name (default: looked up from the run's "
        "connection, which needs read:connections)",
    )
    options.add_api_options(parser, sending=False)
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.checks import verify
    from orchestrator.rundir.claim import require_run

    require_run(args.run_dir)
    if args.logins is not None:
        from orchestrator.app.checks import verify_logins

        logins = verify_logins(
            args.run_dir,
            args.logins,
            options.login_client(os.environ),
            options.target(args),
            log,
            realm=args.realm,
        )
        log.summary(render_logins(logins.result, logins.path), logins.result.summary())
        return logins.outcome
    settings = VerifySettings(**options.given(args, "sample", "seed"))
    done = verify(args.run_dir, options.target(args), settings, log)
    log.summary(render_verify(done.result, done.path), done.result.summary())
    return done.outcome
