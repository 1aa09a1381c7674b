"""Each source format's conversion of one record into an import user, and the export read as one.

The records are shaped as the sources write them (reference: sources.md); every test names what a
person migrating from that source would expect to arrive.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.errors import InputError
from orchestrator.settings import SourceSettings
from orchestrator.sources.formats import FORMATS, Export
from orchestrator.sources.formats.base import Mapped, MappingStats, Skipped, Unmapped

Record = dict[str, Any]


def convert(name: str, record: Record, **settings: Any) -> tuple[object, MappingStats]:
    stats = MappingStats()
    converter = FORMATS[name].convert
    assert converter is not None
    return converter(record, stats, SourceSettings(format=name, **settings)), stats


def user_of(name: str, record: Record, **settings: Any) -> dict[str, Any]:
    converted, _ = convert(name, record, **settings)
    assert isinstance(converted, Mapped), converted
    return converted.user


# -- Auth0 export ----------------------------------------------------------------------------------

AUTH0_USER: Record = {
    "user_id": "auth0|5f1a",
    "email": "ana@example.com",
    "email_verified": True,
    "name": "Ana",
    "created_at": "2020-01-01T00:00:00.000Z",
    "logins_count": 3,
    "identities": [{"provider": "auth0", "connection": "Username-Password-Authentication"}],
    "app_metadata": {"plan": "pro"},
}


def test_an_auth0_database_user_keeps_its_profile_and_loses_export_only_fields() -> None:
    user, stats = convert("auth0-export", AUTH0_USER)
    assert isinstance(user, Mapped)
    assert user.user == {
        "user_id": "auth0|5f1a",
        "email": "ana@example.com",
        "email_verified": True,
        "name": "Ana",
        "app_metadata": {"plan": "pro"},
    }
    assert stats.dropped == {"created_at": 1, "logins_count": 1, "identities": 1}


@pytest.mark.parametrize(
    ("user_id", "provider"),
    [("google-oauth2|1099", "google-oauth2"), ("samlp|acme|bob", "samlp")],
)
def test_a_social_or_enterprise_user_is_not_a_database_user(user_id: str, provider: str) -> None:
    converted, _ = convert("auth0-export", {**AUTH0_USER, "user_id": user_id})
    assert isinstance(converted, Unmapped)
    assert converted.reason == "not_database_user"
    assert provider in converted.message


def test_without_a_user_id_the_identity_names_the_provider() -> None:
    record = {"email": "a@example.com", "identities": [{"provider": "github", "connection": "x"}]}
    converted, _ = convert("auth0-export", record)
    assert isinstance(converted, Unmapped)
    assert "github" in converted.message


def test_only_connection_keeps_one_database_and_skips_the_others() -> None:
    legacy = {**AUTH0_USER, "identities": [{"provider": "auth0", "connection": "legacy-db"}]}
    kept, _ = convert("auth0-export", legacy, only_connection="legacy-db")
    skipped, _ = convert("auth0-export", AUTH0_USER, only_connection="legacy-db")
    assert isinstance(kept, Mapped)
    assert skipped == Skipped("other_connection")


def test_only_connection_needs_the_connection_in_the_export() -> None:
    record = {k: v for k, v in AUTH0_USER.items() if k != "identities"}
    converted, _ = convert("auth0-export", record, only_connection="db")
    assert isinstance(converted, Unmapped)
    assert converted.reason == "unknown_connection"


def test_an_auth0_csv_row_is_unescaped_typed_and_its_metadata_columns_nested() -> None:
    row = {
        "user_id": "'auth0|abc",
        "email": "'x@example.com",
        "email_verified": "true",
        "name": "''quoted' name",
        "user_metadata.country": "'PT",
        "user_metadata.empty": "",
        "identities[0].connection": "'db",
        "created_at": "2021-05-01T00:00:00.000Z",
    }
    user = user_of("auth0-export", row, only_connection="db")
    assert user == {
        "user_id": "auth0|abc",
        "email": "x@example.com",
        "email_verified": True,
        "name": "'quoted' name",
        "user_metadata": {"country": "PT"},
    }


def test_a_json_export_keeps_a_leading_quote_its_csv_escaping_would_have_added() -> None:
    # The NDJSON export escapes nothing: a name that starts with ' is the user's own.
    user = user_of("auth0-export", {**AUTH0_USER, "name": "'Tis Ó Briain"})
    assert user["name"] == "'Tis Ó Briain"
    assert user["email"] == AUTH0_USER["email"]


def test_a_csv_row_without_an_email_is_unescaped_by_its_other_cells() -> None:
    user = user_of("auth0-export", {"user_id": "'auth0|abc", "name": "'Ann"})
    assert user == {"user_id": "auth0|abc", "name": "Ann"}


def test_an_auth0_csv_boolean_that_is_not_one_is_reported() -> None:
    converted, _ = convert("auth0-export", {"email": "x@example.com", "blocked": "maybe"})
    assert isinstance(converted, Unmapped)
    assert (converted.reason, converted.path) == ("invalid_source_value", "/blocked")


# -- Firebase --------------------------------------------------------------------------------------

FIREBASE_USER: Record = {
    "localId": "fb-uid-1",
    "email": "ana@example.com",
    "emailVerified": True,
    "displayName": "Ana Lópes",
    "photoUrl": "https://example.com/a.png",
    "phoneNumber": "+15555550100",
    "disabled": True,
    "customAttributes": '{"role": "admin"}',
    "passwordHash": "c2VjcmV0",
    "salt": "c2FsdA==",
    "createdAt": "1600000000000",
    "providerUserInfo": [{"providerId": "password"}],
}


def test_a_firebase_user_maps_the_way_firebase_users_expect() -> None:
    converted, stats = convert("firebase", FIREBASE_USER)
    assert isinstance(converted, Mapped)
    assert converted.user == {
        "user_id": "fb-uid-1",
        "email": "ana@example.com",
        "email_verified": True,
        "name": "Ana Lópes",
        "picture": "https://example.com/a.png",
        "phone_number": "+15555550100",
        "blocked": True,
        "app_metadata": {"role": "admin"},
    }
    # Firebase's modified scrypt cannot be verified by Auth0: counted, never imported as a hash.
    assert converted.credential == "unsupported:firebase-scrypt"
    assert stats.dropped == {"createdAt": 1, "providerUserInfo": 1}


def test_firebase_custom_claims_must_be_a_json_object() -> None:
    converted, _ = convert("firebase", {**FIREBASE_USER, "customAttributes": "[1, 2]"})
    assert isinstance(converted, Unmapped)
    assert converted.path == "/customAttributes"


def test_a_firebase_user_without_a_password_has_none() -> None:
    converted, _ = convert("firebase", {"localId": "x", "email": "x@example.com"})
    assert isinstance(converted, Mapped)
    assert converted.credential == "none"


# -- Cognito ---------------------------------------------------------------------------------------


def cognito_entry(**changes: Any) -> Record:
    entry: Record = {
        "Username": "ana",
        "Attributes": [
            {"Name": "sub", "Value": "1b2c-uuid"},
            {"Name": "email", "Value": "ana@example.com"},
            {"Name": "email_verified", "Value": "true"},
            {"Name": "given_name", "Value": "Ana"},
            {"Name": "custom:plan", "Value": "pro"},
            {"Name": "locale", "Value": "pt-PT"},
        ],
        "UserCreateDate": "2021-01-01T00:00:00Z",
        "Enabled": True,
        "UserStatus": "CONFIRMED",
    }
    return {**entry, **changes}


def test_a_cognito_user_takes_its_attributes_by_name() -> None:
    converted, stats = convert("cognito", cognito_entry())
    assert isinstance(converted, Mapped)
    assert converted.user == {
        "user_id": "1b2c-uuid",
        "email": "ana@example.com",
        "email_verified": True,
        "given_name": "Ana",
        "user_metadata": {"plan": "pro", "locale": "pt-PT"},
    }
    assert stats.to_user_metadata == {"custom:plan": 1, "locale": 1}
    assert stats.dropped == {"UserCreateDate": 1}


def test_a_disabled_cognito_user_is_blocked_and_without_sub_the_username_is_the_id() -> None:
    attributes = [{"Name": "email", "Value": "b@example.com"}]
    user = user_of("cognito", cognito_entry(Enabled=False, Attributes=attributes))
    assert user == {"user_id": "ana", "email": "b@example.com", "blocked": True}


def test_a_federated_cognito_user_is_not_a_database_user() -> None:
    converted, _ = convert("cognito", cognito_entry(UserStatus="EXTERNAL_PROVIDER"))
    assert isinstance(converted, Unmapped)
    assert converted.reason == "not_database_user"


def test_a_cognito_console_csv_row_is_read_by_column() -> None:
    row = {
        "cognito:username": "ana",
        "email": "ana@example.com",
        "email_verified": "false",
        "phone_number": "",
        "phone_number_verified": "",
        "cognito:mfa_enabled": "false",
    }
    converted, stats = convert("cognito", row)
    assert isinstance(converted, Mapped)
    assert converted.user == {"user_id": "ana", "email": "ana@example.com", "email_verified": False}
    assert stats.dropped == {"cognito:mfa_enabled": 1}


# -- Keycloak --------------------------------------------------------------------------------------

KEYCLOAK_USER: Record = {
    "id": "kc-1",
    "createdTimestamp": 1600000000000,
    "username": "ana",
    "enabled": False,
    "emailVerified": True,
    "firstName": "Ana",
    "lastName": "Lópes",
    "email": "ana@example.com",
    "attributes": {"locale": ["pt"], "phones": ["1", "2"]},
    "credentials": [{"type": "password"}],
    "realmRoles": ["offline_access", "admin"],
    "groups": ["/staff"],
}


def test_a_keycloak_user_maps_names_roles_attributes_and_enabled() -> None:
    converted, stats = convert("keycloak", KEYCLOAK_USER)
    assert isinstance(converted, Mapped)
    assert converted.user == {
        "user_id": "kc-1",
        "email": "ana@example.com",
        "given_name": "Ana",
        "family_name": "Lópes",
        "name": "Ana Lópes",
        "username": "ana",
        "email_verified": True,
        "blocked": True,
        "user_metadata": {"locale": "pt", "phones": ["1", "2"]},
        "app_metadata": {"roles": ["offline_access", "admin"], "groups": ["/staff"]},
    }
    assert stats.dropped == {"createdTimestamp": 1}


def test_a_keycloak_username_that_is_the_email_is_left_out() -> None:
    user = user_of("keycloak", {**KEYCLOAK_USER, "username": "ana@example.com"})
    assert "username" not in user


def test_a_keycloak_service_account_is_skipped() -> None:
    converted, _ = convert("keycloak", {"id": "x", "serviceAccountClientId": "backend"})
    assert converted == Skipped("service_account")


# -- Django ----------------------------------------------------------------------------------------

DJANGO_USER: Record = {
    "model": "auth.user",
    "pk": 42,
    "fields": {
        "password": "!unusable-password-marker",
        "last_login": None,
        "is_superuser": False,
        "username": "ana",
        "first_name": "Ana",
        "last_name": "",
        "email": "ana@example.com",
        "is_staff": True,
        "is_active": False,
        "date_joined": "2020-01-01T00:00:00Z",
        "groups": [1, 3],
        "user_permissions": [],
        "phone": "+15555550100",
    },
}


def test_a_django_user_maps_pk_names_access_and_is_active() -> None:
    converted, stats = convert("django", DJANGO_USER)
    assert isinstance(converted, Mapped)
    assert converted.user == {
        "user_id": "42",
        "email": "ana@example.com",
        "given_name": "Ana",
        "name": "Ana",
        "username": "ana",
        "blocked": True,
        "app_metadata": {"is_staff": True, "groups": [1, 3]},
        "user_metadata": {"phone": "+15555550100"},
    }
    assert converted.credential == "none"  # Django's "!" marks an unusable password
    assert stats.to_user_metadata == {"phone": 1}
    assert set(stats.dropped) == {"date_joined", "user_permissions"}  # None is absent


def test_django_records_of_other_models_are_skipped() -> None:
    group = {"model": "auth.group", "pk": 1, "fields": {"name": "staff", "permissions": []}}
    converted, _ = convert("django", group)
    assert converted == Skipped("not_a_user_record")


# -- Supabase --------------------------------------------------------------------------------------

SUPABASE_ROW: Record = {
    "id": "8d2c-uuid",
    "aud": "authenticated",
    "email": "ana@example.com",
    "encrypted_password": "$2a$10$" + "a" * 53,
    "email_confirmed_at": "2023-01-02 03:04:05.123456+00",
    "phone": "15555550100",
    "phone_confirmed_at": None,
    "raw_app_meta_data": {"provider": "email", "providers": ["email"]},
    "raw_user_meta_data": {"full_name": "Ana Lópes", "avatar_url": "https://example.com/a.png"},
    "banned_until": None,
    "deleted_at": None,
    "is_anonymous": False,
    "created_at": "2023-01-01 00:00:00+00",
}


def test_a_supabase_row_maps_confirmations_phone_and_metadata() -> None:
    converted, stats = convert("supabase", SUPABASE_ROW)
    assert isinstance(converted, Mapped)
    assert converted.user == {
        "user_id": "8d2c-uuid",
        "email": "ana@example.com",
        "email_verified": True,
        "phone_number": "+15555550100",
        "phone_verified": False,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"full_name": "Ana Lópes", "avatar_url": "https://example.com/a.png"},
        "name": "Ana Lópes",
        "picture": "https://example.com/a.png",
        "password_hash": SUPABASE_ROW["encrypted_password"],
    }
    assert converted.credential == "bcrypt"
    assert stats.dropped == {"aud": 1, "created_at": 1}


def test_a_supabase_csv_row_reads_metadata_from_json_text_and_t_f_booleans() -> None:
    row = {
        **{k: ("" if v is None else str(v)) for k, v in SUPABASE_ROW.items()},
        "raw_app_meta_data": '{"provider": "email"}',
        "raw_user_meta_data": "{}",
        "is_anonymous": "f",
    }
    user = user_of("supabase", row)
    assert user["app_metadata"] == {"provider": "email"}
    assert "user_metadata" not in user


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"deleted_at": "2024-01-01 00:00:00+00"}, Skipped("deleted")),
        ({"is_anonymous": True}, Skipped("anonymous")),
    ],
)
def test_deleted_and_anonymous_supabase_users_are_skipped(
    changes: Record, expected: Skipped
) -> None:
    converted, _ = convert("supabase", {**SUPABASE_ROW, **changes})
    assert converted == expected


def test_a_supabase_ban_blocks_only_while_it_lasts() -> None:
    assert user_of("supabase", {**SUPABASE_ROW, "banned_until": "2999-01-01 00:00:00+00"})[
        "blocked"
    ]
    assert "blocked" not in user_of("supabase", {**SUPABASE_ROW, "banned_until": "2001-01-01"})
    converted, _ = convert("supabase", {**SUPABASE_ROW, "banned_until": "soon"})
    assert isinstance(converted, Unmapped)
    assert converted.path == "/banned_until"


def test_a_supabase_oauth_user_is_not_a_database_user() -> None:
    row = {**SUPABASE_ROW, "raw_app_meta_data": {"provider": "google"}}
    converted, _ = convert("supabase", row)
    assert isinstance(converted, Unmapped)
    assert converted.reason == "not_database_user"
    assert "google" in converted.message


# -- the export read as a format --------------------------------------------------------------------


def read(path: Path, name: str) -> list[object]:
    export = Export(str(path), SourceSettings(format=name))
    return [record.value for batch in export.batches() for record in batch]


def test_a_pretty_and_a_compact_firebase_file_stream_their_users(tmp_path: Path) -> None:
    users = [{"localId": str(i), "email": f"u{i}@example.com"} for i in range(3)]
    pretty = tmp_path / "pretty.json"
    pretty.write_bytes(orjson.dumps({"users": users}, option=orjson.OPT_INDENT_2))
    compact = tmp_path / "compact.json.gz"
    compact.write_bytes(gzip.compress(orjson.dumps({"users": users})))
    assert read(pretty, "firebase") == users
    assert read(compact, "firebase") == users


def test_a_keycloak_realm_export_reads_the_users_between_other_members(tmp_path: Path) -> None:
    users = [{"id": "1", "email": "a@example.com", "credentials": []}]
    realm = {"realm": "acme", "roles": {"realm": []}, "users": users, "clients": [{"id": "x"}]}
    path = tmp_path / "realm.json"
    path.write_bytes(orjson.dumps(realm, option=orjson.OPT_INDENT_2))
    assert read(path, "keycloak") == users


@pytest.mark.parametrize(
    ("records", "named", "wanted"),
    [
        ([{"model": "auth.user", "pk": 1, "fields": {}}], "import", "django"),
        ([{"localId": "1", "email": "a@example.com"}], "import", "firebase"),
        ([{"localId": "1", "email": "a@example.com"}], "django", "firebase"),
        (
            [{"email": "a@example.com", "identities": [], "logins_count": 1}],
            "import",
            "auth0-export",
        ),
        ([{"id": "1", "encrypted_password": "x", "email": "a@example.com"}], "import", "supabase"),
    ],
)
def test_users_plainly_of_another_format_name_the_from_to_use(
    tmp_path: Path, records: list[Record], named: str, wanted: str
) -> None:
    path = tmp_path / "users.json"
    path.write_bytes(orjson.dumps(records))
    with pytest.raises(InputError, match=f"use --from {wanted}$") as caught:
        read(path, named)
    assert "index 0" in str(caught.value)


def test_a_cognito_console_csv_is_read_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "cognito.csv"
    path.write_text("cognito:username,email,email_verified\nana,ana@example.com,true\n")
    assert read(path, "cognito") == [
        {"cognito:username": "ana", "email": "ana@example.com", "email_verified": "true"}
    ]


def test_any_csv_may_be_read_as_csv_whatever_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("cognito:username,email\nana,ana@example.com\n")
    assert len(read(path, "csv")) == 1


def test_a_csv_given_to_a_json_only_format_says_which_formats_read_csv(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("email,name\na@example.com,A\n")
    with pytest.raises(InputError, match="CSV") as caught:
        read(path, "firebase")
    assert "--from csv" in str(caught.value)


def test_a_firebase_object_without_users_names_its_members(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_bytes(orjson.dumps({"kind": "x", "accounts": []}))
    with pytest.raises(InputError, match="no 'users' member") as caught:
        read(path, "firebase")
    assert "'kind', 'accounts'" in str(caught.value)


@pytest.mark.parametrize(
    ("document", "wanted"),
    [
        ({"users": [{"localId": "1", "email": "a@example.com"}]}, "--from firebase"),
        ({"realm": "acme", "users": [{"id": "1", "credentials": []}]}, "--from keycloak"),
        # A member that is not a plain value before the users: found at the first record.
        ({"realm": "acme", "roles": {"realm": []}, "users": [{"id": "1", "credentials": []}]},
         "--from keycloak"),
        ({"Users": [{"Username": "a", "Attributes": []}]}, "--from cognito"),
    ],
)  # fmt: skip
def test_a_compact_users_object_given_as_the_import_format_names_the_from_to_use(
    tmp_path: Path, document: Record, wanted: str
) -> None:
    path = tmp_path / "compact.json"
    path.write_bytes(orjson.dumps(document))
    with pytest.raises(InputError) as caught:
        read(path, "import")
    assert str(caught.value).endswith(wanted)
