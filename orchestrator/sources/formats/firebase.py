"""`--from firebase`: a Firebase Authentication export (`firebase auth:export users.json
--format=json`): one JSON object `{"users": [...]}`, pretty-printed or compact.

`localId` becomes the user_id, `displayName` the name, `photoUrl` the picture, `disabled` blocks the
user and `customAttributes` (a JSON string of custom claims) becomes app_metadata. Firebase's
password hashes use its own modified scrypt, which Auth0 cannot verify: such users are counted as
`unsupported:firebase-scrypt` and imported without a password (they reset it, or a custom-database
connection migrates them lazily), never with a hash that looks right and cannot match.
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
    copy_present,
    json_object,
    present,
    set_flag,
)
from orchestrator.sources.hashes import from_firebase

_PROFILE: Final = {
    "localId": "user_id",
    "email": "email",
    "displayName": "name",
    "photoUrl": "picture",
    "phoneNumber": "phone_number",
}
_USED: Final = frozenset({*_PROFILE, "emailVerified", "disabled", "customAttributes"})
#: What Firebase's scrypt needs besides the hash: none of it has a place in Auth0's import.
_PASSWORD_FIELDS: Final = frozenset({"passwordHash", "salt"})


def convert(record: Record, stats: MappingStats, settings: SourceSettings) -> Converted:
    """One Firebase user as an import user."""
    user: User = {}
    copy_present(user, record, _PROFILE)
    for source, target in (("emailVerified", "email_verified"), ("disabled", "blocked")):
        problem = set_flag(user, target, record.get(source), f"/{source}")
        if problem is not None:
            return problem
    claims = record.get("customAttributes")
    if present(claims):
        decoded = json_object(claims)
        if decoded is None:
            return Unmapped(
                "invalid_source_value",
                "/customAttributes",
                "customAttributes is not a JSON object (Firebase keeps custom claims as a JSON "
                "string of an object)",
            )
        if decoded:
            user["app_metadata"] = decoded
    stats.drop(record, _USED | _PASSWORD_FIELDS)
    return Mapped(user, from_firebase(record).kind)


def recognise(record: Record) -> bool:
    return "localId" in record
