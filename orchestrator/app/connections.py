"""A database connection named as people see it in the dashboard, resolved to its id."""

from __future__ import annotations

from typing import Final

from orchestrator.app.loop import run_async
from orchestrator.app.target import Target
from orchestrator.auth0.client import ApiClient
from orchestrator.errors import AuthError, ConfigError

#: The strategy of Auth0's database connections (the only ones a bulk import can fill).
DATABASE_STRATEGY: Final = "auth0"


def connection_id_named(name: str, target: Target) -> str:
    """The id of the database connection called `name` in the tenant.

    Raises:
        ConfigError: no connection has that name, it is not a database connection, or the token
            cannot read connections (read:connections); one line, with what to do.
        ApiError: the service could not be asked.
    """

    async def ask() -> list[dict[str, object]]:
        async with ApiClient(target.credentials, target.client) as client:
            return await client.connections_named(name)

    try:
        found = run_async(ask)
    except AuthError as exc:
        if exc.status != 403:
            raise
        raise ConfigError(
            f"--connection {name}: the token may not read connections (the read:connections "
            "scope); grant it to the application, or pass --connection-id con_..."
        ) from None
    matches = [item for item in found if item.get("name") == name]
    if not matches:
        raise ConfigError(
            f"--connection {name}: the tenant has no connection with that name (names are "
            "exact, case included); check it in the dashboard, or pass --connection-id con_..."
        )
    connection = matches[0]
    strategy = connection.get("strategy")
    if strategy != DATABASE_STRATEGY:
        raise ConfigError(
            f"--connection {name}: a {strategy} connection, not a database connection; bulk "
            "imports fill database connections only"
        )
    connection_id = connection.get("id")
    if not isinstance(connection_id, str):
        raise ConfigError(f"--connection {name}: the service gave no id for it")
    return connection_id
