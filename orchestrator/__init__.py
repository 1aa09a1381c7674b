"""orchestrator: move very large user exports into Auth0 through bulk-import jobs, resumably.

The library's face. Settings in, typed results out; nothing here reads the environment::

    from orchestrator import PlanSettings, UploadSettings, Credentials, ClientSettings, Target, run
    result = run("users.ndjson.gz", Path("runs/migration"), PlanSettings(),
                 UploadSettings(connection_id="con_..."), Target(credentials, ClientSettings()),
                 events=print_event)
    result.outcome, result.report

Names are imported on first use, so `import orchestrator` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from orchestrator.version import __version__

#: Public name -> the module that defines it.
_EXPORTS = {
    # settings and their parts
    "PlanSettings": "orchestrator.settings",
    "UploadSettings": "orchestrator.settings",
    "ClientSettings": "orchestrator.settings",
    "RetryPolicy": "orchestrator.settings",
    "PollTiming": "orchestrator.settings",
    "PreflightSettings": "orchestrator.settings",
    "VerifySettings": "orchestrator.settings",
    "SyncSettings": "orchestrator.settings",
    "Credentials": "orchestrator.auth0.credentials",
    "Target": "orchestrator.app.target",
    "Outcome": "orchestrator.outcomes",
    # use cases
    "validate": "orchestrator.app.plans",
    "chunk": "orchestrator.app.plans",
    "run": "orchestrator.app.runs",
    "resume": "orchestrator.app.runs",
    "report": "orchestrator.app.runs",
    "status": "orchestrator.app.runs",
    "check": "orchestrator.app.checks",
    "verify": "orchestrator.app.checks",
    "sync": "orchestrator.app.night",
    # errors
    "OrchestratorError": "orchestrator.errors",
    "ConfigError": "orchestrator.errors",
    "SettingsError": "orchestrator.errors",
    "InputError": "orchestrator.errors",
    "RunDirError": "orchestrator.errors",
    "RunStopped": "orchestrator.errors",
    "Interrupted": "orchestrator.errors",
    "ApiError": "orchestrator.errors",
}

__all__ = [
    "ApiError",
    "ClientSettings",
    "ConfigError",
    "Credentials",
    "InputError",
    "Interrupted",
    "OrchestratorError",
    "Outcome",
    "PlanSettings",
    "PollTiming",
    "PreflightSettings",
    "RetryPolicy",
    "RunDirError",
    "RunStopped",
    "SettingsError",
    "SyncSettings",
    "Target",
    "UploadSettings",
    "VerifySettings",
    "__version__",
    "check",
    "chunk",
    "report",
    "resume",
    "run",
    "status",
    "sync",
    "validate",
    "verify",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from orchestrator.app.checks import check, verify
    from orchestrator.app.night import sync
    from orchestrator.app.plans import chunk, validate
    from orchestrator.app.runs import report, resume, run, status
    from orchestrator.app.target import Target
    from orchestrator.auth0.credentials import Credentials
    from orchestrator.errors import (
        ApiError,
        ConfigError,
        InputError,
        Interrupted,
        OrchestratorError,
        RunDirError,
        RunStopped,
        SettingsError,
    )
    from orchestrator.outcomes import Outcome
    from orchestrator.settings import (
        ClientSettings,
        PlanSettings,
        PollTiming,
        PreflightSettings,
        RetryPolicy,
        SyncSettings,
        UploadSettings,
        VerifySettings,
    )
