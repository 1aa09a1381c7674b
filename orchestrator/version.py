"""The release of this package (pyproject.toml's version, kept equal by test_architecture)."""

from __future__ import annotations

__version__ = "0.1.0"
