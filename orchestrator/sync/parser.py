"""The `sync` subcommand's arguments: registered by cli.py without importing the network code.

`command.py` runs the command; this module only describes it, so `orchestrator --help` and the
offline commands stay quick to start.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from orchestrator.cli import _add_api_options, _add_output_options, _add_plan_options


def add_sync_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register the `sync` subcommand on the CLI's subparsers; returns its parser."""
    sync = commands.add_parser(
        "sync", help="nightly incremental sync: import only new or changed users (upsert)"
    )
    _add_plan_options(sync)
    sync.add_argument(
        "--state",
        type=Path,
        required=True,
        help="the sync state file (SQLite; created on the first sync). One per connection",
    )
    sync.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="where each night's run directory goes (default: STATE.runs next to the state)",
    )
    sync.add_argument(
        "--connection-id",
        default=os.environ.get("AUTH0_CONNECTION_ID"),
        help="target database connection, con_... (default: $AUTH0_CONNECTION_ID)",
    )
    sync.add_argument(
        "--send-completion-email",
        action="store_true",
        help="let Auth0 email the tenant owners about every job (default off)",
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="classify only (new, changed, unchanged, missing, rejected): send nothing, "
        "change nothing",
    )
    _add_api_options(sync)
    _add_output_options(sync)
    return sync
