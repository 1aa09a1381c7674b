"""`--from cognito`: AWS Cognito users, as `aws cognito-idp list-users` writes them (`{"Users":
[{"Username", "Attributes": [{"Name", "Value"}], "Enabled", "UserStatus"}]}`) or as the console's
CSV (one column per attribute, `cognito:username` among them).

Attributes are taken by name: the standard ones the import knows (`email`, `name`, `given_name`,
`phone_number`, …), `sub` as the user_id (else the Username); the other standard attributes and
every `custom:` one go to user_metadata. `Enabled: false` blocks the user. Federated users
(`EXTERNAL_PROVIDER`) sign in through their provider, not with a password: they are rejected as
`not_database_user`. Cognito never exports password hashes: every user resets.
"""

from __future__ import annotations

from typing import Final

from orchestrator.settings import SourceSettings
from orchestrator.sources.formats.base import (
    Converted,
    Mapped,
    MappingStats,
    Record,
    Unmapped,
    User,
    present,
    set_flag,
)

#: Cognito attribute -> import field.
_PROFILE: Final = {
    "email": "email",
    "phone_number": "phone_number",
    "name": "name",
    "given_name": "given_name",
    "family_name": "family_name",
    "nickname": "nickname",
    "picture": "picture",
    "preferred_username": "username",
}
_FLAGS: Final = {"email_verified": "email_verified", "phone_number_verified": "phone_verified"}
#: Standard attributes kept in user_metadata under their own names.
_KEPT: Final = frozenset(
    {
        "middle_name", "profile", "website", "gender", "birthdate", "zoneinfo", "locale",
        "address",
    }
)  # fmt: skip
_CUSTOM: Final = "custom:"
#: Fields of a list-users entry (not attributes) that conversion reads.
_ENTRY_FIELDS: Final = frozenset({"Username", "Attributes", "Enabled", "UserStatus"})
_CSV_USERNAME: Final = "cognito:username"
FEDERATED: Final = "EXTERNAL_PROVIDER"


def convert(record: Record, stats: MappingStats, settings: SourceSettings) -> Converted:
    """One Cognito user (a list-users entry or a CSV row) as an import user."""
    if "Attributes" in record or "Username" in record:
        attributes = _attributes(record.get("Attributes"))
        if attributes is None:
            return Unmapped(
                "invalid_source_value",
                "/Attributes",
                "Attributes is not a list of {Name, Value} objects",
            )
        username = record.get("Username")
    else:  # a CSV row: the columns are the attributes
        attributes = {name: value for name, value in record.items() if present(value)}
        username = attributes.pop(_CSV_USERNAME, None)
    if record.get("UserStatus") == FEDERATED:
        return Unmapped(
            "not_database_user",
            "/UserStatus",
            "a federated user (EXTERNAL_PROVIDER): it signs in through its identity provider, "
            "not with a password; connect that provider in Auth0 instead",
        )
    if "Attributes" in record or "Username" in record:
        stats.drop(record, _ENTRY_FIELDS)
    user: User = {}
    user_id = attributes.pop("sub", None) or username
    if present(user_id):
        user["user_id"] = user_id
    for name, value in attributes.items():
        if name in _PROFILE:
            user[_PROFILE[name]] = value
        elif name in _FLAGS:
            problem = set_flag(user, _FLAGS[name], value, f"/Attributes/{name}")
            if problem is not None:
                return problem
        elif name.startswith(_CUSTOM) or name in _KEPT:
            key = name.removeprefix(_CUSTOM)
            user.setdefault("user_metadata", {})[key] = value  # type: ignore[index]
            stats.to_user_metadata[name] += 1
        else:
            stats.dropped[name] += 1
    enabled = record.get("Enabled")
    if enabled is False:
        user["blocked"] = True
    return Mapped(user)


def _attributes(value: object) -> dict[str, object] | None:
    """list-users' attributes as {name: value}; None when malformed."""
    if value is None:
        return {}
    if not isinstance(value, list):
        return None
    attributes: dict[str, object] = {}
    for item in value:  # eight or so per user, a million users: each lookup done once
        name = item.get("Name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            return None
        attribute = item.get("Value")
        if attribute is not None and attribute != "":  # present(), written out
            attributes[name] = attribute
    return attributes


def recognise(record: Record) -> bool:
    return ("Username" in record and "Attributes" in record) or _CSV_USERNAME in record
