"""orchestrator: move very large user exports into Auth0 through bulk-import jobs, resumably."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
