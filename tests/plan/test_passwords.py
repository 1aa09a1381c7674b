"""Credential coverage and the password policy: no plan loses a password silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bcrypt
import orjson
import pytest

from orchestrator.errors import ConfigError
from orchestrator.plan.passwords import USABLE_KINDS, credential_of
from orchestrator.plan.planner import ChunkLayout, PlanStats, count_only, plan_chunks
from orchestrator.settings import PlanSettings, SourceSettings
from orchestrator.sources.formats import Export
from orchestrator.sources.hashes import ALGORITHMS, NONE, Credential

BCRYPT = "$2b$10$" + "C" * 53
PBKDF2 = {
    "algorithm": "pbkdf2",
    "hash": {"value": "$pbkdf2-sha256$i=1000,l=32$c2FsdA$" + "A" * 43, "encoding": "utf8"},
}


def plan(
    tmp_path: Path, records: list[Any], **settings: Any
) -> tuple[PlanStats, list[dict[str, Any]]]:
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(records))
    plan_settings = PlanSettings(**settings)
    export = Export(str(path), plan_settings.source)
    layout = ChunkLayout(512_000, "orch-test")
    rejects = tmp_path / "rejects.ndjson"
    with rejects.open("wb") as out:
        stats = plan_chunks(
            export.batches(),
            plan_settings,
            layout,
            count_only(layout),
            rejects=out,
            where=export.reader.where,
        )
    return stats, [orjson.loads(line) for line in rejects.read_bytes().splitlines()]


IMPORT_USERS = [
    {"email": "a@example.com", "password_hash": BCRYPT},
    {"email": "b@example.com", "custom_password_hash": PBKDF2},
    {"email": "c@example.com"},
]


def test_every_plan_counts_its_users_by_credential_kind(tmp_path: Path) -> None:
    stats, _ = plan(tmp_path, IMPORT_USERS)
    summary = stats.as_json(512_000, chunks_written=False)
    assert summary["credentials"] == {"bcrypt": 1, "pbkdf2": 1, "none": 1}
    assert summary["without_password"] == 1


def test_the_import_format_only_reports_users_without_a_password(tmp_path: Path) -> None:
    stats, rejects = plan(tmp_path, IMPORT_USERS)
    assert (stats.users_accepted, rejects) == (3, [])


def test_require_passwords_rejects_users_without_a_usable_one(tmp_path: Path) -> None:
    stats, rejects = plan(tmp_path, IMPORT_USERS, passwords="require")
    assert stats.users_accepted == 2
    assert [r["reasons"][0]["reason"] for r in rejects] == ["no_password"]
    assert rejects[0]["user"] == IMPORT_USERS[2]


FIREBASE = {
    "users": [
        {"localId": "1", "email": "a@example.com", "passwordHash": "c2NyeXB0", "salt": "c2FsdA=="},
        {"localId": "2", "email": "b@example.com"},
    ]
}


def test_a_source_that_carries_passwords_refuses_users_that_would_arrive_without(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        plan(tmp_path, FIREBASE, source=SourceSettings(format="firebase"))  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("2 of 2 users of this --from firebase export would arrive")
    assert "none 1, unsupported:firebase-scrypt 1" in message
    assert "--allow-missing-passwords" in message
    assert "--require-passwords" in message


def test_allowed_missing_passwords_import_and_required_ones_reject_with_the_kind(
    tmp_path: Path,
) -> None:
    firebase = SourceSettings(format="firebase")
    allowed, _ = plan(tmp_path, FIREBASE, source=firebase, passwords="allow")  # type: ignore[arg-type]
    assert allowed.credentials == {"unsupported:firebase-scrypt": 1, "none": 1}
    required, rejects = plan(tmp_path, FIREBASE, source=firebase, passwords="require")  # type: ignore[arg-type]
    assert required.users_accepted == 0
    reasons = [r["reasons"][0] for r in rejects]
    assert [r["reason"] for r in reasons] == ["unsupported_password", "no_password"]
    assert "unsupported:firebase-scrypt" in reasons[0]["message"]


def test_a_field_that_looks_like_a_password_is_never_dropped_silently(tmp_path: Path) -> None:
    users = [{"email": "a@example.com", "legacy_password": BCRYPT}]
    with pytest.raises(ConfigError, match="'legacy_password' looks like a password"):
        plan(tmp_path, users, drop_unknown_fields=True)
    stats, _ = plan(tmp_path, users, drop_unknown_fields=True, passwords="without")
    assert stats.dropped_fields == {"legacy_password": 1}


def test_an_unmapped_password_column_is_not_dropped_silently(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("email,Password Digest\na@example.com,xyz\n")
    settings = PlanSettings(source=SourceSettings(format="csv"))
    export = Export(str(path), settings.source)
    layout = ChunkLayout(512_000, "orch-test")
    with pytest.raises(ConfigError, match="'Password Digest' looks like a password"):
        plan_chunks(export.batches(), settings, layout, count_only(layout), rejects=None, where=str)


def test_without_passwords_removes_every_hash(tmp_path: Path) -> None:
    stats, _ = plan(tmp_path, IMPORT_USERS, passwords="without")
    assert stats.credentials == {"none": 3}


# -- users already in the import shape -------------------------------------------------------------


def test_credential_of_import_users() -> None:
    made = bcrypt.hashpw(b"correct horse battery staple", bcrypt.gensalt(4)).decode()
    assert credential_of({"email": "a@b.co", "password_hash": made}) == Credential("bcrypt", {})
    for algorithm in ("pbkdf2", "argon2", "md5", "scrypt", "ldap", "hmac", "md4"):
        user = {"email": "a@b.co", "custom_password_hash": {"algorithm": algorithm, "hash": {}}}
        assert credential_of(user) == Credential(algorithm, {})
    assert credential_of({"email": "a@b.co"}) is NONE
    assert Credential("none", {}) == NONE
    assert frozenset(ALGORITHMS) == USABLE_KINDS


def _assert_unsupported(credential: Credential, kind: str, *secrets: str) -> None:
    assert credential.kind == f"unsupported:{kind}"
    assert credential.fields == {}
    assert credential.note
    for secret in secrets:
        assert secret not in credential.note


def test_credential_of_odd_import_users() -> None:
    malformed = credential_of({"email": "a@b.co", "password_hash": "md5:abc"})
    _assert_unsupported(malformed, "malformed-bcrypt", "md5:abc")
    odd = {"email": "a@b.co", "custom_password_hash": {"algorithm": "sha384", "hash": {}}}
    _assert_unsupported(credential_of(odd), "unknown")
    _assert_unsupported(credential_of({"custom_password_hash": "x"}), "unknown")
