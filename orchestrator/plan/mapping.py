"""From a source record to an import user: the format's conversion, then the `--map` file's fields
and constants over it.

A mapping names import fields (dotted into app_metadata, user_metadata or custom_password_hash) and,
for each, the source field or column that fills it (dotted paths reach into JSON objects) or a
constant. Text from a CSV becomes the schema's type for boolean fields, and empty cells are absent.
A mapping that names an unknown import field is refused when read; one whose source field no record
has is refused when the pass ends (a CSV's header tells at its first row).
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Final

from orchestrator.errors import ConfigError
from orchestrator.plan.passwords import credential_of
from orchestrator.plan.schema import ALLOWED_FIELDS, BOOL_FIELDS
from orchestrator.settings import SourceSettings
from orchestrator.sources.formats import FORMATS, auth0
from orchestrator.sources.formats.base import (
    Converted,
    Mapped,
    MappingStats,
    Record,
    Unmapped,
    User,
    boolean,
    json_object,
    lookup,
    not_a_boolean,
    present,
    put,
    unset,
)
from orchestrator.sources.hashes import from_support_hash
from orchestrator.sources.hashfile import SupportHashes

#: Import fields a mapping may reach into with a dotted name.
OBJECT_FIELDS: Final = frozenset({"app_metadata", "user_metadata", "custom_password_hash"})
NO_CREDENTIAL: Final = Mapped({}).credential
NOT_AN_OBJECT: Final = Unmapped("not_an_object", "", "the entry is not a JSON object")


def read_mapping(path: Path) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, object], ...]]:
    """The `[fields]` and `[constants]` of a mapping file (TOML), checked.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or names an unknown import field.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--map {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--map {path}: not a valid TOML file ({exc})") from None
    unknown = sorted(set(document) - {"fields", "constants"})
    if unknown:
        raise ConfigError(
            f"--map {path}: unknown table [{unknown[0]}]; a mapping has [fields] and [constants]"
        )
    fields: list[tuple[str, str]] = []
    for target, source in _flatten(document.get("fields", {})):
        if not isinstance(source, str):
            raise ConfigError(
                f"--map {path}: [fields] {target} = {source!r}: a field is mapped from the name "
                'of a source field or column (a string; "" leaves it out)'
            )
        fields.append((target, source))
    constants = tuple(_flatten(document.get("constants", {})))
    for target, _ in (*fields, *constants):
        check_target(target, f"--map {path}")
    return tuple(fields), constants


def _flatten(table: object, prefix: str = "") -> list[tuple[str, object]]:
    """A TOML table as (dotted import field, value) pairs: `user_metadata.plan = "x"` and
    `[fields.user_metadata] plan = "x"` are the same; an object's own keys are flattened only
    under the objects a mapping may reach into."""
    if not isinstance(table, dict):
        return []
    pairs: list[tuple[str, object]] = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name.split(".")[0] in OBJECT_FIELDS:
            pairs.extend(_flatten(value, name + "."))
        else:
            pairs.append((name, value))
    return pairs


def check_target(target: str, where: str) -> None:
    """Refuse an import field a mapping cannot fill.

    Raises:
        ConfigError: naming it and what may be named instead.
    """
    top, dot, rest = target.partition(".")
    if top in ALLOWED_FIELDS and (not dot or (top in OBJECT_FIELDS and rest)):
        return
    raise ConfigError(
        f"{where}: {target!r} is not an import field; name one of {', '.join(sorted(ALLOWED_FIELDS))}"
        " (dotted only under app_metadata, user_metadata and custom_password_hash)"
    )


class Mapper:
    """Converts each record of an export into an import user, counting what it moved and dropped.

    Args:
        settings: the format and the mapping.

    Raises:
        ConfigError: the mapping names an unknown import field.
    """

    def __init__(self, settings: SourceSettings) -> None:
        for target, _ in (*settings.fields, *settings.constants):
            check_target(target, "the mapping")
        self._settings = settings
        self._format = FORMATS[settings.format]
        self._convert = self._format.convert
        self._fields = settings.fields
        self._constants = settings.constants
        self._unseen = {source for _, source in settings.fields if source}
        #: Source fields a mapping names: not counted as dropped.
        self._mapped_sources = frozenset(self._unseen)
        self._header_checked = False
        self.stats = MappingStats()
        self._hashes: SupportHashes | None = None
        if settings.password_hashes is not None:
            self._hashes = SupportHashes(
                settings.password_hashes, only_connection=settings.only_connection
            )

    def __call__(self, value: object) -> Converted:
        """The record `value` as an import user, or why it is not one."""
        if type(value) is not dict:
            return NOT_AN_OBJECT
        record: Record = value
        if self._format.columns_are_fields:
            converted: Converted = self._columns(record)
        elif self._convert is None:
            converted = Mapped(dict(record))
        else:
            converted = self._convert(record, self.stats, self._settings)
        if type(converted) is not Mapped:
            return converted
        user = converted.user
        for target, constant in self._constants:
            put(user, target, copy.deepcopy(constant))
        for target, source in self._fields:
            problem = self._fill(user, record, target, source)
            if problem is not None:
                return problem
        if converted.credential == NO_CREDENTIAL:
            if _carries_a_hash(user):
                return Mapped(user, credential_of(user).kind)  # a hash the mapping brought
            if self._hashes is not None:
                return self._join(record, user)
        return converted

    def _join(self, record: Record, user: User) -> Mapped:
        """The user with its hash from the support export, when a row has it."""
        assert self._hashes is not None
        connection = self._settings.only_connection or auth0.connection_of(record)
        found = self._hashes.find(user.get("user_id"), user.get("email"), connection)
        if found is None:
            return Mapped(user)
        credential = from_support_hash(found)
        user.update(credential.fields)
        return Mapped(user, credential.kind)

    def _columns(self, row: Record) -> Converted:
        """A CSV row whose columns named like import fields are those fields."""
        if not self._header_checked:
            self._check_header(row)
        user: User = {}
        for column, cell in row.items():
            if not present(cell):
                continue
            top, dot, _ = column.partition(".")
            if top in ALLOWED_FIELDS and (not dot or top in OBJECT_FIELDS):
                problem = self._fill(user, row, column, column)
                if problem is not None:
                    return problem
            elif column not in self._mapped_sources:
                self.stats.dropped[column] += 1
        return Mapped(user)

    def _check_header(self, row: Record) -> None:
        """A CSV's columns are known at its first row: a mapped column must be one of them."""
        self._header_checked = True
        missing = sorted(source for source in self._unseen if source not in row)
        if missing:
            raise ConfigError(
                f"the mapping names the column {missing[0]!r}, which the CSV header does not "
                f"have (its columns: {', '.join(list(row)[:12])}); fix the --map file"
            )

    def _fill(self, user: User, record: Record, target: str, source: str) -> Unmapped | None:
        """Set `target` from the record's `source` (absent stays absent; "" leaves it out)."""
        if not source:
            unset(user, target)
            return None
        value = lookup(record, source)
        if not present(value):
            return None
        self._unseen.discard(source)
        if target in BOOL_FIELDS:
            flag = boolean(value)
            if flag is None:
                return not_a_boolean(f"/{source}", value)
            value = flag
        elif target in OBJECT_FIELDS:
            decoded = json_object(value)
            if decoded is None:
                return Unmapped(
                    "invalid_source_value", f"/{source}", f"{source} is not a JSON object"
                )
            value = decoded
        put(user, target, value)
        return None

    def finish(self, unmatched_hashes: Path | None = None) -> None:
        """Close the pass: list the hash rows no user matched (in `unmatched_hashes`, when
        given), and refuse a mapping whose source field no record had.

        Raises:
            ConfigError: naming the first such field.
        """
        if self._hashes is not None:
            if unmatched_hashes is not None:
                self._hashes.write_unmatched(unmatched_hashes)
            self.close()
        if self._unseen:
            source = min(self._unseen)
            target = next(t for t, s in self._fields if s == source)
            raise ConfigError(
                f"the mapping fills {target} from {source!r}, which no record of the export has: "
                "check the name (dotted paths reach into objects) and fix the --map file"
            )

    def close(self) -> None:
        """Delete the hash index, if any (it holds every hash); the counts stay."""
        if self._hashes is not None:
            self._hashes.close()

    def summary(self) -> dict[str, object]:
        """How the export was read: its format and what conversion moved, dropped and skipped."""
        summary: dict[str, object] = {"format": self._settings.format, **self.stats.as_json()}
        if self._hashes is not None:
            summary["password_hashes"] = self._hashes.counts.as_json()
        return summary


def _carries_a_hash(user: User) -> bool:
    return "password_hash" in user or "custom_password_hash" in user


def mapper_for(settings: SourceSettings) -> Mapper | None:
    """The mapper an export needs: None for the import format read as it is (the fast path)."""
    return Mapper(settings) if settings.mapped else None
