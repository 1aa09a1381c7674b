"""The tenant a command talks to: light to import, so building it costs the CLI nothing."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.auth0.credentials import Credentials
from orchestrator.settings import ClientSettings


@dataclass(frozen=True, slots=True)
class Target:
    """The tenant a command talks to and how: credentials and the client's settings."""

    credentials: Credentials
    client: ClientSettings
