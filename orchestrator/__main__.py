"""`python -m orchestrator` runs the command-line interface."""

from orchestrator.cli import run

run()
