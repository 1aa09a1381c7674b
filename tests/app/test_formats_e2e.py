"""Every `--from` format end to end: a sample export of sample_data/ through the real CLI process
into the sandbox, then the fields that arrived in the sandbox's users, as each format promises them.

The samples and what each import gives (accepted, rejected and skipped, by reason) come from
sample_data/sources.py; sources.expected.json holds the counts. These tests read the sample files
themselves to know what each user should look like once imported.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.sandbox import DATABASE_CONNECTION_ID, DATABASE_CONNECTION_NAME, SandboxThread
from tests.run_helpers import SAMPLE_DATA, client_env, run_cli, sandbox

#: A JSON object: a sample's record, a plan event, a stored profile.
Json = dict[str, Any]

#: The samples' hashes are random bytes, and some users have none: every import of a source that
#: can carry passwords says how to treat those (the policy itself is tested in test_passwords_e2e).
ALLOW = "--allow-missing-passwords"
#: Room for a whole sample in one request: one job per import keeps every test quick.
REQUEST_BYTES = 400_000
EXPECTED: list[Json] = orjson.loads((SAMPLE_DATA / "sources.expected.json").read_bytes())["imports"]


@dataclass(frozen=True, slots=True)
class Imported:
    """One finished `orchestrator run` of a sample."""

    done: subprocess.CompletedProcess[str]
    run_dir: Path
    plan: Json
    summary: Json

    def rejects(self) -> list[Json]:
        path = self.run_dir / "rejects.ndjson"
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def expected(file: str, *args: str) -> Json:
    """The expectation of sources.expected.json for `orchestrator run FILE ARGS`."""
    for item in EXPECTED:
        if item["file"] == file and tuple(item["args"]) == args:
            return item
    raise KeyError((file, args))


def import_sample(
    server: SandboxThread,
    tmp_path: Path,
    file: str,
    *args: str,
    connection: str | None = None,
) -> Imported:
    """Run `file` of sample_data/ with `args` into `server` and check the counts it gives.

    The exit code, the plan's counts by reason and the users the sandbox holds are those
    sources.expected.json lists; the target connection is given by id unless `connection` names it.
    """
    run_dir = tmp_path / f"run-{file}"
    target = (
        ["--connection", connection] if connection else ["--connection-id", DATABASE_CONNECTION_ID]
    )
    paths = [arg.replace("sample_data/", f"{SAMPLE_DATA}/") for arg in args]
    limits = ["--max-request-bytes", str(REQUEST_BYTES), "--max-rps", "200"]
    options = [*target, *limits, "--log-format", "json"]
    done = run_cli(
        ["run", SAMPLE_DATA / file, *paths, "--run-dir", run_dir, *options], client_env(server)
    )
    want = expected(file, *args)
    assert done.returncode == (1 if want["rejected"] else 0), done.stderr
    events = [orjson.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    (plan,) = [event for event in events if event["event"] == "plan"]
    summary = events[-1]
    assert summary["event"] == "summary"
    assert plan["users_read"] == want["records"]
    assert plan["accepted"] == want["accepted"]
    assert plan["rejected_by_reason"] == want["rejected_by_reason"]
    assert plan["skipped_by_reason"] == want["skipped_by_reason"]
    assert plan["source"]["format"] == args[1]
    assert summary["inserted"] == want["accepted"] == server.state.user_count
    assert {job.connection_id for job in server.state.jobs()} == {DATABASE_CONNECTION_ID}
    return Imported(done, run_dir, plan, summary)


def arrived(server: SandboxThread, email: object) -> Json:
    """The one user the sandbox holds with this e-mail (stored lower-cased)."""
    assert isinstance(email, str)
    found = server.state.users_by_email(email.lower())
    assert len(found) == 1, email
    return found[0]


def absent(server: SandboxThread, email: object) -> bool:
    return isinstance(email, str) and not server.state.users_by_email(email.lower())


def blocked(profile: Json) -> bool:
    return profile.get("blocked", False) is True


def stored_hash(server: SandboxThread, email: str) -> object:
    """The password hash the sandbox stored for a user (None: imported without one)."""
    found = server.state.login_credential(DATABASE_CONNECTION_NAME, email)
    assert found is not None, email
    return found[1].stored


def strings(value: object) -> Iterator[str]:
    """Every string inside a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def sample_json(file: str) -> Any:
    return orjson.loads((SAMPLE_DATA / file).read_bytes())


def sample_rows(file: str) -> list[dict[str, str]]:
    text = (SAMPLE_DATA / file).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


# -- Auth0 users exports ---------------------------------------------------------------------------


def ndjson_gz(file: str) -> list[Json]:
    return [
        orjson.loads(line)
        for line in gzip.decompress((SAMPLE_DATA / file).read_bytes()).splitlines()
    ]


def test_auth0_export_of_a_whole_tenant_imports_its_database_users_and_rejects_social_ones(
    tmp_path: Path,
) -> None:
    users = ndjson_gz("auth0-export.ndjson.gz")
    with sandbox() as server:
        result = import_sample(
            server, tmp_path, "auth0-export.ndjson.gz", "--from", "auth0-export", ALLOW
        )
        dropped = result.plan["source"]["dropped"]
        assert {"created_at", "logins_count", "identities"} <= set(dropped)
        social = 0
        for user in users:
            identity = user["identities"][0]
            if identity["provider"] != "auth0":
                social += 1
                assert absent(server, user["email"])
                continue
            profile = arrived(server, user["email"])
            assert profile["user_id"] == user["user_id"]
            for name in ("name", "given_name", "family_name", "nickname", "picture"):
                assert profile[name] == user[name]
            assert profile["email_verified"] is user["email_verified"]
            assert blocked(profile) is (user.get("blocked") is True)
            for name in ("app_metadata", "user_metadata", "username"):
                assert profile.get(name) == user.get(name)
        rejects = result.rejects()
        assert len(rejects) == social > 0
        for reject in rejects:
            assert reject["reasons"][0]["reason"] == "not_database_user"
            assert reject["where"] == f"line {reject['position']}"
            user = reject["user"]
            assert users[int(reject["position"]) - 1] == user
            provider = str(user["user_id"]).split("|")[0]
            assert provider in ("google-oauth2", "samlp")
            assert provider in reject["reasons"][0]["message"]


def test_only_connection_keeps_the_users_of_one_database(tmp_path: Path) -> None:
    users = ndjson_gz("auth0-export.ndjson.gz")
    args = ("--from", "auth0-export", ALLOW, "--only-connection", "legacy-db")
    with sandbox() as server:
        import_sample(server, tmp_path, "auth0-export.ndjson.gz", *args)
        legacy = [u for u in users if u["identities"][0]["connection"] == "legacy-db"]
        assert len(legacy) == server.state.user_count > 0
        for user in legacy:
            assert arrived(server, user["email"])["user_id"] == user["user_id"]


def unescaped(cell: str) -> str:
    """An Auth0 CSV export's cell without the `'` put before every string."""
    return cell.removeprefix("'")


def test_auth0_csv_export_arrives_unescaped_into_the_connection_named(tmp_path: Path) -> None:
    rows = sample_rows("auth0-export.csv")
    with sandbox() as server:
        result = import_sample(
            server, tmp_path, "auth0-export.csv", "--from", "auth0-export", ALLOW,
            connection=DATABASE_CONNECTION_NAME,
        )  # fmt: skip
        profiles = []
        social = 0
        for row in rows:
            cells = {column: unescaped(cell) for column, cell in row.items()}
            if not cells["user_id"].startswith("auth0|"):
                social += 1
                assert absent(server, cells["email"])
                continue
            profile = arrived(server, cells["email"])
            profiles.append(profile)
            assert profile["user_id"] == cells["user_id"]
            for name in ("name", "given_name", "family_name", "nickname"):
                assert profile[name] == cells[name]
            assert profile["email_verified"] is (cells["email_verified"] == "true")
            assert blocked(profile) is (cells["blocked"] == "true")
            if cells["picture"]:
                assert profile["picture"] == cells["picture"]
            if cells["username"]:
                assert profile["username"] == cells["username"]
            if cells["user_metadata.locale"]:
                assert profile["user_metadata"]["locale"] == cells["user_metadata.locale"]
            if cells["app_metadata.plan"]:
                assert profile["app_metadata"] == {"plan": cells["app_metadata.plan"]}
            else:
                assert "app_metadata" not in profile
        assert not [text for text in strings(profiles) if text.startswith("'")]
        # The name holding a comma, double quotes and an apostrophe arrives as it was.
        (quoted,) = [p for p in profiles if p["family_name"] == "O'Brien" and "," in str(p["name"])]
        assert quoted["name"] == 'Seán "Jack" O\'Brien, Jr.'
        assert any(not str(p["name"]).isascii() for p in profiles)  # unicode names
        assert len(result.rejects()) == social == 2
        for reject in result.rejects():
            assert reject["reasons"][0]["reason"] == "not_database_user"
            assert str(reject["user"]["user_id"]).startswith("'")  # as read


def test_an_unknown_connection_name_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    source = SAMPLE_DATA / "firebase-compact.json"
    typo = "Username-Password-Authentcation"
    args: list[str | Path] = ["run", source, "--from", "firebase", "--run-dir", tmp_path / "run"]
    with sandbox() as server:
        done = run_cli([*args, "--connection", typo, "--max-rps", "200"], client_env(server))
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert typo in lines[0]
        assert "no connection with that name" in lines[0]
        assert "Traceback" not in done.stderr
        assert not server.state.jobs()
        assert server.state.user_count == 0


# -- Firebase --------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", ["firebase.json", "firebase-compact.json"])
def test_firebase_users_arrive_with_their_profile_claims_and_disabled_flag(
    tmp_path: Path, file: str
) -> None:
    users: list[Json] = sample_json(file)["users"]
    with sandbox() as server:
        result = import_sample(server, tmp_path, file, "--from", "firebase", ALLOW)
        for user in users:
            if "email" not in user:
                continue
            profile = arrived(server, user["email"])
            assert profile["user_id"] == f"auth0|{user['localId']}"
            assert profile["name"] == user["displayName"]
            assert profile["email_verified"] is user["emailVerified"]
            assert blocked(profile) is (user.get("disabled") is True)
            if "photoUrl" in user:
                assert profile["picture"] == user["photoUrl"]
            assert profile.get("phone_number") == user.get("phoneNumber")
            claims = user.get("customAttributes")
            if claims:
                assert profile["app_metadata"] == json.loads(claims)
            else:
                assert "app_metadata" not in profile
            # Firebase's scrypt cannot be verified by Auth0: every user arrives without a hash.
            assert stored_hash(server, user["email"]) is None
        assert any(user.get("disabled") for user in users)
        assert any(user.get("customAttributes") for user in users)
        phone_only = [i for i, user in enumerate(users) if "email" not in user]
        rejects = result.rejects()
        assert [reject["position"] for reject in rejects] == phone_only
        for reject in rejects:
            # The rejects file shows the user as the export holds it, and where it is.
            assert reject["where"] == f"users[{reject['position']}]"
            assert reject["user"] == users[int(reject["position"])]
            assert reject["reasons"][0]["reason"] == "missing_email"


# -- Cognito ---------------------------------------------------------------------------------------


def test_cognito_list_users_arrive_by_sub_with_custom_attributes_in_user_metadata(
    tmp_path: Path,
) -> None:
    users: list[Json] = sample_json("cognito.json")["Users"]
    with sandbox() as server:
        result = import_sample(server, tmp_path, "cognito.json", "--from", "cognito")
        for user in users:
            attributes = {a["Name"]: a["Value"] for a in user["Attributes"]}
            if user["UserStatus"] == "EXTERNAL_PROVIDER":
                assert absent(server, attributes["email"])
                continue
            profile = arrived(server, attributes["email"])
            assert profile["user_id"] == f"auth0|{attributes['sub']}"
            assert profile["email_verified"] is (attributes["email_verified"] == "true")
            assert profile["given_name"] == attributes["given_name"]
            assert profile["family_name"] == attributes["family_name"]
            assert blocked(profile) is (user["Enabled"] is False)
            metadata = profile.get("user_metadata", {})
            assert metadata.get("plan") == attributes.get("custom:plan")
            assert metadata.get("locale") == attributes.get("locale")
            assert profile.get("phone_number") == attributes.get("phone_number")
            assert profile.get("username") == attributes.get("preferred_username")
        assert any(user["Enabled"] is False for user in users)
        (reject,) = result.rejects()
        assert reject["reasons"][0]["reason"] == "not_database_user"
        assert reject["where"] == f"Users[{reject['position']}]"
        assert reject["user"]["UserStatus"] == "EXTERNAL_PROVIDER"


def test_cognito_csv_rows_arrive_by_username_with_text_booleans(tmp_path: Path) -> None:
    rows = sample_rows("cognito.csv")
    with sandbox() as server:
        result = import_sample(server, tmp_path, "cognito.csv", "--from", "cognito")
        for row in rows:
            if not row["email"]:
                continue
            profile = arrived(server, row["email"])
            assert profile["user_id"] == f"auth0|{row['cognito:username']}"
            assert profile["email_verified"] is (row["email_verified"] == "TRUE")
            if row["phone_number"]:
                assert profile["phone_number"] == row["phone_number"]
                assert profile["phone_verified"] is (row["phone_number_verified"] == "TRUE")
            metadata = profile.get("user_metadata", {})
            assert metadata.get("plan") == (row["custom:plan"] or None)
            assert metadata.get("birthdate") == (row["birthdate"] or None)
            assert "mfa_enabled" not in metadata
        assert result.plan["source"]["dropped"]["cognito:mfa_enabled"] == len(rows)
        (reject,) = result.rejects()
        assert reject["reasons"][0]["reason"] == "missing_email"
        assert reject["where"].startswith("line ")
        assert reject["user"]["email"] == ""  # the row as read


# -- Keycloak --------------------------------------------------------------------------------------


def keycloak_metadata(attributes: Json) -> Json:
    """What a user's attributes become: user_metadata, one value unwrapped from its list."""
    return {
        key: values[0] if isinstance(values, list) and len(values) == 1 else values
        for key, values in attributes.items()
    }


@pytest.mark.parametrize("file", ["keycloak-realm.json", "keycloak-realm-users-0.json"])
def test_keycloak_users_arrive_with_attributes_roles_and_enabled_flag(
    tmp_path: Path, file: str
) -> None:
    users: list[Json] = sample_json(file)["users"]
    with sandbox() as server:
        result = import_sample(server, tmp_path, file, "--from", "keycloak", ALLOW)
        for user in users:
            if "serviceAccountClientId" in user:
                assert user.get("email") is None
                continue
            if "federatedIdentities" in user and "credentials" not in user:
                # A brokered user signs in through its identity provider: not a database user.
                assert server.state.users_by_email(user["email"]) == []
                continue
            profile = arrived(server, user["email"])
            assert profile["user_id"] == f"auth0|{user['id']}"
            assert profile["given_name"] == user["firstName"]
            assert profile["family_name"] == user["lastName"]
            assert profile["name"] == f"{user['firstName']} {user['lastName']}"
            assert profile["email_verified"] is user["emailVerified"]
            assert blocked(profile) is (user["enabled"] is False)
            if user["username"] == user["email"]:
                assert "username" not in profile
            else:
                assert profile["username"] == user["username"]
            attributes = user.get("attributes")
            if attributes:
                assert profile["user_metadata"] == keycloak_metadata(attributes)
            else:
                assert "user_metadata" not in profile
            app = profile["app_metadata"]
            assert app["roles"] == user["realmRoles"]
            assert app.get("groups") == user.get("groups")
            assert app.get("client_roles") == user.get("clientRoles")
        service_accounts = sum("serviceAccountClientId" in user for user in users)
        brokered = sum("federatedIdentities" in user for user in users)
        assert result.plan["skipped"] == service_accounts
        assert result.plan["rejected_by_reason"] == (
            {"not_database_user": brokered} if brokered else {}
        )
        assert server.state.user_count == len(users) - service_accounts - brokered
        if file == "keycloak-realm.json":
            assert service_accounts == 1
            assert any(user["enabled"] is False for user in users)
            assert any(user["username"] == user.get("email") for user in users)


# -- Django ----------------------------------------------------------------------------------------


def test_django_dumpdata_users_arrive_and_other_records_are_skipped(tmp_path: Path) -> None:
    records: list[Json] = sample_json("django.json")
    with sandbox() as server:
        result = import_sample(server, tmp_path, "django.json", "--from", "django", ALLOW)
        users = [r for r in records if r["model"] == "auth.user"]
        assert result.plan["skipped_by_reason"] == {"not_a_user_record": len(records) - len(users)}
        for record in users:
            fields = record["fields"]
            if not fields["email"]:
                continue
            profile = arrived(server, fields["email"])
            assert profile["user_id"] == f"auth0|{record['pk']}"
            assert profile["given_name"] == fields["first_name"]
            assert profile["family_name"] == fields["last_name"]
            assert profile["name"] == f"{fields['first_name']} {fields['last_name']}"
            assert blocked(profile) is (fields["is_active"] is False)
            if fields["username"] == fields["email"]:
                assert "username" not in profile
            else:
                assert profile["username"] == fields["username"]
            access = {k: fields[k] for k in ("is_staff", "is_superuser", "groups") if fields[k]}
            assert profile.get("app_metadata") == (access or None)
            assert "user_metadata" not in profile  # auth.user has no field the import lacks
        assert any(record["fields"]["is_active"] is False for record in users)
        (reject,) = result.rejects()
        assert reject["reasons"][0]["reason"] == "missing_email"
        assert reject["where"] == f"index {reject['position']}"
        assert reject["user"] == records[int(reject["position"])]


# -- Supabase --------------------------------------------------------------------------------------


def supabase_rows(file: str) -> list[Json]:
    """The rows of a Supabase sample, as JSON values (the CSV's text turned back into them)."""
    if file.endswith(".json"):
        rows: list[Json] = sample_json(file)
        return rows
    out: list[Json] = []
    for row in sample_rows(file):
        value: Json = {key: (cell or None) for key, cell in row.items()}
        for key in ("raw_app_meta_data", "raw_user_meta_data"):
            value[key] = json.loads(row[key]) if row[key] else None
        for key in ("is_anonymous", "is_sso_user"):
            value[key] = row[key] == "t"
        out.append(value)
    return out


@pytest.mark.parametrize("file", ["supabase.json", "supabase.csv"])
def test_supabase_rows_arrive_with_phone_metadata_and_bans(tmp_path: Path, file: str) -> None:
    rows = supabase_rows(file)
    with sandbox() as server:
        import_sample(server, tmp_path, file, "--from", "supabase", ALLOW)
        banned = 0
        for row in rows:
            app = row["raw_app_meta_data"]
            assert isinstance(app, dict)
            if row["deleted_at"] or row["is_anonymous"] or app.get("provider") == "google":
                assert row["email"] is None or absent(server, row["email"])
                continue
            profile = arrived(server, row["email"])
            assert profile["user_id"] == f"auth0|{row['id']}"
            assert profile["email_verified"] is (row["email_confirmed_at"] is not None)
            if row["phone"]:
                assert profile["phone_number"] == f"+{row['phone']}"
                assert profile["phone_verified"] is (row["phone_confirmed_at"] is not None)
            else:
                assert "phone_number" not in profile
            assert profile["app_metadata"] == app
            assert profile["user_metadata"] == row["raw_user_meta_data"]
            full_name = row["raw_user_meta_data"].get("full_name")
            if full_name:
                assert profile["name"] == full_name
            # A ban in force blocks the user; one that is over does not.
            assert blocked(profile) is ban_in_force(row["banned_until"])
            banned += ban_in_force(row["banned_until"])
        assert banned == 1
        assert any(row["banned_until"] and not ban_in_force(row["banned_until"]) for row in rows)


def ban_in_force(banned_until: str | None) -> bool:
    """Whether auth.users' banned_until (JSON's or psql's timestamp) is still to come."""
    if not banned_until:
        return False
    return datetime.fromisoformat(banned_until.replace(" ", "T", 1)) > datetime.now(UTC)


# -- Any CSV, with a mapping -----------------------------------------------------------------------


def test_a_spreadsheet_arrives_through_its_mapping(tmp_path: Path) -> None:
    rows = sample_rows("users.csv")
    args = ("--from", "csv", "--map", "sample_data/users.map.toml")
    with sandbox() as server:
        result = import_sample(server, tmp_path, "users.csv", *args)
        for row in rows:
            if not row["Email Address"]:
                continue
            profile = arrived(server, row["Email Address"])
            assert profile["user_id"] == f"auth0|{row['Customer ID']}"
            assert profile["name"] == row["Full Name"]
            assert profile["email_verified"] is (row["Verified"] == "yes")
            assert "username" not in profile  # the mapping leaves the column out
            assert profile["app_metadata"] == {
                "plan": row["Plan"],
                "imported_from": "crm-spreadsheet",
            }
            metadata = profile["user_metadata"]
            assert metadata["signup_date"] == row["Signup Date"]
            assert metadata.get("newsletter") == (row["Newsletter"] or None)
        assert result.plan["source"]["dropped"] == {"Phone": sum(1 for r in rows if r["Phone"])}
        (reject,) = result.rejects()
        assert reject["reasons"][0]["reason"] == "missing_email"
        assert reject["user"]["Email Address"] == ""


# -- The wrong --from ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "wanted"),
    [
        ("firebase.json", "--from firebase"),
        ("django.json", "--from django"),
        ("users.csv", "--from csv"),
        ("firebase-compact.json", "--from firebase"),
        ("keycloak-realm-users-0.json", "--from keycloak"),
    ],
)
def test_validate_as_the_import_format_names_the_from_to_use(
    tmp_path: Path, file: str, wanted: str
) -> None:
    done = run_cli(["validate", SAMPLE_DATA / file, "--log-format", "json"], client_env_free())
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert wanted in lines[0]
    assert str(SAMPLE_DATA / file) in lines[0]


def client_env_free() -> dict[str, str]:
    """An environment without any tenant: validate never talks to one."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTH0_")}


def test_the_samples_listed_by_sources_expected_json_are_the_ones_tested_here() -> None:
    tested = {
        "auth0-export.ndjson.gz", "auth0-export.csv", "firebase.json", "firebase-compact.json",
        "cognito.json", "cognito.csv", "keycloak-realm.json", "keycloak-realm-users-0.json",
        "django.json", "supabase.json", "supabase.csv", "users.csv",
    }  # fmt: skip
    assert {item["file"] for item in EXPECTED} == tested
