"""`python -m orchestrator.sandbox`: run a local Auth0-compatible server."""

import sys

from orchestrator.sandbox.cli import main

sys.exit(main())
