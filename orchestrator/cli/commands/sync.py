"""`orchestrator sync INPUT --state PATH --connection-id ID [--dry-run]`: one night's sync."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from orchestrator.cli import options
from orchestrator.cli.exit_codes import for_outcome
from orchestrator.cli.output import EventLog
from orchestrator.cli.render import render_sync_counts, render_sync_summary
from orchestrator.outcomes import Outcome
from orchestrator.settings import SyncSettings

HELP = "nightly incremental sync: import only new or changed users (upsert)"
PROG = "orchestrator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_input(parser)
    options.add_plan_options(parser)
    parser.add_argument(
        "--state",
        type=Path,
        required=True,
        help="the sync state file (SQLite; created on the first sync). One per connection",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="where each night's run directory goes (default: STATE.runs next to the state)",
    )
    options.add_connection(parser)
    options.add_sending_options(parser, upsert=False)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="classify only (new, changed, unchanged, missing, rejected): send nothing, "
        "change nothing",
    )
    options.add_api_options(parser)
    options.add_output_options(parser)


def main(args: argparse.Namespace, log: EventLog) -> Outcome:
    from orchestrator.app.night import sync

    settings = SyncSettings(state=args.state, runs_dir=args.runs_dir, dry_run=args.dry_run)
    named = options.connection_named(args, os.environ)
    upload = options.upload_settings(args, os.environ) if named or not args.dry_run else None
    target = None if args.dry_run else options.target(args)
    result = sync(args.input, settings, options.plan_settings(args), upload, target, log)
    if result.outcome is Outcome.BUSY:
        sys.stderr.write(f"{PROG}: {result.busy}\n")
        return result.outcome
    if result.outcome is Outcome.INTERRUPTED and result.report is None:
        log.error(
            f"{PROG}: interrupted; state saved in {settings.state}. {result.active_jobs} job(s) "
            "still run at Auth0; the next sync resumes this night before its own diff"
        )
        return result.outcome
    if result.dry_run and result.counts is not None:
        data = {"command": "sync", "dry_run": True, **result.counts.as_json()}
        title = "sync dry run: nothing sent, state unchanged"
        log.summary(render_sync_counts(result.counts.as_json(), title=title), data)
        return result.outcome
    assert result.report is not None
    summary = {**result.report, "exit_code": int(for_outcome(result.outcome))}
    log.summary(render_sync_summary(summary), summary)
    return result.outcome
