"""What every source format shares: its description, a converted user or why a record is not
one, the counts of what conversion moved, dropped and skipped, and the small conversions formats
need (booleans from text, dotted paths, JSON held in a string).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import orjson

from orchestrator.settings import SourceSettings
from orchestrator.sources.reader import Shapes

_TRUE: Final = frozenset({"true", "1", "yes", "y", "t"})
_FALSE: Final = frozenset({"false", "0", "no", "n", "f"})


class Unmapped(NamedTuple):
    """A record that cannot become a user: rejected with this reason (a reject reason code), at
    `path` of the record, with a message saying what to do."""

    reason: str
    path: str
    message: str


class Skipped(NamedTuple):
    """A record that is deliberately not imported (another connection, a service account, a
    deleted row): counted by reason, not rejected."""

    reason: str


User = dict[str, object]
Record = dict[str, object]


class Mapped(NamedTuple):
    """A record converted into an import user, with the kind of credential it carries (`none`,
    a hash kind, or `unsupported:<kind>` for a hash Auth0 cannot verify, left out)."""

    user: User
    credential: str = "none"


Converted = Mapped | Unmapped | Skipped


@dataclass(slots=True)
class MappingStats:
    """What conversion did, over every record: the plan summary shows it.

    Attributes:
        to_user_metadata: source field -> users whose value was kept in user_metadata.
        dropped: source field -> users it was dropped from (no place in the import schema).
        skipped: reason -> records not imported on purpose.
    """

    to_user_metadata: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def drop(self, record: Mapping[str, object], used: Collection[str]) -> None:
        """Count the fields of `record` that conversion did not use (empty ones are absent)."""
        for name, value in record.items():
            if name not in used and present(value):
                self.dropped[name] += 1

    def as_json(self) -> dict[str, object]:
        return {
            "to_user_metadata": dict(self.to_user_metadata),
            "dropped": dict(self.dropped),
            "skipped": dict(self.skipped),
        }


Convert = Callable[[Record, MappingStats, SourceSettings], Converted]
"""Turns one source record (a JSON object, or a CSV row as {column: text}) into an import user."""


@dataclass(frozen=True, slots=True)
class SourceFormat:
    """One `--from` format: how its exports are shaped and how a record becomes a user.

    Attributes:
        name: the `--from` value.
        title: how people call the source ("a Firebase auth:export file").
        shapes: the shapes its exports take.
        convert: one record to an import user (None: the record is an import user already).
        recognise: whether a record is of this format, by fields no other format has (tells
            people which `--from` to use for a file given with the wrong one).
        columns_are_fields: CSV columns named like import fields are those fields (`--from csv`).
        carries_passwords: its exports can hold password hashes.
    """

    name: str
    title: str
    shapes: Shapes
    convert: Convert | None
    recognise: Callable[[Record], bool]
    columns_are_fields: bool = False
    carries_passwords: bool = False


def boolean(value: object) -> bool | None:
    """A boolean from JSON or from text ("true", "False", "1", "no", "t", ...); None if neither."""
    if value is True or value is False:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def json_object(value: object) -> dict[str, object] | None:
    """An object given as JSON or as a string holding JSON (metadata in a CSV cell or a string
    attribute); None if it is neither."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return decoded if isinstance(decoded, dict) else None
    return None


def present(value: object) -> bool:
    """Whether a source value counts as given: empty cells, "" and null are absent."""
    return value is not None and value != ""


def lookup(record: Mapping[str, object], path: str) -> object:
    """The value at `path` in a source record: a key as it is (a CSV column may hold dots), else a
    dotted path into nested objects; None when absent."""
    if path in record:
        return record[path]
    value: object = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def put(user: User, path: str, value: object) -> None:
    """Set `value` at a dotted import field (`user_metadata.plan`). The objects on the way are
    copied, never changed: they may be the source record's own, which a reject shows as read."""
    *parents, last = path.split(".")
    target = user
    for part in parents:
        child = target.get(part)
        child = dict(child) if isinstance(child, dict) else {}
        target[part] = child
        target = child
    target[last] = value


def unset(user: User, path: str) -> None:
    """Remove a dotted import field, if set (copying the objects on the way, as `put` does)."""
    *parents, last = path.split(".")
    target = user
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            return
        target[part] = target = dict(child)
    target.pop(last, None)


def copy_present(user: User, record: Mapping[str, object], names: Mapping[str, str]) -> None:
    """Copy the given values of `record` into `user`: source field -> import field."""
    for source, target in names.items():
        value = record.get(source)
        if present(value):
            user[target] = value


def set_flag(user: User, field_name: str, value: object, path: str) -> Unmapped | None:
    """Set a boolean import field from JSON or text; an Unmapped when the value is neither."""
    if not present(value):
        return None
    flag = boolean(value)
    if flag is None:
        return not_a_boolean(path, value)
    user[field_name] = flag
    return None


def not_a_boolean(path: str, value: object) -> Unmapped:
    return Unmapped(
        "invalid_source_value",
        path,
        f"{_shown(value)} is not a boolean (true/false, 1/0, yes/no): fix the export, or map "
        "the field elsewhere with --map",
    )


def set_names(user: User, given: object, family: object, username: object) -> None:
    """The display name made of the given and family names, and the username unless it is an
    email address (a source that logs in by email copies the email there)."""
    name = full_name(given, family)
    if name is not None:
        user["name"] = name
    if present(username) and not looks_like_email(username):
        user["username"] = username


def full_name(*parts: object) -> str | None:
    """The display name made of the given name parts (None when there are none)."""
    words = [part.strip() for part in parts if isinstance(part, str) and part.strip()]
    return " ".join(words) or None


def looks_like_email(value: object) -> bool:
    return isinstance(value, str) and "@" in value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
