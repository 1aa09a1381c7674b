"""Nightly incremental sync: keep an Auth0 connection in step with a source system's full export.

`state` (the SQLite state file), `diff` (tonight's classification), `promote` (which users Auth0
took), `lock` (one sync at a time) and `command` (`orchestrator sync`). See README "Nightly sync".
"""

from __future__ import annotations
