"""Auth0 support's password-hash export joined to the users: by id, else by email within the user's
connection; unmatched rows listed without their hashes; the on-disk index deleted afterwards."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.errors import InputError
from orchestrator.sources.hashfile import SupportHashes

HASH = "$2b$10$" + "A" * 53
OTHER = "$2b$10$" + "B" * 53
DB = "Username-Password-Authentication"


def row(oid: str, email: str | None = None, **extra: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "_id": {"$oid": oid},
        "email_verified": False,
        "passwordHash": HASH,
        "password_set_date": {"$date": "2019-12-06T18:36:12.412Z"},
        "tenant": "acme",
        "connection": DB,
        "_tmp_is_unique": True,
    }
    if email is not None:
        line["email"] = email
    return {**line, **extra}


def write(path: Path, rows: list[dict[str, Any]], *, compress: bool = False) -> str:
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    path.write_bytes(gzip.compress(data) if compress else data)
    return str(path)


def test_a_row_matches_its_user_by_oid_or_alt_id_with_or_without_the_prefix(
    tmp_path: Path,
) -> None:
    rows = [row("5dea01", "a@example.com"), row("5dea02", alt_id="euclid", passwordHash=OTHER)]
    hashes = SupportHashes(write(tmp_path / "h.ndjson", rows))
    try:
        assert hashes.find("auth0|5dea01", None, None) == HASH
        assert hashes.find("5dea01", None, None) == HASH  # an id already stripped of auth0|
        assert hashes.find("auth0|euclid", None, None) == OTHER
        assert hashes.find("auth0|5dea02", None, None) is None  # alt_id wins over _id
        assert hashes.counts.matched == 2
    finally:
        hashes.close()


def test_a_row_without_a_matching_id_matches_by_email_also_from_identifiers(
    tmp_path: Path,
) -> None:
    identifiers = [{"type": "email", "value": "Bea@Example.com", "verified": False}]
    rows = [row("1", "Ana@Example.com"), row("2", identifiers=identifiers)]
    hashes = SupportHashes(write(tmp_path / "h.ndjson.gz", rows, compress=True))
    try:
        assert hashes.find("auth0|other", "ana@example.COM", DB) == HASH
        assert hashes.find(None, "bea@example.com", None) == HASH
        assert hashes.find(None, "nobody@example.com", None) is None
    finally:
        hashes.close()


def test_only_the_rows_of_the_kept_connection_are_joined(tmp_path: Path) -> None:
    rows = [row("1", "a@example.com"), row("2", "b@example.com", connection="legacy-db")]
    hashes = SupportHashes(write(tmp_path / "h.ndjson", rows), only_connection="legacy-db")
    try:
        assert hashes.find("auth0|1", "a@example.com", None) is None
        assert hashes.find("auth0|2", None, None) == HASH
        assert (hashes.counts.rows, hashes.counts.other_connection) == (1, 1)
    finally:
        hashes.close()


def test_an_email_in_several_connections_needs_the_users_connection(tmp_path: Path) -> None:
    rows = [row("1", "a@example.com"), row("2", "a@example.com", connection="legacy-db")]
    hashes = SupportHashes(write(tmp_path / "h.ndjson", rows))
    try:
        assert hashes.find(None, "a@example.com", None) is None
        assert hashes.counts.ambiguous_email == 1
        assert hashes.find(None, "a@example.com", "legacy-db") == HASH
    finally:
        hashes.close()


def test_unmatched_rows_are_listed_privately_and_without_their_hashes(tmp_path: Path) -> None:
    rows = [row("1", "a@example.com"), row("2", "ghost@example.com"), {"_id": {"$oid": "3"}}]
    hashes = SupportHashes(write(tmp_path / "h.ndjson", rows))
    listed = tmp_path / "unmatched-hashes.ndjson"
    try:
        hashes.find("auth0|1", None, None)
        assert hashes.write_unmatched(listed) == 1
    finally:
        hashes.close()
    assert stat.S_IMODE(os.stat(listed).st_mode) == 0o600
    text = listed.read_bytes()
    assert orjson.loads(text) == {
        "line": 2,
        "user_id": "auth0|2",
        "email": "ghost@example.com",
        "connection": DB,
    }
    assert b"$2b$" not in text
    assert hashes.counts.as_json() == {
        "rows": 2,
        "matched": 1,
        "unmatched": 1,
        "other_connection": 0,
        "unusable": 1,
        "ambiguous_email": 0,
    }


def test_the_index_holding_the_hashes_is_deleted_when_closed(tmp_path: Path) -> None:
    hashes = SupportHashes(write(tmp_path / "h.ndjson", [row("1")]))
    directory = Path(hashes._directory.name)  # the index's place, to see it go
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    hashes.close()
    assert not directory.exists()


def test_a_malformed_hash_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "h.ndjson"
    path.write_bytes(orjson.dumps(row("1")) + b"\n{not json\n")
    with pytest.raises(InputError, match=r"h\.ndjson, line 2: invalid JSON"):
        SupportHashes(str(path))
