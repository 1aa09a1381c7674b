"""`--from auth0-export`: Auth0's own users export (NDJSON or CSV, gzipped or not).

Only database users (`auth0|…`) can move into a database connection: the others (`google-oauth2|…`,
`samlp|…`) are rejected as `not_database_user`, naming their provider, since they would arrive as
password users who never had a password. Export-only fields (`created_at`, `logins_count`, …) are
dropped and counted. The CSV export escapes every string against CSV injection (`'` before it):
that quote is taken off again. Metadata arrives whole (NDJSON) or as single named columns
(`user_metadata.country`, CSV).
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
    json_object,
    present,
    put,
    set_flag,
)

#: Profile fields the export and the import share, copied as they are.
_PROFILE: Final = (
    "email", "username", "given_name", "family_name", "name", "nickname", "picture",
    "phone_number",
)  # fmt: skip
_FLAGS: Final = ("email_verified", "phone_verified", "blocked")
_METADATA: Final = ("app_metadata", "user_metadata")
#: The export's fields that have an import field of the same name.
_IMPORTED: Final = frozenset({"user_id", *_PROFILE, *_FLAGS, *_METADATA})
DATABASE_PROVIDER: Final = "auth0"
#: Where a CSV export names a user's connection.
_CONNECTION_COLUMN: Final = "identities[0].connection"


def convert(record: Record, stats: MappingStats, settings: SourceSettings) -> Converted:
    """One exported user as an import user, or why it is not one."""
    if _escaped(record):
        record = {name: unescape(value) for name, value in record.items()}
    only_connection = settings.only_connection
    connection = connection_of(record)
    if only_connection is not None and connection not in (None, only_connection):
        return Skipped("other_connection")
    provider = _provider(record)
    if provider is not None and provider != DATABASE_PROVIDER:
        return Unmapped(
            "not_database_user",
            "/user_id",
            f"a {provider} user: only database users (auth0|...) can be imported into a database "
            f"connection; they sign in with {provider} again instead",
        )
    if only_connection is not None and connection is None:
        return Unmapped(
            "unknown_connection",
            "/identities",
            "the user's connection is not in the export (identities[0].connection): export "
            "the identities field, or drop --only-connection",
        )
    user: User = {}
    user_id = record.get("user_id")
    if present(user_id):
        user["user_id"] = user_id
    for name in _PROFILE:
        value = record.get(name)
        if present(value):
            user[name] = value
    for name in _FLAGS:
        if name in record:
            problem = set_flag(user, name, record[name], f"/{name}")
            if problem is not None:
                return problem
    for name in _METADATA:
        if name in record and present(record[name]):
            metadata = json_object(record[name])
            if metadata is None:
                return Unmapped("invalid_source_value", f"/{name}", f"{name} is not a JSON object")
            user[name] = metadata
    # One pass over the rest: metadata columns of a CSV export (`user_metadata.country`) go in,
    # the fields with no place in the import (created_at, logins_count, ...) are counted out.
    dropped = stats.dropped
    for name, value in record.items():
        if name in _IMPORTED:
            continue
        head, dot, rest = name.partition(".")
        if dot and head in _METADATA and rest:
            if present(value):
                put(user, name, value)
        elif present(value):
            dropped[name] += 1
    return Mapped(user)


def _escaped(record: Record) -> bool:
    """Whether the record comes from a CSV export, which puts `'` before every string: its email
    says so, and a record without one is looked at whole."""
    email = record.get("email")
    if email is not None:
        return type(email) is str and email[:1] == "'"
    return any(type(value) is str and value[:1] == "'" for value in record.values())


def unescape(value: object) -> object:
    """A CSV export's cell without the `'` Auth0 puts before every string."""
    if type(value) is str and value[:1] == "'":
        return value[1:]
    return value


def _provider(record: Record) -> str | None:
    """The identity provider a user signs in with: its user_id's prefix, else its identity's."""
    user_id = record.get("user_id")
    if isinstance(user_id, str) and "|" in user_id:
        return user_id.split("|", 1)[0]
    identities = record.get("identities")
    if isinstance(identities, list) and identities and isinstance(identities[0], dict):
        provider = identities[0].get("provider")
        return provider if isinstance(provider, str) else None
    provider = record.get("identities[0].provider")
    return provider if isinstance(provider, str) and provider else None


def connection_of(record: Record) -> str | None:
    """The connection an exported user belongs to, when the export says (identities)."""
    identities = record.get("identities")
    if isinstance(identities, list) and identities and isinstance(identities[0], dict):
        connection = identities[0].get("connection")
        return connection if isinstance(connection, str) else None
    connection = record.get(_CONNECTION_COLUMN)
    return connection if isinstance(connection, str) and connection else None


def recognise(record: Record) -> bool:
    """An exported user: `identities` or export-only fields beside an email."""
    return "email" in record and ("identities" in record or "logins_count" in record)
