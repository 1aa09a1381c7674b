"""The source formats `--from` names, and an export read as one of them.

Each format module turns one record of its exports into an import user (`convert`); this package
knows them all, reads an export with the shapes its format takes, and refuses, with the `--from`
to use instead, an export whose first record plainly belongs to another format.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Final

from orchestrator.errors import InputError
from orchestrator.settings import SOURCE_FORMATS, SourceSettings
from orchestrator.sources.formats import (
    auth0,
    cognito,
    csvfile,
    django,
    firebase,
    keycloak,
    supabase,
)
from orchestrator.sources.formats.base import SourceFormat
from orchestrator.sources.reader import ExportReader, Shapes
from orchestrator.sources.records import SourceRecord


def _never(record: object) -> bool:
    return False


FORMATS: Final[dict[str, SourceFormat]] = {
    format.name: format
    for format in (
        SourceFormat(
            "import",
            "the Auth0 import format",
            Shapes(),
            None,
            _never,
        ),
        SourceFormat(
            "auth0-export",
            "an Auth0 users export",
            Shapes(csv=True, description="--from auth0-export (NDJSON or CSV)"),
            auth0.convert,
            auth0.recognise,
            carries_passwords=True,
        ),
        SourceFormat(
            "firebase",
            "a Firebase auth:export file",
            Shapes(lines=False, members=frozenset({"users"}), description="--from firebase"),
            firebase.convert,
            firebase.recognise,
            carries_passwords=True,
        ),
        SourceFormat(
            "cognito",
            "a Cognito list-users export",
            Shapes(
                lines=False,
                members=frozenset({"Users"}),
                csv=True,
                description="--from cognito (list-users JSON or the console's CSV)",
            ),
            cognito.convert,
            cognito.recognise,
        ),
        SourceFormat(
            "keycloak",
            "a Keycloak realm export",
            Shapes(lines=False, members=frozenset({"users"}), description="--from keycloak"),
            keycloak.convert,
            keycloak.recognise,
            carries_passwords=True,
        ),
        SourceFormat(
            "django",
            "a Django dumpdata of the user model",
            Shapes(description="--from django (dumpdata as JSON or JSON lines)"),
            django.convert,
            django.recognise,
            carries_passwords=True,
        ),
        SourceFormat(
            "supabase",
            "rows of Supabase's auth.users",
            Shapes(csv=True, description="--from supabase (JSON, NDJSON or CSV)"),
            supabase.convert,
            supabase.recognise,
            carries_passwords=True,
        ),
        SourceFormat(
            "csv",
            "a CSV with a header row",
            Shapes(arrays=False, lines=False, csv=True, description="--from csv"),
            None,
            csvfile.recognise,
            columns_are_fields=True,
        ),
    )
}
assert tuple(FORMATS) == SOURCE_FORMATS, "settings.SOURCE_FORMATS names every format, in order"


class Export:
    """An export read as one source format.

    Attributes:
        format: the format it is read as.
        reader: the reader (its shape, size, fingerprint and `where` once read).
    """

    def __init__(self, source: str, settings: SourceSettings, *, fingerprint: bool = True) -> None:
        """Prepare to read `source` (a path or ``-``) as `settings.format`.

        Raises:
            InputError: the path cannot be read.
        """
        self.format = FORMATS[settings.format]
        self.reader = ExportReader(source, fingerprint=fingerprint, accepts=self.format.shapes)

    def batches(self) -> Generator[list[SourceRecord], None, None]:
        """The export's records, in order, many per batch; the first is checked to be of this
        format. Single use.

        Raises:
            InputError: the export is malformed, or plainly of another format.
        """
        batches = self.reader.batches()
        for batch in batches:
            if batch:
                self._check(batch[0])
                yield batch
                break
        yield from batches

    def _check(self, first: SourceRecord) -> None:
        record = first.value
        if not isinstance(record, dict) or self.format.recognise(record):
            return
        for member in ("users", "Users"):
            if isinstance(record.get(member), list) and not self.format.shapes.members:
                users = record[member]
                inner = users[0] if users and isinstance(users[0], dict) else {}
                named = [
                    f.name for f in FORMATS.values() if f.shapes.members and f.recognise(inner)
                ]
                use = f"--from {named[0]}" if named else "--from firebase, cognito or keycloak"
                raise InputError(
                    f"the input is one JSON object whose {member!r} member holds the users, "
                    f"which {self.format.title} does not have: use {use}",
                    path=self.reader.label,
                    where=self.reader.where(first.position),
                )
        if self.format.columns_are_fields:
            return  # any CSV may be mapped
        for other in FORMATS.values():
            if other is not self.format and other.recognise(record):
                raise InputError(
                    f"the users look like {other.title}, not {self.format.title}: use "
                    f"--from {other.name}",
                    path=self.reader.label,
                    where=self.reader.where(first.position),
                )
