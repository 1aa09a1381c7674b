"""`--from supabase`: rows of Supabase's `auth.users` (GoTrue), as a JSON array, NDJSON or CSV (what
`psql \\copy`, the dashboard or a script writes).

`id` becomes the user_id; `email_confirmed_at` and `phone_confirmed_at` set email_verified and
phone_verified; `phone` (stored without its `+`) becomes an E.164 phone_number;
`raw_user_meta_data` and `raw_app_meta_data` (objects, or JSON text in CSV) become user_metadata and
app_metadata, with `full_name`/`name` and `avatar_url` also as name and picture. A ban still in
force (`banned_until`) blocks the user. Deleted and anonymous users are skipped and counted; users
of an OAuth provider are rejected as `not_database_user`. `encrypted_password` (bcrypt) becomes
the password_hash (cost 10) or a custom bcrypt hash (other costs, `$2y$`).
"""

from __future__ import annotations

from datetime import UTC, datetime
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
    boolean,
    json_object,
    present,
)
from orchestrator.sources.hashes import NONE, from_bcrypt

#: Providers whose users have a password (or a phone OTP) in GoTrue itself.
_OWN_PROVIDERS: Final = frozenset({"email", "phone"})
_METADATA: Final = {"raw_user_meta_data": "user_metadata", "raw_app_meta_data": "app_metadata"}
_USED: Final = frozenset(
    {
        "id", "email", "email_confirmed_at", "phone", "phone_confirmed_at", "banned_until",
        "deleted_at", "is_anonymous", "encrypted_password", *_METADATA,
    }
)  # fmt: skip


def convert(record: Record, stats: MappingStats, settings: SourceSettings) -> Converted:
    """One auth.users row as an import user."""
    if present(record.get("deleted_at")):
        return Skipped("deleted")
    if boolean(record.get("is_anonymous")):
        return Skipped("anonymous")
    user: User = {}
    for source, target in (("id", "user_id"), ("email", "email")):
        if present(record.get(source)):
            user[target] = record[source]
    if present(record.get("email")):
        user["email_verified"] = present(record.get("email_confirmed_at"))
    phone = record.get("phone")
    if present(phone):
        user["phone_number"] = phone if str(phone).startswith("+") else f"+{phone}"
        user["phone_verified"] = present(record.get("phone_confirmed_at"))
    for source, target in _METADATA.items():
        value = record.get(source)
        if not present(value):
            continue
        metadata = json_object(value)
        if metadata is None:
            return Unmapped("invalid_source_value", f"/{source}", f"{source} is not a JSON object")
        if metadata:
            user[target] = metadata
    app = user.get("app_metadata")
    provider = app.get("provider") if isinstance(app, dict) else None
    if isinstance(provider, str) and provider not in _OWN_PROVIDERS:
        return Unmapped(
            "not_database_user",
            "/raw_app_meta_data/provider",
            f"a {provider} user: it signs in through {provider}, not with a password; connect "
            f"{provider} in Auth0 instead",
        )
    profile = user.get("user_metadata")
    if isinstance(profile, dict):
        name = profile.get("full_name") or profile.get("name")
        if isinstance(name, str) and name:
            user["name"] = name
        if isinstance(profile.get("avatar_url"), str) and profile["avatar_url"]:
            user["picture"] = profile["avatar_url"]
    banned = _banned(record.get("banned_until"))
    if banned is None:
        return Unmapped(
            "invalid_source_value",
            "/banned_until",
            "banned_until is not a timestamp (ISO 8601, as auth.users stores it)",
        )
    if banned:
        user["blocked"] = True
    password = record.get("encrypted_password")
    credential = from_bcrypt(password) if isinstance(password, str) else NONE
    user.update(credential.fields)
    stats.drop(record, _USED)
    return Mapped(user, credential.kind)


def _banned(value: object) -> bool | None:
    """Whether a ban is still in force now; None when the value is not a timestamp."""
    if not present(value):
        return False
    try:
        until = datetime.fromisoformat(str(value).replace(" ", "T", 1))
    except ValueError:
        return None
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return until > datetime.now(UTC)


def recognise(record: Record) -> bool:
    return "encrypted_password" in record or "raw_user_meta_data" in record
