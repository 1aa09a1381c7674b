"""`--from keycloak`: a Keycloak realm export (`{"realm": …, "users": [...]}`), or one of the split
files `realm-users-N.json`, pretty-printed or compact.

`id` becomes the user_id, `firstName`/`lastName` the given and family names (and the name),
`enabled: false` blocks the user, `attributes` (each a list of values) go to user_metadata, realm
roles, client roles and groups to app_metadata. The username is kept unless it is the email (a
realm that logs in by email). Service accounts are clients, not people: skipped and counted. A
user brokered from an identity provider (`federatedIdentities`) without a password signs in through
that provider: rejected as `not_database_user`.
Password credentials (PBKDF2, argon2) become PHC strings Auth0 checks (`sources.hashes`).
"""

from __future__ import annotations

from typing import Final

from orchestrator.settings import SourceSettings
from orchestrator.sources.formats.base import (
    Converted,
    Mapped,
    MappingStats,
    Record,
    Skipped,
    Unmapped,
    User,
    copy_present,
    present,
    set_flag,
    set_names,
)
from orchestrator.sources.hashes import NONE, from_keycloak

_PROFILE: Final = {
    "id": "user_id",
    "email": "email",
    "firstName": "given_name",
    "lastName": "family_name",
}
#: Keycloak's role and group lists -> app_metadata keys.
_ACCESS: Final = {"realmRoles": "roles", "clientRoles": "client_roles", "groups": "groups"}
_USED: Final = frozenset(
    {
        *_PROFILE,
        *_ACCESS,
        "username",
        "emailVerified",
        "enabled",
        "attributes",
        "credentials",
        "federatedIdentities",
    }
)
_SERVICE_ACCOUNT: Final = "serviceAccountClientId"


def convert(record: Record, stats: MappingStats, settings: SourceSettings) -> Converted:
    """One Keycloak user as an import user."""
    if present(record.get(_SERVICE_ACCOUNT)):
        return Skipped("service_account")
    credential = from_keycloak(record.get("credentials"))
    federated = record.get("federatedIdentities")
    if credential.kind == NONE.kind and isinstance(federated, list) and federated:
        first = federated[0] if isinstance(federated[0], dict) else {}
        provider = first.get("identityProvider") or "an identity provider"
        return Unmapped(
            "not_database_user",
            "/federatedIdentities",
            f"a user of {provider} without a password: they sign in through {provider}; "
            "connect it in Auth0 instead",
        )
    user: User = {}
    copy_present(user, record, _PROFILE)
    set_names(user, record.get("firstName"), record.get("lastName"), record.get("username"))
    for source, target, invert in (
        ("emailVerified", "email_verified", False),
        ("enabled", "blocked", True),
    ):
        problem = set_flag(user, target, record.get(source), f"/{source}")
        if problem is not None:
            return problem
        if invert and target in user:
            user[target] = not user[target]
    attributes = record.get("attributes")
    if present(attributes):
        if not isinstance(attributes, dict):
            return Unmapped(
                "invalid_source_value", "/attributes", "attributes is not a JSON object"
            )
        if attributes:
            user["user_metadata"] = {key: _single(values) for key, values in attributes.items()}
            stats.to_user_metadata["attributes"] += 1
    access = {target: record[source] for source, target in _ACCESS.items() if record.get(source)}
    if access:
        user["app_metadata"] = access
    user.update(credential.fields)
    stats.drop(record, _USED)
    return Mapped(user, credential.kind)


def _single(values: object) -> object:
    """An attribute's value: Keycloak keeps a list even for one value."""
    if isinstance(values, list) and len(values) == 1:
        return values[0]
    return values


def recognise(record: Record) -> bool:
    return "credentials" in record or ("firstName" in record and "enabled" in record)
