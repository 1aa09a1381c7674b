"""The sandbox tenant's preconfigured connections, one per case the import endpoint distinguishes.

Ids follow the real pattern `^con_[A-Za-z0-9]{16}$` (reference §1), so a client's own validation passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The database connection imports succeed into.
DATABASE_CONNECTION_ID: Final = "con_SandboxDatabase1"
DATABASE_CONNECTION_NAME: Final = "Username-Password-Authentication"
#: A database connection enabled for no application: "Connection must be enabled."
DISABLED_CONNECTION_ID: Final = "con_SandboxDisabled1"
#: A social connection: "Connection must be a database connection."
SOCIAL_CONNECTION_ID: Final = "con_SandboxGoogle001"
#: A custom-database connection without import mode: "Custom Database Connections without import mode..."
CUSTOM_DB_CONNECTION_ID: Final = "con_SandboxCustomDb1"


@dataclass(frozen=True, slots=True)
class Connection:
    """One connection of the tenant, as GET /api/v2/connections/{id} describes it."""

    id: str
    name: str
    strategy: str
    enabled: bool
    custom_database: bool = False
    import_mode: bool = False

    @property
    def is_database(self) -> bool:
        return self.strategy == "auth0"

    def to_json(self, client_id: str) -> dict[str, object]:
        """The connection's body; `enabled_clients` names the sandbox's client when enabled."""
        options: dict[str, object] = {}
        if self.is_database:
            options = {
                "brute_force_protection": True,
                "enabledDatabaseCustomization": self.custom_database,
                "import_mode": self.import_mode,
            }
        return {
            "id": self.id,
            "options": options,
            "strategy": self.strategy,
            "name": self.name,
            "is_domain_connection": False,
            "enabled_clients": [client_id] if self.enabled else [],
            "realms": [self.name],
        }


def default_connections() -> tuple[Connection, ...]:
    """The four connections every sandbox tenant starts with."""
    return (
        Connection(DATABASE_CONNECTION_ID, DATABASE_CONNECTION_NAME, "auth0", enabled=True),
        Connection(DISABLED_CONNECTION_ID, "Disabled-Database", "auth0", enabled=False),
        Connection(SOCIAL_CONNECTION_ID, "google-oauth2", "google-oauth2", enabled=True),
        Connection(
            CUSTOM_DB_CONNECTION_ID,
            "Legacy-Custom-Database",
            "auth0",
            enabled=True,
            custom_database=True,
            import_mode=False,
        ),
    )
