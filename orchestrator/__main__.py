"""`python -m orchestrator` runs the command-line interface."""

from orchestrator.entry import main

main()
