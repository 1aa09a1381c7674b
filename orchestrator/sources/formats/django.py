"""`--from django`: `manage.py dumpdata` of the user model (`auth.user` or a custom one), as a JSON
array or JSON lines: `{"model": "auth.user", "pk": 1, "fields": {...}}` each.

`pk` becomes the user_id, `first_name`/`last_name` the given and family names (and the name),
`is_active: false` blocks the user, `is_staff`/`is_superuser` and the group ids go to
app_metadata. The username is kept unless it is the email. Fields of a custom user model that the
import does not know go to user_metadata. Records of other models in the dump are skipped.
The password (`pbkdf2_sha256$…`, `argon2$…`, `bcrypt$…`, …) is converted into what Auth0 checks
(`sources.hashes.from_django`); `!…` is no password.
"""

from __future__ import annotations

import re
from typing import Final

from orchestrator.settings import SourceSettings
from orchestrator.sources.formats.base import (
    Converted,
    Mapped,
    MappingStats,
    Record,
    Skipped,
    User,
    copy_present,
    present,
    set_flag,
    set_names,
)
from orchestrator.sources.hashes import NONE, from_django

_PROFILE: Final = {"email": "email", "first_name": "given_name", "last_name": "family_name"}
_ACCESS: Final = ("is_staff", "is_superuser", "groups")
#: Fields of auth.user with no place in the import.
_DROPPED: Final = frozenset({"last_login", "date_joined", "user_permissions"})
_USED: Final = frozenset({*_PROFILE, *_ACCESS, "username", "is_active", "password"})
#: Fields of a custom user model that may hold a secret: kept out of user_metadata.
_SECRET_LOOKING: Final = re.compile(r"(?i)pass|pwd|salt|hash|secret|token")


def convert(record: Record, stats: MappingStats, settings: SourceSettings) -> Converted:
    """One dumped user as an import user; a record of another model is skipped."""
    fields = record.get("fields")
    if not isinstance(fields, dict) or not _is_user(fields):
        return Skipped("not_a_user_record")
    user: User = {}
    pk = record.get("pk")
    if present(pk):
        user["user_id"] = str(pk)
    copy_present(user, fields, _PROFILE)
    set_names(user, fields.get("first_name"), fields.get("last_name"), fields.get("username"))
    problem = set_flag(user, "blocked", fields.get("is_active"), "/fields/is_active")
    if problem is not None:
        return problem
    if "blocked" in user:
        user["blocked"] = not user["blocked"]
    credential = from_django(fields["password"]) if isinstance(fields["password"], str) else NONE
    user.update(credential.fields)
    access = {name: fields[name] for name in _ACCESS if fields.get(name)}
    if access:
        user["app_metadata"] = access
    extra = {
        name: value
        for name, value in fields.items()
        if name not in _USED
        and name not in _DROPPED
        and present(value)
        and not _SECRET_LOOKING.search(name)  # never a hash into user_metadata: dropped, refused
    }
    if extra:
        user["user_metadata"] = extra
        stats.to_user_metadata.update(extra.keys())
    stats.drop(fields, _USED | extra.keys())
    return Mapped(user, credential.kind)


def _is_user(fields: Record) -> bool:
    """Whether a dumped record is a user: it has a password and an email or a username."""
    return "password" in fields and ("email" in fields or "username" in fields)


def recognise(record: Record) -> bool:
    return "model" in record and "fields" in record
