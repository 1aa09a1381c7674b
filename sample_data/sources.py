"""Exports of the sources `--from` reads: one sample file per format, of the generator's people.

Each file is shaped the way its tool writes it (firebase-tools, the AWS CLI and a Cognito CSV,
Keycloak's realm export, Django's dumpdata, Supabase's auth.users, Auth0's CSV export, a spreadsheet
saved as CSV) and holds the awkward cases a migration meets. Every record is built with the outcome
its format's documented mapping gives it (accepted, rejected for a reason, skipped for a reason):
`sources.expected.json` sums them up per import, with the notable records and where they are.

`python sample_data/generate.py --out DIR --kind sources` writes them; `write_sources()` does the
same from Python. Deterministic per seed; every e-mail domain is a reserved one (RFC 2606), phone
numbers are fictional (555-01xx) and every hash, salt and token is random bytes.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import string
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import orjson

from sample_data.generate import (
    DEFAULT_COUNTS,
    DEFAULT_DATABASE,
    GOOGLE_CONNECTION,
    LEGACY_DATABASE,
    SAML_CONNECTION,
    User,
    UserFactory,
    iter_users,
)

#: Users per sample file (a few more records where a file also holds other things).
SOURCE_COUNTS: Final = {
    "auth0-export.csv": 60,
    "firebase.json": 80,
    "firebase-compact.json": 40,
    "cognito.json": 70,
    "cognito.csv": 50,
    "keycloak-realm.json": 60,
    "keycloak-realm-users-0.json": 40,
    "django.json": 70,
    "supabase.json": 60,
    "supabase.csv": 50,
    "users.csv": 100,
}
EXPECTED_FILE: Final = "sources.expected.json"
MAP_FILE: Final = "users.map.toml"

ACCEPTED: Final = "accepted"
ALNUM: Final = string.ascii_letters + string.digits
#: 2019-01-01T00:00:00Z: sign-ups are spread over the ~6 years after it.
EPOCH: Final = 1_546_300_800
SPAN: Final = 190_000_000


def rejected(reason: str) -> str:
    return f"rejected:{reason}"


def skipped(reason: str) -> str:
    return f"skipped:{reason}"


@dataclass(frozen=True, slots=True)
class Case:
    """A notable record of a sample: where it is (as the rejects file names positions), what it
    shows, and what becomes of it."""

    where: str
    case: str
    outcome: str


@dataclass(slots=True)
class Sample:
    """One sample file: its bytes, the intended outcome of each of its records, in order, and the
    notable records."""

    name: str
    data: bytes
    outcomes: list[str]
    cases: list[Case] = field(default_factory=list)

    @property
    def records(self) -> int:
        return len(self.outcomes)


@dataclass(slots=True)
class Built:
    """The records of a sample before they are written, with their outcomes and notable cases."""

    records: list[User] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)

    def add(self, record: User, outcome: str = ACCEPTED) -> None:
        self.records.append(record)
        self.outcomes.append(outcome)

    def note(self, where: str, case: str, outcome: str = ACCEPTED) -> None:
        self.cases.append(Case(where, case, outcome))

    def sample(self, name: str, data: bytes) -> Sample:
        return Sample(name, data, self.outcomes, self.cases)


@dataclass(frozen=True, slots=True)
class Expected:
    """What one import of a sample gives: `orchestrator run FILE ARGS`."""

    file: str
    args: tuple[str, ...]
    outcomes: tuple[str, ...]
    cases: tuple[Case, ...]
    note: str = ""

    def as_json(self) -> dict[str, object]:
        counts = Counter(self.outcomes)
        by_kind: dict[str, dict[str, int]] = {"rejected": {}, "skipped": {}}
        for outcome, n in sorted(counts.items()):
            kind, _, reason = outcome.partition(":")
            if kind in by_kind:
                by_kind[kind][reason] = n
        document: dict[str, object] = {
            "file": self.file,
            "args": list(self.args),
            "records": len(self.outcomes),
            "accepted": counts[ACCEPTED],
            "rejected": sum(by_kind["rejected"].values()),
            "rejected_by_reason": by_kind["rejected"],
            "skipped": sum(by_kind["skipped"].values()),
            "skipped_by_reason": by_kind["skipped"],
            "cases": [
                {"where": case.where, "case": case.case, "outcome": case.outcome}
                for case in self.cases
            ],
        }
        if self.note:
            document["note"] = self.note
        return document


# --------------------------------------------------------------------------------------------
# Small shared pieces
# --------------------------------------------------------------------------------------------


class Shaper:
    """Random details of one sample (ids, times, hashes), deterministic per (seed, file)."""

    def __init__(self, seed: int | str, name: str) -> None:
        self.rng = random.Random(f"{seed}:{name}:shape")
        self._hashes = UserFactory(f"{seed}:{name}:hashes")

    def chars(self, alphabet: str, k: int) -> str:
        return "".join(self.rng.choices(alphabet, k=k))

    def uuid4(self) -> str:
        return str(uuid.UUID(bytes=self.rng.randbytes(16), version=4))

    def b64(self, size: int) -> str:
        return base64.b64encode(self.rng.randbytes(size)).decode("ascii")

    def seconds(self) -> int:
        """A sign-up time, seconds since the epoch."""
        return EPOCH + self.rng.randrange(SPAN)

    def later(self, seconds: int) -> int:
        """A time after `seconds`, up to ~200 days later."""
        return seconds + self.rng.randrange(60, 17_000_000)

    def phone(self) -> str:
        """A fictional North American number (555-0100 to 555-0199), E.164."""
        area = self.rng.choice(("212", "415", "312", "617", "206", "512"))
        return f"+1{area}55501{self.rng.randrange(100):02d}"

    def bcrypt(self, prefix: str = "$2a$10$") -> str:
        """A well-formed bcrypt hash of no password (the generator's)."""
        return self._hashes.bcrypt_hash(prefix)


def people(count: int, seed: int | str, name: str) -> Iterator[User]:
    """The generator's import-format users, the people a sample describes."""
    return iter_users(count, seed=f"{seed}:{name}", flavour="import")


def iso_ms(seconds: int, millis: int) -> str:
    """2021-03-04T05:06:07.123Z, as Auth0 writes dates."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def iso_micro(seconds: int, micros: int, *, sep: str = "T", zone: str = "+00:00") -> str:
    """2021-03-04T05:06:07.123456+00:00 (JSON) or 2021-03-04 05:06:07.123456+00 (psql)."""
    return time.strftime(f"%Y-%m-%d{sep}%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}{zone}"


def pretty_json(document: object, *, indent: int = 2, colon: str = ": ") -> bytes:
    """Indented JSON, non-ASCII kept as it is (as the tools write it)."""
    text_ = json.dumps(document, indent=indent, ensure_ascii=False, separators=(",", colon))
    return (text_ + "\n").encode()


def csv_bytes(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, excel: bool = False
) -> bytes:
    """A CSV with a header row: quoted only where needed; Excel's "CSV UTF-8" adds a BOM and
    ends lines with CRLF."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n" if excel else "\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" if excel else "").encode() + out.getvalue().encode()


def metadata(person: User, key: str) -> dict[str, object]:
    value = person.get(key)
    return dict(value) if isinstance(value, dict) else {}


# --------------------------------------------------------------------------------------------
# Auth0's CSV export
# --------------------------------------------------------------------------------------------

AUTH0_CSV_COLUMNS: Final = (
    "user_id", "email", "email_verified", "name", "given_name", "family_name", "nickname",
    "picture", "username", "blocked", "created_at", "updated_at", "last_login", "logins_count",
    "identities[0].connection", "identities[0].provider", "identities[0].isSocial",
    "user_metadata.locale", "user_metadata.theme", "app_metadata.plan",
)  # fmt: skip
#: Columns holding dates Auth0 generated: never escaped.
AUTH0_DATE_COLUMNS: Final = frozenset({"created_at", "updated_at", "last_login"})
#: Where the Auth0 CSV sample puts its awkward rows (0-based row, after the header).
AUTH0_CSV_GOOGLE: Final = 4
AUTH0_CSV_SAML: Final = 9
AUTH0_CSV_QUOTED: Final = 6
AUTH0_CSV_LEGACY: Final = frozenset({2, 11, 17, 23, 31, 38, 44})


def auth0_csv_cell(value: object) -> str:
    """One cell as Auth0's CSV export writes it, before CSV quoting: strings get a leading `'`
    (against CSV injection); booleans, numbers and the dates Auth0 generated do not."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value)


def auth0_csv_line(cells: Sequence[tuple[str, object]]) -> str:
    """A row of the export: every escaped string quoted, `"` doubled; the rest bare."""
    out = []
    for column, value in cells:
        if column in AUTH0_DATE_COLUMNS and isinstance(value, str):
            out.append(value)
            continue
        cell = auth0_csv_cell(value)
        out.append('"' + cell.replace('"', '""') + '"' if cell.startswith("'") else cell)
    return ",".join(out)


def auth0_csv(count: int, seed: int | str) -> Sample:
    name = "auth0-export.csv"
    shaper = Shaper(seed, name)
    rng = shaper.rng
    built = Built()
    for i, person in enumerate(people(count, seed, name)):
        email = str(person["email"]).lower()
        hex_id = shaper.rng.randbytes(12).hex()
        created = shaper.seconds()
        updated = shaper.later(created)
        row: dict[str, object] = {
            "user_id": f"auth0|{hex_id}",
            "email": email,
            "email_verified": person["email_verified"],
            "name": person["name"],
            "given_name": person["given_name"],
            "family_name": person["family_name"],
            "nickname": email.split("@", 1)[0],
            "picture": person.get("picture"),
            "username": person.get("username"),
            "blocked": True if person.get("blocked") is True else None,
            "created_at": iso_ms(created, rng.randrange(1000)),
            "updated_at": iso_ms(updated, rng.randrange(1000)),
            "last_login": iso_ms(rng.randrange(created, updated), rng.randrange(1000)),
            "logins_count": rng.randrange(1, 300),
            "identities[0].connection": DEFAULT_DATABASE,
            "identities[0].provider": "auth0",
            "identities[0].isSocial": False,
            "user_metadata.locale": metadata(person, "user_metadata").get("locale"),
            "user_metadata.theme": metadata(person, "user_metadata").get("theme"),
            "app_metadata.plan": metadata(person, "app_metadata").get("plan"),
        }
        outcome = ACCEPTED
        where = f"line {i + 2}"
        if i in AUTH0_CSV_LEGACY:
            row["identities[0].connection"] = LEGACY_DATABASE
        if i == AUTH0_CSV_GOOGLE:
            subject = str(100_000_000_000_000_000_000 + rng.randrange(10**20))
            row.update(
                {
                    "user_id": f"{GOOGLE_CONNECTION}|{subject}",
                    "email_verified": True,
                    "username": None,
                    "identities[0].connection": GOOGLE_CONNECTION,
                    "identities[0].provider": GOOGLE_CONNECTION,
                    "identities[0].isSocial": True,
                }
            )
            outcome = rejected("not_database_user")
            built.note(where, "a Google user (google-oauth2|…)", outcome)
        elif i == AUTH0_CSV_SAML:
            row.update(
                {
                    "user_id": f"samlp|{SAML_CONNECTION}|{email}",
                    "username": None,
                    "identities[0].connection": SAML_CONNECTION,
                    "identities[0].provider": "samlp",
                }
            )
            outcome = rejected("not_database_user")
            built.note(where, "an enterprise SAML user (samlp|…)", outcome)
        elif i == AUTH0_CSV_QUOTED:
            row.update(
                {
                    "given_name": "Seán",
                    "family_name": "O'Brien",
                    "name": 'Seán "Jack" O\'Brien, Jr.',
                    "email": f"sean.obrien{i}@example.com",
                    "nickname": "jack",
                }
            )
            built.note(where, "a name with a comma, double quotes and an apostrophe")
        built.add(row, outcome)
    legacy = [f"line {i + 2}" for i in sorted(AUTH0_CSV_LEGACY) if i < count]
    built.note(", ".join(legacy), f"users of the {LEGACY_DATABASE} database")
    lines = [",".join(AUTH0_CSV_COLUMNS)]
    for row in built.records:
        lines.append(auth0_csv_line([(column, row[column]) for column in AUTH0_CSV_COLUMNS]))
    return built.sample(name, ("\n".join(lines) + "\n").encode())


def auth0_ndjson_outcomes(users: Sequence[User], only_connection: str | None) -> list[str]:
    """The outcome of each user of the Auth0 NDJSON export (auth0-export.ndjson.gz): social and
    enterprise users are rejected; with --only-connection, the users of every other connection
    (social ones included) are skipped."""
    outcomes = []
    for user in users:
        identities = user["identities"]
        assert isinstance(identities, list)
        identity = identities[0]
        if only_connection is not None and identity["connection"] != only_connection:
            outcomes.append(skipped("other_connection"))
        elif identity["provider"] != "auth0":
            outcomes.append(rejected("not_database_user"))
        else:
            outcomes.append(ACCEPTED)
    return outcomes


# --------------------------------------------------------------------------------------------
# Firebase (firebase auth:export users.json --format=json)
# --------------------------------------------------------------------------------------------

#: Where the pretty Firebase sample puts its phone-only user (no e-mail address).
FIREBASE_PHONE_ONLY: Final = 3


def firebase_users(count: int, seed: int | str, name: str, *, phone_only: int | None) -> Built:
    """Users as `firebase auth:export` writes them: scrypt hashes (base64 hash and salt), custom
    claims as JSON text, times as strings of milliseconds, `disabled` only when true."""
    shaper = Shaper(seed, name)
    rng = shaper.rng
    built = Built()
    for i, person in enumerate(people(count, seed, name)):
        local_id = shaper.chars(ALNUM, 28)
        created = shaper.seconds()
        created_ms = str(created * 1000 + rng.randrange(1000))
        signed_in_ms = str(shaper.later(created) * 1000 + rng.randrange(1000))
        if i == phone_only:
            number = shaper.phone()
            info: User = {"providerId": "phone", "rawId": number, "phoneNumber": number}
            user: User = {
                "localId": local_id,
                "lastSignedInAt": signed_in_ms,
                "createdAt": created_ms,
                "phoneNumber": number,
                "providerUserInfo": [info],
            }
            built.add(user, rejected("missing_email"))
            built.note(f"users[{i}]", "a phone-only user: no e-mail", rejected("missing_email"))
            continue
        email = str(person["email"]).lower()  # Firebase keeps e-mails lower-cased
        google = rng.random() < 0.12
        user = {"localId": local_id, "email": email, "emailVerified": True}
        phone = person.get("phone_number")
        if not google:
            user["emailVerified"] = person["email_verified"]
            user["passwordHash"] = shaper.b64(64)
            user["salt"] = shaper.b64(10)
        user["displayName"] = person["name"]
        if "picture" in person:
            user["photoUrl"] = person["picture"]
        user["lastSignedInAt"] = signed_in_ms
        user["createdAt"] = created_ms
        if isinstance(phone, str):
            user["phoneNumber"] = phone
        if rng.random() < 0.1 or i == 5:
            user["disabled"] = True
        app = metadata(person, "app_metadata")
        if app and (rng.random() < 0.5 or i == 1):
            claims: User = {"plan": app["plan"], "roles": app["roles"]}
            if rng.random() < 0.3:
                claims["admin"] = True
            # Custom claims are kept as the JSON text the Admin SDK was given.
            user["customAttributes"] = json.dumps(claims, separators=(",", ":"))
        info = {
            "providerId": "google.com" if google else "password",
            "rawId": str(10**20 + rng.randrange(10**20)) if google else email,
            "email": email,
            "displayName": person["name"],
        }
        if google:
            info["federatedId"] = f"https://accounts.google.com/{info['rawId']}"
        if "photoUrl" in user:
            info["photoUrl"] = user["photoUrl"]
        infos = [info]
        if isinstance(phone, str):
            infos.append({"providerId": "phone", "rawId": phone, "phoneNumber": phone})
        user["providerUserInfo"] = infos
        built.add(user)
    disabled = [f"users[{i}]" for i, user in enumerate(built.records) if user.get("disabled")]
    built.note(", ".join(disabled), "disabled: true", ACCEPTED)
    return built


def firebase(count: int, seed: int | str) -> Sample:
    built = firebase_users(count, seed, "firebase.json", phone_only=FIREBASE_PHONE_ONLY)
    built.note("(every user with passwordHash)", "Firebase scrypt: imported without a password")
    # Pretty, 2 spaces, as firebase-tools writes it.
    data = orjson.dumps({"users": built.records}, option=orjson.OPT_INDENT_2) + b"\n"
    return built.sample("firebase.json", data)


def firebase_compact(count: int, seed: int | str) -> Sample:
    built = firebase_users(count, seed, "firebase-compact.json", phone_only=None)
    # One line, no final newline.
    return built.sample("firebase-compact.json", orjson.dumps({"users": built.records}))


# --------------------------------------------------------------------------------------------
# AWS Cognito (aws cognito-idp list-users, and a CSV of the user pool's attributes)
# --------------------------------------------------------------------------------------------

COGNITO_FEDERATED: Final = 7
COGNITO_CSV_PHONE_ONLY: Final = 5
#: The attribute columns of a user pool's CSV (GetCSVHeader's standard list, then the pool's
#: custom attributes, then Cognito's own).
COGNITO_CSV_COLUMNS: Final = (
    "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username",
    "profile", "picture", "website", "email", "email_verified", "gender", "birthdate", "zoneinfo",
    "locale", "phone_number", "phone_number_verified", "address", "updated_at", "custom:plan",
    "cognito:mfa_enabled", "cognito:username",
)  # fmt: skip


def cognito_attributes(person: User, shaper: Shaper, sub: str) -> dict[str, str]:
    """A user's attributes, all text as Cognito keeps them."""
    rng = shaper.rng
    attributes = {"sub": sub}
    attributes["email_verified"] = "true" if person["email_verified"] else "false"
    if isinstance(person.get("phone_number"), str):
        attributes["phone_number_verified"] = "true" if person.get("phone_verified") else "false"
        attributes["phone_number"] = str(person["phone_number"])
    attributes["given_name"] = str(person["given_name"])
    attributes["family_name"] = str(person["family_name"])
    if rng.random() < 0.5:
        attributes["name"] = str(person["name"])
    locale = metadata(person, "user_metadata").get("locale")
    if isinstance(locale, str):
        attributes["locale"] = locale
    if isinstance(person.get("username"), str) and rng.random() < 0.5:
        attributes["preferred_username"] = str(person["username"])
    plan = metadata(person, "app_metadata").get("plan")
    if isinstance(plan, str):
        attributes["custom:plan"] = plan
    attributes["email"] = str(person["email"])
    return attributes


def cognito_json(count: int, seed: int | str) -> Sample:
    """`aws cognito-idp list-users` output, pretty (4 spaces) as the CLI prints it."""
    name = "cognito.json"
    shaper = Shaper(seed, name)
    rng = shaper.rng
    built = Built()
    for i, person in enumerate(people(count, seed, name)):
        sub = shaper.uuid4()
        attributes = cognito_attributes(person, shaper, sub)
        created = shaper.seconds()
        status = rng.choices(
            ("CONFIRMED", "FORCE_CHANGE_PASSWORD", "RESET_REQUIRED", "UNCONFIRMED"),
            weights=(85, 5, 4, 6),
        )[0]
        if status == "UNCONFIRMED":
            attributes["email_verified"] = "false"
        # Pools that sign in by e-mail name each user by its sub; older ones by a username.
        username = sub if rng.random() < 0.7 else str(person["email"]).split("@")[0].lower()
        outcome = ACCEPTED
        if i == COGNITO_FEDERATED:
            google_id = str(10**20 + rng.randrange(10**20))
            username = f"Google_{google_id}"
            identity = {
                "userId": google_id, "providerName": "Google", "providerType": "Google",
                "issuer": None, "primary": True, "dateCreated": created * 1000,
            }  # fmt: skip
            attributes = {"identities": json.dumps([identity], separators=(",", ":")), **attributes}
            status = "EXTERNAL_PROVIDER"
            outcome = rejected("not_database_user")
            built.note(f"Users[{i}]", "UserStatus EXTERNAL_PROVIDER (a Google user)", outcome)
        user: User = {
            "Username": username,
            "Attributes": [{"Name": key, "Value": value} for key, value in attributes.items()],
            "UserCreateDate": iso_micro(created, rng.randrange(1000) * 1000),
            "UserLastModifiedDate": iso_micro(shaper.later(created), rng.randrange(1000) * 1000),
            "Enabled": not (rng.random() < 0.08 or i == 2),
            "UserStatus": status,
        }
        built.add(user, outcome)
    disabled = [f"Users[{i}]" for i, user in enumerate(built.records) if not user["Enabled"]]
    built.note(", ".join(disabled), "Enabled: false")
    data = pretty_json({"Users": built.records}, indent=4)
    return built.sample(name, data)


def cognito_csv(count: int, seed: int | str) -> Sample:
    """A user pool's users as a CSV of attribute columns (what export scripts and the console's
    import template use): no sub column, booleans as TRUE/FALSE."""
    name = "cognito.csv"
    shaper = Shaper(seed, name)
    rng = shaper.rng
    built = Built()
    rows: list[list[str]] = []
    for i, person in enumerate(people(count, seed, name)):
        attributes = cognito_attributes(person, shaper, "")
        del attributes["sub"]
        attributes["cognito:username"] = str(person["email"]).split("@")[0].lower()
        attributes["cognito:mfa_enabled"] = "TRUE" if rng.random() < 0.1 else "FALSE"
        attributes["updated_at"] = str(shaper.seconds())
        for flag in ("email_verified", "phone_number_verified"):
            if flag in attributes:
                attributes[flag] = attributes[flag].upper()
        if rng.random() < 0.15:
            attributes["birthdate"] = f"{rng.randrange(1950, 2005)}-{rng.randrange(1, 13):02d}-15"
        outcome = ACCEPTED
        if i == COGNITO_CSV_PHONE_ONLY:
            phone = shaper.phone()
            for key in ("email", "email_verified"):
                attributes.pop(key, None)
            attributes.update(phone_number=phone, phone_number_verified="TRUE")
            attributes["cognito:username"] = phone
            outcome = rejected("missing_email")
            built.note(f"line {i + 2}", "a user who signs in by phone: no e-mail", outcome)
        rows.append([attributes.get(column, "") for column in COGNITO_CSV_COLUMNS])
        built.add(dict(attributes), outcome)
    built.note("(every row)", "cognito:username becomes the user_id (the CSV has no sub)")
    return built.sample(name, csv_bytes(COGNITO_CSV_COLUMNS, rows))


# --------------------------------------------------------------------------------------------
# Keycloak (a realm export, and one of the split users files)
# --------------------------------------------------------------------------------------------

REALM: Final = "acme"
KEYCLOAK_SERVICE_ACCOUNT: Final = 4
KEYCLOAK_DISABLED: Final = 6
KEYCLOAK_EMAIL_USERNAME: Final = 8
KEYCLOAK_BROKERED: Final = 10
DEPARTMENTS: Final = ("Sales", "Engineering", "Support", "Finance", "Marketing")


def keycloak_user(person: User, shaper: Shaper) -> User:
    """A realm user with a PBKDF2-SHA256 password (27500 iterations, Keycloak's old default)."""
    rng = shaper.rng
    email = str(person["email"]).lower()  # Keycloak keeps e-mails and usernames lower-cased
    created = shaper.seconds()
    username = person.get("username")
    user: User = {
        "id": shaper.uuid4(),
        "createdTimestamp": created * 1000 + rng.randrange(1000),
        "username": str(username).lower() if isinstance(username, str) else email.split("@")[0],
        "enabled": True,
        "totp": False,
        "emailVerified": person["email_verified"],
        "firstName": person["given_name"],
        "lastName": person["family_name"],
        "email": email,
    }
    attributes: dict[str, list[str]] = {}
    locale = metadata(person, "user_metadata").get("locale")
    if isinstance(locale, str):
        attributes["locale"] = [locale.split("-")[0]]
    if rng.random() < 0.5:
        attributes["department"] = [rng.choice(DEPARTMENTS)]
    if rng.random() < 0.15:
        attributes["teams"] = sorted(rng.sample(("red", "blue", "green", "ops"), k=2))
    if isinstance(person.get("phone_number"), str):
        attributes["phoneNumber"] = [str(person["phone_number"])]
    if attributes:
        user["attributes"] = attributes
    secret = {"value": shaper.b64(64), "salt": shaper.b64(16), "additionalParameters": {}}
    data = {"hashIterations": 27500, "algorithm": "pbkdf2-sha256", "additionalParameters": {}}
    user["credentials"] = [
        {
            "id": shaper.uuid4(),
            "type": "password",
            "userLabel": "My password",
            "createdDate": int(str(user["createdTimestamp"])) + rng.randrange(5, 400),
            "secretData": json.dumps(secret, separators=(",", ":")),
            "credentialData": json.dumps(data, separators=(",", ":")),
        }
    ]
    user["disableableCredentialTypes"] = []
    user["requiredActions"] = ["UPDATE_PASSWORD"] if rng.random() < 0.05 else []
    roles = [f"default-roles-{REALM}"]
    if rng.random() < 0.2:
        roles.append(rng.choice(("admin", "billing", "support")))
    user["realmRoles"] = roles
    if rng.random() < 0.3:
        user["clientRoles"] = {"account": ["manage-account", "view-profile"]}
    if rng.random() < 0.5:
        user["groups"] = [f"/{rng.choice(DEPARTMENTS).lower()}"]
    user["notBefore"] = 0
    return user


def keycloak_users(count: int, seed: int | str, name: str, *, awkward: bool) -> Built:
    shaper = Shaper(seed, name)
    built = Built()
    for i, person in enumerate(people(count, seed, name)):
        user = keycloak_user(person, shaper)
        where = f"users[{i}]"
        if awkward and i == KEYCLOAK_SERVICE_ACCOUNT:
            client = "billing-api"
            user = {
                "id": user["id"],
                "createdTimestamp": user["createdTimestamp"],
                "username": f"service-account-{client}",
                "enabled": True,
                "totp": False,
                "emailVerified": False,
                "serviceAccountClientId": client,
                "credentials": [],
                "disableableCredentialTypes": [],
                "requiredActions": [],
                "realmRoles": [f"default-roles-{REALM}", "uma_authorization"],
                "clientRoles": {"realm-management": ["view-users"]},
                "notBefore": 0,
            }
            built.add(user, skipped("service_account"))
            built.note(
                where, "a service account (serviceAccountClientId)", skipped("service_account")
            )
            continue
        if awkward and i == KEYCLOAK_DISABLED:
            user["enabled"] = False
            built.note(where, "enabled: false")
        if awkward and i == KEYCLOAK_EMAIL_USERNAME:
            user["username"] = user["email"]
            built.note(where, "a username that is the e-mail (not kept as username)")
        if awkward and i == KEYCLOAK_BROKERED:
            del user["credentials"]
            user["federatedIdentities"] = [
                {
                    "identityProvider": "google",
                    "userId": str(10**20 + shaper.rng.randrange(10**20)),
                    "userName": user["email"],
                }
            ]
            built.note(
                where,
                "a brokered Google user: no credentials, federatedIdentities",
                rejected("not_database_user"),
            )
            built.add(user, rejected("not_database_user"))
            continue
        built.add(user)
    return built


def keycloak_realm(count: int, seed: int | str) -> Sample:
    """A whole realm export (`kc.sh export --realm acme --users realm_file`), pretty-printed as
    Keycloak's Jackson writes it (`"key" : value`): settings before and after the users."""
    name = "keycloak-realm.json"
    built = keycloak_users(count, seed, name, awkward=True)
    realm: User = {
        "id": shaper_id(seed, name),
        "realm": REALM,
        "displayName": "Acme Corp",
        "notBefore": 0,
        "defaultSignatureAlgorithm": "RS256",
        "revokeRefreshToken": False,
        "accessTokenLifespan": 300,
        "ssoSessionIdleTimeout": 1800,
        "enabled": True,
        "sslRequired": "external",
        "registrationAllowed": False,
        "registrationEmailAsUsername": False,
        "rememberMe": True,
        "verifyEmail": True,
        "loginWithEmailAllowed": True,
        "duplicateEmailsAllowed": False,
        "resetPasswordAllowed": True,
        "bruteForceProtected": True,
        "roles": {
            "realm": [
                {"name": f"default-roles-{REALM}", "composite": True, "clientRole": False},
                {"name": "admin", "composite": False, "clientRole": False},
                {"name": "billing", "composite": False, "clientRole": False},
                {"name": "support", "composite": False, "clientRole": False},
                {"name": "offline_access", "composite": False, "clientRole": False},
                {"name": "uma_authorization", "composite": False, "clientRole": False},
            ]
        },
        "groups": [
            {"name": department.lower(), "path": f"/{department.lower()}", "subGroups": []}
            for department in DEPARTMENTS
        ],
        "requiredCredentials": ["password"],
        "passwordPolicy": "length(8) and notUsername(undefined)",
        "otpPolicyType": "totp",
        "users": built.records,
        "scopeMappings": [{"clientScope": "offline_access", "roles": ["offline_access"]}],
        "clients": [
            {
                "clientId": "billing-api",
                "enabled": True,
                "serviceAccountsEnabled": True,
                "publicClient": False,
                "protocol": "openid-connect",
            },
            {
                "clientId": "account",
                "enabled": True,
                "publicClient": True,
                "baseUrl": f"/realms/{REALM}/account/",
                "protocol": "openid-connect",
            },
        ],
        "browserFlow": "browser",
        "attributes": {"frontendUrl": "https://login.acme.example", "userProfileEnabled": "true"},
        "keycloakVersion": "24.0.5",
    }
    return built.sample(name, pretty_json(realm, colon=" : "))


def keycloak_split(count: int, seed: int | str) -> Sample:
    """One of the users files of a split export (`--users different_files`), compact."""
    name = "keycloak-realm-users-0.json"
    built = keycloak_users(count, seed, name, awkward=False)
    data = orjson.dumps({"realm": REALM, "users": built.records})
    return built.sample(name, data)


def shaper_id(seed: int | str, name: str) -> str:
    return Shaper(seed, f"{name}:id").uuid4()


# --------------------------------------------------------------------------------------------
# Django (manage.py dumpdata contenttypes auth --indent 2)
# --------------------------------------------------------------------------------------------

DJANGO_NO_EMAIL: Final = 0
DJANGO_EMAIL_USERNAME: Final = 9
DJANGO_UNUSABLE: Final = frozenset({3, 14, 27})
#: Django's PBKDF2 iterations by release year: older accounts keep their old hashes.
DJANGO_ITERATIONS: Final = ((2019, 150_000), (2020, 216_000), (2021, 260_000), (2022, 320_000),
                            (2023, 600_000), (2024, 720_000), (2025, 870_000))  # fmt: skip


def django_password(shaper: Shaper, joined: int) -> str:
    rng = shaper.rng
    if rng.random() < 0.06:
        salt = shaper.b64(16).rstrip("=")
        digest = shaper.b64(32).rstrip("=")
        return f"argon2$argon2id$v=19$m=102400,t=2,p=8${salt}${digest}"
    year = time.gmtime(joined).tm_year
    iterations = next((n for y, n in DJANGO_ITERATIONS if y >= year), 870_000)
    return f"pbkdf2_sha256${iterations}${shaper.chars(ALNUM, 22)}${shaper.b64(32)}"


def django(count: int, seed: int | str) -> Sample:
    name = "django.json"
    shaper = Shaper(seed, name)
    rng = shaper.rng
    built = Built()
    others: list[User] = [
        {"model": "contenttypes.contenttype", "pk": pk, "fields": {"app_label": app, "model": m}}
        for pk, (app, m) in enumerate(
            (("admin", "logentry"), ("auth", "permission"), ("auth", "group"), ("auth", "user")), 1
        )
    ]
    others += [
        {"model": "auth.group", "pk": 1, "fields": {"name": "editors", "permissions": [25, 26]}},
        {"model": "auth.group", "pk": 2, "fields": {"name": "support", "permissions": [28]}},
    ]
    for record in others:
        built.add(record, skipped("not_a_user_record"))
    built.note(f"index 0 to index {len(others) - 1}", "contenttypes and auth.group records",
               skipped("not_a_user_record"))  # fmt: skip
    for i, person in enumerate(people(count, seed, name)):
        position = len(built.records)
        email = str(person["email"])
        joined = shaper.seconds()
        username = person.get("username")
        fields: User = {
            "password": django_password(shaper, joined),
            "last_login": (
                iso_micro(shaper.later(joined), rng.randrange(10**6), zone="Z")
                if rng.random() < 0.9
                else None
            ),
            "is_superuser": False,
            "username": username if isinstance(username, str) else email.split("@")[0].lower(),
            "first_name": person["given_name"],
            "last_name": person["family_name"],
            "email": email,
            "is_staff": False,
            "is_active": not (rng.random() < 0.08 or i == 5),
            "date_joined": iso_micro(joined, rng.randrange(10**6), zone="Z"),
            "groups": sorted(rng.sample((1, 2), k=rng.choice((0, 0, 0, 1, 2)))),
            "user_permissions": [],
        }
        outcome = ACCEPTED
        where = f"index {position}"
        if i == DJANGO_NO_EMAIL:
            fields.update(username="admin", email="", first_name="", last_name="",
                          is_superuser=True, is_staff=True)  # fmt: skip
            outcome = rejected("missing_email")
            built.note(where, "the superuser made by createsuperuser, e-mail left empty", outcome)
        elif i == DJANGO_EMAIL_USERNAME:
            fields["username"] = email
            built.note(where, "a username that is the e-mail (not kept as username)")
        elif rng.random() < 0.05:
            fields["is_staff"] = True
        if i in DJANGO_UNUSABLE:
            fields["password"] = "!" + shaper.chars(ALNUM, 40)
        built.add({"model": "auth.user", "pk": i + 1, "fields": fields}, outcome)
    fields_at = [(i, r["fields"]) for i, r in enumerate(built.records) if i >= len(others)]
    inactive = [f"index {i}" for i, f in fields_at if isinstance(f, dict) and not f["is_active"]]
    built.note(", ".join(inactive), "is_active: false")
    unusable = [
        f"index {i}" for i, f in fields_at if isinstance(f, dict) and f["password"][0] == "!"
    ]
    built.note(", ".join(unusable), "an unusable password (!…): no password to import")
    # dumpdata --indent 2: the records themselves start at the margin.
    body = ",\n".join(json.dumps(record, indent=2, ensure_ascii=False) for record in built.records)
    return built.sample(name, f"[\n{body}\n]\n".encode())


# --------------------------------------------------------------------------------------------
# Supabase (rows of auth.users)
# --------------------------------------------------------------------------------------------

SUPABASE_COLUMNS: Final = (
    "instance_id", "id", "aud", "role", "email", "encrypted_password", "email_confirmed_at",
    "invited_at", "confirmation_sent_at", "recovery_sent_at", "last_sign_in_at",
    "raw_app_meta_data", "raw_user_meta_data", "is_super_admin", "created_at", "updated_at",
    "phone", "phone_confirmed_at", "confirmed_at", "banned_until", "is_sso_user", "deleted_at",
    "is_anonymous",
)  # fmt: skip
SUPABASE_BANNED: Final = 3
SUPABASE_BAN_OVER: Final = 12
SUPABASE_DELETED: Final = 6
SUPABASE_ANONYMOUS: Final = 9
SUPABASE_GOOGLE: Final = 15
NO_INSTANCE: Final = "00000000-0000-0000-0000-000000000000"


def supabase_rows(count: int, seed: int | str, name: str, *, psql: bool) -> Built:
    """auth.users rows: JSON values (`psql` False) or the text psql's CSV writes (`psql` True:
    t/f booleans, `2024-01-15 10:23:45.123456+00` times, JSON columns as text, NULL empty)."""
    shaper = Shaper(seed, name)
    rng = shaper.rng
    built = Built()

    def when(seconds: int) -> str:
        micros = rng.randrange(10**6)
        return (
            iso_micro(seconds, micros, sep=" ", zone="+00") if psql else iso_micro(seconds, micros)
        )

    for i, person in enumerate(people(count, seed, name)):
        user_id = shaper.uuid4()
        email: str | None = str(person["email"]).lower()
        created = shaper.seconds()
        confirmed_at = when(shaper.later(created)) if person["email_verified"] else None
        phone = person.get("phone_number")
        phone_digits = str(phone).removeprefix("+") if isinstance(phone, str) else None
        app: User = {"provider": "email", "providers": ["email", "phone"] if phone else ["email"]}
        profile: User = {
            "sub": user_id,
            "email": email,
            "email_verified": confirmed_at is not None,
            "phone_verified": False,
        }
        if rng.random() < 0.6:
            profile["full_name"] = person["name"]
        if "picture" in person and rng.random() < 0.3:
            profile["avatar_url"] = person["picture"]
        row: dict[str, object] = {
            "instance_id": NO_INSTANCE,
            "id": user_id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": email,
            "encrypted_password": shaper.bcrypt("$2a$10$"),
            "email_confirmed_at": confirmed_at,
            "invited_at": None,
            "confirmation_sent_at": when(created),
            "recovery_sent_at": when(shaper.later(created)) if rng.random() < 0.1 else None,
            "last_sign_in_at": when(shaper.later(created)) if confirmed_at else None,
            "raw_app_meta_data": app,
            "raw_user_meta_data": profile,
            "is_super_admin": None,
            "created_at": when(created),
            "updated_at": when(shaper.later(created)),
            "phone": phone_digits,
            "phone_confirmed_at": (
                when(shaper.later(created))
                if phone_digits and person.get("phone_verified")
                else None
            ),
            "confirmed_at": confirmed_at,
            "banned_until": None,
            "is_sso_user": False,
            "deleted_at": None,
            "is_anonymous": False,
        }
        outcome = ACCEPTED
        where = f"line {i + 2}" if psql else f"index {i}"
        if i == SUPABASE_BANNED:
            row["banned_until"] = when(4_102_444_800 + rng.randrange(86_400))  # in 2100
            built.note(where, "banned_until in the future: blocked")
        elif i == SUPABASE_BAN_OVER:
            row["banned_until"] = when(created + 86_400)
            built.note(where, "banned_until in the past: the ban is over, not blocked")
        elif i == SUPABASE_DELETED:
            row["deleted_at"] = when(shaper.later(created))
            outcome = skipped("deleted")
            built.note(where, "deleted_at set (soft-deleted)", outcome)
        elif i == SUPABASE_ANONYMOUS:
            email = None
            row.update(email=None, encrypted_password=None, email_confirmed_at=None,
                       confirmation_sent_at=None, confirmed_at=None, phone=None,
                       phone_confirmed_at=None, is_anonymous=True)  # fmt: skip
            row["raw_app_meta_data"] = {}
            row["raw_user_meta_data"] = {}
            outcome = skipped("anonymous")
            built.note(where, "an anonymous sign-in (is_anonymous)", outcome)
        elif i == SUPABASE_GOOGLE:
            google_id = str(10**20 + rng.randrange(10**20))
            row["encrypted_password"] = None
            row["raw_app_meta_data"] = {"provider": "google", "providers": ["google"]}
            row["raw_user_meta_data"] = {
                "iss": "https://accounts.google.com",
                "sub": google_id,
                "name": person["name"],
                "email": email,
                "picture": person.get("picture"),
                "full_name": person["name"],
                "avatar_url": person.get("picture"),
                "provider_id": google_id,
                "email_verified": True,
                "phone_verified": False,
            }
            outcome = rejected("not_database_user")
            built.note(where, "a Google user (raw_app_meta_data.provider google)", outcome)
        if psql:
            built.add({column: psql_text(row[column]) for column in SUPABASE_COLUMNS}, outcome)
        else:
            built.add(row, outcome)
    unconfirmed = [
        f"line {i + 2}" if psql else f"index {i}"
        for i, row in enumerate(built.records)
        if row["email"] and not row["email_confirmed_at"]
    ]
    built.note(", ".join(unconfirmed), "email_confirmed_at null: email_verified false")
    built.note("(every user with a phone)", "phone stored without '+': imported as +<digits>")
    return built


def psql_text(value: object) -> str:
    """A value as psql's CSV output writes it."""
    if value is None:
        return ""
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def supabase_json(count: int, seed: int | str) -> Sample:
    built = supabase_rows(count, seed, "supabase.json", psql=False)
    data = orjson.dumps(built.records, option=orjson.OPT_INDENT_2) + b"\n"
    return built.sample("supabase.json", data)


def supabase_csv(count: int, seed: int | str) -> Sample:
    """`\\copy (select * from auth.users) to 'supabase.csv' with csv header`."""
    built = supabase_rows(count, seed, "supabase.csv", psql=True)
    rows = [[str(row[column]) for column in SUPABASE_COLUMNS] for row in built.records]
    return built.sample("supabase.csv", csv_bytes(SUPABASE_COLUMNS, rows))


# --------------------------------------------------------------------------------------------
# A spreadsheet saved as CSV, and its mapping
# --------------------------------------------------------------------------------------------

SHEET_COLUMNS: Final = (
    "Customer ID", "Email Address", "Full Name", "username", "Verified", "Plan", "Signup Date",
    "Phone", "Newsletter",
)  # fmt: skip
SHEET_NO_EMAIL: Final = 17
USERS_MAP: Final = """\
# How sample_data/users.csv (a CRM spreadsheet saved as "CSV UTF-8") becomes import users:
#   orchestrator run sample_data/users.csv --from csv --map sample_data/users.map.toml ...
# [fields]: import field = the column that fills it ("" leaves the field out).
# [constants]: import field = the value every user gets.

[fields]
user_id = "Customer ID"
email = "Email Address"
name = "Full Name"
email_verified = "Verified"    # yes/no
# The sheet's own "username" column holds display handles with spaces, which are not valid
# Auth0 usernames: leave the field out rather than reject those users.
username = ""
app_metadata.plan = "Plan"
user_metadata.signup_date = "Signup Date"
user_metadata.newsletter = "Newsletter"

[constants]
app_metadata.imported_from = "crm-spreadsheet"
"""


def sheet_phone(phone: object) -> str:
    """A phone number as people type it in a sheet: (212) 555-0101 at home, E.164 abroad."""
    if not isinstance(phone, str):
        return ""
    if phone.startswith("+1"):
        return f"({phone[2:5]}) {phone[5:8]}-{phone[8:]}"
    return phone


def spreadsheet(count: int, seed: int | str) -> Sample:
    """A CRM's users as a spreadsheet saves them as "CSV UTF-8": a BOM, CRLF line ends, column
    titles for people, yes/no, dates as the locale writes them, phone numbers with spaces."""
    name = "users.csv"
    shaper = Shaper(seed, name)
    rng = shaper.rng
    built = Built()
    for i, person in enumerate(people(count, seed, name)):
        joined = time.gmtime(shaper.seconds())
        phone = person.get("phone_number")
        handle = f"{person['given_name']} {str(person['family_name'])[:1]}."
        row = {
            "Customer ID": f"CUS-{100_000 + i * 7 + rng.randrange(7)}",
            "Email Address": str(person["email"]),
            "Full Name": str(person["name"]),
            "username": handle,
            "Verified": "yes" if person["email_verified"] else "no",
            "Plan": str(metadata(person, "app_metadata").get("plan", "free")).title(),
            "Signup Date": time.strftime("%m/%d/%Y", joined),
            "Phone": sheet_phone(phone),
            "Newsletter": rng.choice(("yes", "no", "")),
        }
        outcome = ACCEPTED
        if i == SHEET_NO_EMAIL:
            row["Email Address"] = ""
            outcome = rejected("missing_email")
            built.note(f"line {i + 2}", "a row without an e-mail address", outcome)
        built.add(dict(row), outcome)
    built.note("(every row)", 'username "First L." has a space: left out by the mapping')
    rows = [[str(row[column]) for column in SHEET_COLUMNS] for row in built.records]
    return built.sample(name, csv_bytes(SHEET_COLUMNS, rows, excel=True))


# --------------------------------------------------------------------------------------------
# All of them
# --------------------------------------------------------------------------------------------

Builder = Callable[[int, int | str], Sample]
#: The samples' password hashes are random bytes (no password opens them), and some users have none
#: (Django's "!", Firebase's scrypt, an export without support's hash file): their imports say so.
ALLOW: Final = "--allow-missing-passwords"
BUILDERS: Final[dict[str, tuple[Builder, tuple[str, ...]]]] = {
    "auth0-export.csv": (auth0_csv, ("--from", "auth0-export", ALLOW)),
    "firebase.json": (firebase, ("--from", "firebase", ALLOW)),
    "firebase-compact.json": (firebase_compact, ("--from", "firebase", ALLOW)),
    "cognito.json": (cognito_json, ("--from", "cognito")),
    "cognito.csv": (cognito_csv, ("--from", "cognito")),
    "keycloak-realm.json": (keycloak_realm, ("--from", "keycloak", ALLOW)),
    "keycloak-realm-users-0.json": (keycloak_split, ("--from", "keycloak", ALLOW)),
    "django.json": (django, ("--from", "django", ALLOW)),
    "supabase.json": (supabase_json, ("--from", "supabase", ALLOW)),
    "supabase.csv": (supabase_csv, ("--from", "supabase", ALLOW)),
    "users.csv": (spreadsheet, ("--from", "csv", "--map", f"sample_data/{MAP_FILE}")),
}
assert set(BUILDERS) == set(SOURCE_COUNTS)


def build(name: str, seed: int | str, count: int | None = None) -> Sample:
    """The sample file `name` (a key of BUILDERS)."""
    make, _ = BUILDERS[name]
    return make(SOURCE_COUNTS[name] if count is None else count, seed)


def auth0_export_expectations(users: Sequence[User], file: str) -> list[Expected]:
    """The two imports of the whole-tenant Auth0 export: every database, and one of them."""
    args = ("--from", "auth0-export", ALLOW)
    whole = auth0_ndjson_outcomes(users, None)
    legacy = auth0_ndjson_outcomes(users, LEGACY_DATABASE)

    def social(outcome: str) -> tuple[Case, ...]:
        cases = []
        for provider, what in (("google-oauth2", "Google users"), ("samlp", "SAML users")):
            lines = [
                f"line {i + 1}"
                for i, user in enumerate(users)
                if str(user["user_id"]).startswith(provider + "|")
            ]
            if lines:
                cases.append(Case(", ".join(lines), what, outcome))
        return tuple(cases)

    return [
        Expected(file, args, tuple(whole), social(rejected("not_database_user"))),
        Expected(
            file,
            (*args, "--only-connection", LEGACY_DATABASE),
            tuple(legacy),
            social(skipped("other_connection")),
            note=f"{DEFAULT_DATABASE} users and the social ones are skipped",
        ),
    ]


def write_sources(out: Path, *, seed: int, count: int | None = None) -> list[tuple[Path, int, int]]:
    """Write every sample file, the mapping of users.csv and sources.expected.json into `out`.

    Args:
        out: the directory (it exists).
        seed: the random seed.
        count: users per file (default: SOURCE_COUNTS).

    Returns:
        (path, records, bytes) of each file written.
    """
    written: list[tuple[Path, int, int]] = []
    # auth0-export.ndjson.gz is generate.py's own `ndjson` kind: its expectations are listed here.
    exported = list(
        iter_users(DEFAULT_COUNTS["ndjson"] if count is None else count, seed=seed,
                   flavour="auth0-export")
    )  # fmt: skip
    expectations = auth0_export_expectations(exported, "auth0-export.ndjson.gz")
    for name, (_, args) in BUILDERS.items():
        sample = build(name, seed, count)
        path = out / name
        path.write_bytes(sample.data)
        written.append((path, sample.records, len(sample.data)))
        expectations.append(Expected(name, args, tuple(sample.outcomes), tuple(sample.cases)))
    map_path = out / MAP_FILE
    map_path.write_text(USERS_MAP, encoding="utf-8")
    written.append((map_path, 0, len(USERS_MAP.encode())))
    document = {
        "about": (
            "What `orchestrator run FILE ARGS` makes of each sample of sources.py: users "
            "accepted, rejected by reason, skipped by reason (records = all three), and the "
            "notable records, where the rejects file names their positions."
        ),
        "imports": [expected.as_json() for expected in expectations],
    }
    expected_path = out / EXPECTED_FILE
    data = pretty_json(document)
    expected_path.write_bytes(data)
    written.append((expected_path, len(expectations), len(data)))
    return written
