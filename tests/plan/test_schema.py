"""Tests of the import schema's rules: published examples, one reject per rule, properties."""

from __future__ import annotations

import base64
import copy
import gc
import hashlib
import hmac
import re
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.plan import schema
from orchestrator.plan.schema import (
    ALLOWED_FIELDS,
    AUTH0_EXPORT_FIELDS,
    FORBIDDEN_APP_METADATA_KEYS,
    REASONS,
    Problem,
    check_user,
)
from orchestrator.plan.schema import user as layouts

User = dict[str, Any]
PASSWORD = b"correct horse battery staple"
from tests.run_helpers import SAMPLE_DATA


def check(value: object) -> list[Problem]:
    return check_user(value)


def reasons(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.reason, p.path) for p in problems]


# --- realistic hashes, computed with the standard library where it can ----------------------------
BCRYPT_HELLO = "$2b$10$nFguVi9LsCAcvTZFKQlRKeLVydo8ETv483lkNsSFI/Wl1Rz1Ypo1K"  # SCHEMA-PAGE
ARGON2_DOCS = (
    "$argon2id$v=19$m=65536,t=2,p=1$J6Q/82PCyaNpYKRELJyTZg"
    "$m04qUAB8rexWDR4+/0f+SFB+4XMFxt7YAvAq2UycYos"
)
_PBKDF2_SALT = b"NaCl-sodium"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _pbkdf2_phc(digest: str, iterations: int) -> str:
    derived = hashlib.pbkdf2_hmac(digest, PASSWORD, _PBKDF2_SALT, iterations, 64)
    return f"$pbkdf2-{digest}$i={iterations},l=64${_b64(_PBKDF2_SALT)}${_b64(derived)}"


def _ssha(salt: bytes) -> str:
    return "{SSHA}" + base64.b64encode(hashlib.sha1(PASSWORD + salt).digest() + salt).decode()


def cph(algorithm: str, **hash_: Any) -> dict[str, Any]:
    return {"algorithm": algorithm, "hash": hash_}


CUSTOM_HASHES: dict[str, dict[str, Any]] = {
    "md4-docs": cph("md4", value="AbuUujgF0pPPkJPSFRTpmA==", encoding="base64"),
    "md5-hex": cph("md5", value=hashlib.md5(PASSWORD).hexdigest(), encoding="hex"),
    "md5-hex-upper": cph("md5", value=hashlib.md5(PASSWORD).hexdigest().upper(), encoding="hex"),
    "sha1-base64": cph(
        "sha1", value=base64.b64encode(hashlib.sha1(PASSWORD).digest()).decode(), encoding="base64"
    ),
    "sha256-salted": {
        **cph("sha256", value=hashlib.sha256(b"abc123" + PASSWORD).hexdigest(), encoding="hex"),
        "salt": {"value": "abc123", "position": "prefix"},
    },
    "sha512-urlsafe-base64": {
        **cph(
            "sha512",
            value=base64.urlsafe_b64encode(hashlib.sha512(PASSWORD + b"s").digest()).decode(),
            encoding="base64",
        ),
        "salt": {"value": "73", "encoding": "hex", "position": "suffix"},
        "password": {"encoding": "utf8"},
    },
    "bcrypt": cph("bcrypt", value=BCRYPT_HELLO),
    "bcrypt-2y-salted": {
        **cph("bcrypt", value="$2y$12$" + "a" * 22 + "b" * 31, encoding="utf8"),
        "salt": {"value": "pepper", "position": "suffix"},
    },
    "argon2-docs": cph("argon2", value=ARGON2_DOCS),
    "argon2i-no-version": cph(
        "argon2",
        value="$argon2i$m=4096,t=3,p=1$c29tZXNhbHQ$Kx7cTnvtA3LJp3vTr1bkrA",
        encoding="utf8",
    ),
    "pbkdf2-sha512": cph("pbkdf2", value=_pbkdf2_phc("sha512", 10_000)),
    "pbkdf2-md4-docs": cph(
        "pbkdf2",
        value="$pbkdf2-md4$i=100000,l=64$+N375B8q0Fw$fp2R9KAM4hK/votGHC5Fu+jhqbxUD8+Nic/EMSGvNC3UP"
        "/k7wSHI0uXluHRSkZfl/BOheYqNOemayG90ZaSSQw",
        encoding="utf8",
    ),
    "ldap-ssha": cph("ldap", value=_ssha(b"4salt"), encoding="utf8"),
    "ldap-ssha384-docs": cph(
        "ldap",
        value="{SSHA384}/cgEjdoZh85DhurDeOQEMO1rMlAur93SVPbYe5XSD4lF7nNuvrBju5hUeg9A6agRemgSXG"
        "l5YuE=",
        encoding="utf8",
    ),
    "hmac-sha256": cph(
        "hmac",
        value=hmac.new(b"server-key", PASSWORD, "sha256").hexdigest(),
        encoding="hex",
        digest="sha256",
        key={"value": "server-key"},
    ),
    "hmac-docs": cph(
        "hmac",
        value="cg7f42jH39/2EaAU4wNd4s2lKIk=",
        encoding="base64",
        digest="sha1",
        key={"value": "736868", "encoding": "hex"},
    ),
    "scrypt": {
        **cph(
            "scrypt",
            value=hashlib.scrypt(PASSWORD, salt=b"abc123", n=1024, r=8, p=1, dklen=32).hex(),
            encoding="hex",
        ),
        "salt": {"value": "abc123", "encoding": "utf8"},
        "keylen": 32,
        "cost": 1024,
        "blockSize": 8,
        "parallelization": 1,
    },
}


# --- published examples ---------------------------------------------------------------------------
SCHEMA_PAGE_BASIC: User = {
    "email": "john.doe@contoso.com",
    "email_verified": False,
    "app_metadata": {"roles": ["admin"], "plan": "premium"},
    "user_metadata": {"theme": "light"},
}

SCHEMA_PAGE_CUSTOM_HASH_USERS: list[User] = [
    {
        "email": "antoinette@contoso.com",
        "email_verified": False,
        "custom_password_hash": CUSTOM_HASHES["md4-docs"],
    },
    {
        "email": "mary@contoso.com",
        "email_verified": False,
        "custom_password_hash": {
            "algorithm": "sha256",
            "hash": {
                "value": "d24e794fce503c3ddb1cd1ba1dd5d9b250cf9917336a0316fefd87fecf79200f",
                "encoding": "hex",
            },
            "salt": {"value": "abc123", "position": "prefix"},
        },
    },
    {
        "email": "velma@contoso.com",
        "email_verified": False,
        "custom_password_hash": cph(
            "bcrypt", value="$2b$10$C9hB01.YxRSTcn/ZOOo4j.TW7xCKKFKBSF.C7E0xiUwumqIDqWUXG"
        ),
    },
    {"email": "edward@contoso.com", "custom_password_hash": CUSTOM_HASHES["argon2-docs"]},
    {"email": "terrell@contoso.com", "custom_password_hash": CUSTOM_HASHES["pbkdf2-md4-docs"]},
    {"email": "sean@contoso.com", "custom_password_hash": CUSTOM_HASHES["ldap-ssha384-docs"]},
    {"email": "peter@contoso.com", "custom_password_hash": CUSTOM_HASHES["hmac-docs"]},
    {
        "email": "carmella@contoso.com",
        "email_verified": False,
        "custom_password_hash": {
            "algorithm": "scrypt",
            "hash": {
                "value": "097f6197e1b41538f723e32aa7a68e8d76227d8e432ce5faa4882a913032db29",
                "encoding": "hex",
            },
            "salt": {"value": "abc123", "encoding": "utf8"},
            "keylen": 32,
            "cost": 4096,
        },
    },
    {
        "user_id": "2000",
        "email": "examplecouser20@gmail.com",
        "given_name": "ExampleCo User",
        "name": "ExampleCoUser20",
        "custom_password_hash": cph(
            "bcrypt", value="$2a$10$aHF7mbpWT6tZ7PJVtwtjNelaKbszikcYBCB2jibvbFcGFmOsu/s4K"
        ),
    },
]

SCHEMA_PAGE_MFA_USERS: list[User] = [
    {
        "email": "antoinette@contoso.com",
        "mfa_factors": [
            {"totp": {"secret": "2PRXZWZAYYDAWCD"}},
            {"phone": {"value": "+15551112233"}},
            {"email": {"value": "antoinette@antoinette.biz"}},
        ],
    },
    {"email": "mary@contoso.com", "mfa_factors": [{"totp": {"secret": "JBTWY3DPEHPK3PNP"}}]},
    {"email": "velma@contoso.com", "mfa_factors": [{"phone": {"value": "+15551234567"}}]},
    {"email": "edward@contoso.com", "mfa_factors": [{"email": {"value": "edward@edward.biz"}}]},
]

GO_CASSETTE_USERS: list[User] = [
    {"email": "auzironian@example.com", "email_verified": True},
    {"email": "chuck630@example.com", "email_verified": True},
]

FULL_USER: User = {
    "email": "jane.o'neil+tag@sub-domain.example.co.uk",
    "email_verified": True,
    "phone_number": "+12125550001",
    "phone_verified": False,
    "user_id": "63d16b60c55b3650a5c9fff9",
    "username": "jane_o.neil-1",
    "given_name": "Jane",
    "family_name": "O'Neil",
    "name": "Jane O'Neil",
    "nickname": "jane",
    "picture": "https://secure.gravatar.com/avatar/1eafdbc62a30a384b6d9a04e1cc21500?s=480&r=pg",
    "blocked": False,
    "password_hash": BCRYPT_HELLO,
    "app_metadata": {"plan": "pro", "roles": ["admin"], "nested": {"deep": [{"ok": 1}]}},
    "user_metadata": {"theme": "dark", "prefs": {"lang": "en-GB"}},
    "mfa_factors": SCHEMA_PAGE_MFA_USERS[0]["mfa_factors"],
}


@pytest.mark.parametrize(
    "user",
    [
        SCHEMA_PAGE_BASIC,
        *SCHEMA_PAGE_CUSTOM_HASH_USERS,
        *SCHEMA_PAGE_MFA_USERS,
        *GO_CASSETTE_USERS,
        FULL_USER,
        {"email": "üser@bücher.example"},  # a non-ASCII address
        {"email": "a@" + "b" * 63 + ".example.com"},  # a 63-character label is the maximum
        {"email": "x@example.com", "name": "😀" * 150},  # 300 UTF-16 units: exactly the limit
        {"email": "x@example.com", "user_id": "ユーザー42", "picture": "https://例え.jp/写真.png"},
        {"email": "x@example.com", "user_id": "auth0|63d16b60c55b3650a5c9fff9"},  # not normalised
    ],
)
def test_published_and_realistic_users_are_valid(user: User) -> None:
    assert check(copy.deepcopy(user)) == []


@pytest.mark.parametrize("name", sorted(CUSTOM_HASHES))
def test_every_algorithm_with_a_realistic_hash_is_valid(name: str) -> None:
    user = {"email": "x@example.com", "custom_password_hash": copy.deepcopy(CUSTOM_HASHES[name])}
    assert check(user) == []


def test_the_generated_samples_are_valid_and_the_mixed_rejects_are_found() -> None:
    users = orjson.loads((SAMPLE_DATA / "users.json").read_bytes())
    assert not any(map(check, users))
    mixed = orjson.loads((SAMPLE_DATA / "mixed.json").read_bytes())
    expected = orjson.loads((SAMPLE_DATA / "mixed.expected.json").read_bytes())
    rejects = {reject["index"]: reject for reject in expected["rejects"]}
    for index, entry in enumerate(mixed):
        reject = rejects.get(index)
        if reject is None or reject["reason"] in (
            "duplicate_email",
            "duplicate_user_id",
            "too_large",
        ):
            assert check(entry) == [], index  # those three are decided by other modules
        else:
            assert reasons(check(entry)) == [(reject["reason"], reject["path"])], index


# --- one invalid case per rule --------------------------------------------------------------------
SECRET_HASH = "$2b$10$SECRETsecretSECRETsecretSECRETsecretSECRETsecretSECRE"  # 53 after prefix
TOTP_SECRET = "JBSWY3DPEHPK3PXPSECRETTOTP"


def with_(**changes: Any) -> Callable[[User], None]:
    def mutate(user: User) -> None:
        user.update(changes)

    return mutate


def without(key: str) -> Callable[[User], None]:
    def mutate(user: User) -> None:
        del user[key]

    return mutate


def custom(*, replace: dict[str, Any] | None = None, **top: Any) -> Callable[[User], None]:
    """Start from an md5 hash (or `replace`), then override top-level keys (None deletes)."""

    def mutate(user: User) -> None:
        value = copy.deepcopy(replace or CUSTOM_HASHES["md5-hex"])
        for key, item in top.items():
            if item is None:
                value.pop(key, None)
            else:
                value[key] = item
        user.pop("password_hash", None)
        user["custom_password_hash"] = value

    return mutate


def custom_hash(base: str, **hash_: Any) -> Callable[[User], None]:
    """Start from CUSTOM_HASHES[base], then override keys of its hash object (None deletes)."""
    value = copy.deepcopy(CUSTOM_HASHES[base])
    for key, item in hash_.items():
        if item is None:
            value["hash"].pop(key, None)
        else:
            value["hash"][key] = item
    return custom(replace=value)


def mfa(*factors: Any) -> Callable[[User], None]:
    return with_(mfa_factors=list(factors))


BASE: User = {
    "email": "jane@example.com",
    "email_verified": True,
    "user_id": "abc123",
    "username": "jane",
    "name": "Jane Doe",
    "given_name": "Jane",
    "family_name": "Doe",
    "nickname": "jd",
    "picture": "https://example.com/jane.png",
    "password_hash": BCRYPT_HELLO,
    "app_metadata": {"plan": "pro"},
    "user_metadata": {"theme": "dark"},
}

CPH, P = "invalid_custom_password_hash", "/custom_password_hash"
MFA, M = "invalid_mfa_factors", "/mfa_factors"

INVALID_CASES: list[tuple[str, Callable[[User], None], str, str]] = [
    ("missing email", without("email"), "missing_email", "/email"),
    ("email without @", with_(email="jane.example.com"), "invalid_email", "/email"),
    ("email with two @", with_(email="a@b@example.com"), "invalid_email", "/email"),
    ("email empty local", with_(email="@example.com"), "invalid_email", "/email"),
    ("email no dot", with_(email="jane@localhost"), "invalid_email", "/email"),
    ("email space", with_(email="ja ne@example.com"), "invalid_email", "/email"),
    ("email control", with_(email="ja\x01ne@example.com"), "invalid_email", "/email"),
    ("email local 65", with_(email="a" * 65 + "@example.com"), "invalid_email", "/email"),
    ("email over 254", with_(email="a@" + "b" * 250 + ".com"), "invalid_email", "/email"),
    ("email label 64", with_(email="a@" + "b" * 64 + ".com"), "invalid_email", "/email"),
    ("email hyphen label", with_(email="a@-bad.com"), "invalid_email", "/email"),
    ("email trailing dot", with_(email="a@example.com."), "invalid_email", "/email"),
    ("email underscore", with_(email="a@ex_ample.com"), "invalid_email", "/email"),
    ("email not a string", with_(email=["a@example.com"]), "invalid_type", "/email"),
    ("email_verified string", with_(email_verified="true"), "invalid_type", "/email_verified"),
    ("blocked number", with_(blocked=1), "invalid_type", "/blocked"),
    ("phone_verified null", with_(phone_verified=None), "invalid_type", "/phone_verified"),
    ("given_name empty", with_(given_name=""), "invalid_length", "/given_name"),
    ("given_name 151", with_(given_name="g" * 151), "invalid_length", "/given_name"),
    ("family_name 151", with_(family_name="f" * 151), "invalid_length", "/family_name"),
    ("name 301", with_(name="n" * 301), "invalid_length", "/name"),
    ("name 301 utf16", with_(name="😀" * 150 + "x"), "invalid_length", "/name"),
    ("nickname 301", with_(nickname="k" * 301), "invalid_length", "/nickname"),
    ("name number", with_(name=42), "invalid_type", "/name"),
    (
        "phone spaces",
        with_(phone_number="+1 212 555 0001"),
        "invalid_phone_number",
        "/phone_number",
    ),
    ("phone no plus", with_(phone_number="12125550001"), "invalid_phone_number", "/phone_number"),
    (
        "phone 16 digits",
        with_(phone_number="+1" + "2" * 15),
        "invalid_phone_number",
        "/phone_number",
    ),
    ("phone number type", with_(phone_number=12125550001), "invalid_type", "/phone_number"),
    ("username space", with_(username="jane doe"), "invalid_username", "/username"),
    ("username email", with_(username="jane@example.com"), "invalid_username", "/username"),
    ("username 129", with_(username="u" * 129), "invalid_length", "/username"),
    ("username empty", with_(username=""), "invalid_length", "/username"),
    ("user_id space", with_(user_id="abc 123"), "invalid_user_id", "/user_id"),
    ("user_id tab", with_(user_id="abc\t123"), "invalid_user_id", "/user_id"),
    ("user_id nbsp", with_(user_id="abc\u00a0123"), "invalid_user_id", "/user_id"),
    ("user_id empty", with_(user_id=""), "invalid_user_id", "/user_id"),
    ("user_id 256", with_(user_id="i" * 256), "invalid_length", "/user_id"),
    ("user_id number", with_(user_id=123), "invalid_type", "/user_id"),
    ("picture not url", with_(picture="me.png"), "invalid_picture", "/picture"),
    ("picture ftp", with_(picture="ftp://example.com/a.png"), "invalid_picture", "/picture"),
    ("picture no host", with_(picture="https:///a.png"), "invalid_picture", "/picture"),
    ("picture space", with_(picture="https://example.com/a b.png"), "invalid_picture", "/picture"),
    ("picture object", with_(picture={"url": "x"}), "invalid_type", "/picture"),
    (
        "password_hash $2x$",
        with_(password_hash="$2x$" + SECRET_HASH[4:]),
        "invalid_password_hash",
        "/password_hash",
    ),
    (
        "password_hash $2$",
        with_(password_hash="$2$10$" + SECRET_HASH[7:]),
        "invalid_password_hash",
        "/password_hash",
    ),
    (
        "password_hash short",
        with_(password_hash=SECRET_HASH[:-1]),
        "invalid_password_hash",
        "/password_hash",
    ),
    (
        "password_hash cost 3",
        with_(password_hash=SECRET_HASH.replace("$10$", "$03$")),
        "invalid_password_hash",
        "/password_hash",
    ),
    (
        "password_hash md5",
        with_(password_hash=hashlib.md5(PASSWORD).hexdigest()),
        "invalid_password_hash",
        "/password_hash",
    ),
    (
        "password_hash bytes-ish",
        with_(password_hash=[SECRET_HASH]),
        "invalid_type",
        "/password_hash",
    ),
    (
        "both password fields",
        with_(password_hash=BCRYPT_HELLO, custom_password_hash=CUSTOM_HASHES["md5-hex"]),
        "exclusive_password_fields",
        "/custom_password_hash",
    ),
    (
        "custom not object",
        with_(custom_password_hash=SECRET_HASH),
        "invalid_type",
        "/custom_password_hash",
    ),
    ("custom no algorithm", custom(algorithm=None), CPH, P + "/algorithm"),
    ("custom unknown algorithm", custom(algorithm="sha3"), CPH, P + "/algorithm"),
    ("custom no hash", custom(hash=None), CPH, P + "/hash"),
    ("custom hash string", custom(hash=SECRET_HASH), CPH, P + "/hash"),
    ("custom extra key", custom(iterations=5), CPH, P + "/iterations"),
    ("custom no hash value", custom_hash("md5-hex", value=None), CPH, P + "/hash/value"),
    ("custom hash value number", custom_hash("md5-hex", value=5), CPH, P + "/hash/value"),
    (
        "custom hash extra key",
        custom_hash("md5-hex", salt="SECRETSALTVALUE"),
        CPH,
        P + "/hash/salt",
    ),
    (
        "custom hash encoding enum",
        custom_hash("md5-hex", encoding="binary"),
        CPH,
        P + "/hash/encoding",
    ),
    ("md5 utf8", custom_hash("md5-hex", encoding="utf8"), CPH, P + "/hash/encoding"),
    ("md5 no encoding", custom_hash("md5-hex", encoding=None), CPH, P + "/hash/encoding"),
    ("md5 not hex", custom_hash("md5-hex", value="SECRETNOTHEXZZ"), CPH, P + "/hash/value"),
    ("sha1 not base64", custom_hash("sha1-base64", value="SECRET*NOT*B64"), CPH, P + "/hash/value"),
    ("bcrypt hex", custom_hash("bcrypt", encoding="hex"), CPH, P + "/hash/encoding"),
    ("bcrypt $2x$", custom_hash("bcrypt", value="$2x$" + SECRET_HASH[4:]), CPH, P + "/hash/value"),
    (
        "argon2 salt",
        custom(replace=CUSTOM_HASHES["argon2-docs"], salt={"value": "SECRETSALTVALUE"}),
        CPH,
        P + "/salt",
    ),
    (
        "argon2 not phc",
        custom_hash("argon2-docs", value="SECRETARGONNOTPHC"),
        CPH,
        P + "/hash/value",
    ),
    ("argon2 base64", custom_hash("argon2-docs", encoding="base64"), CPH, P + "/hash/encoding"),
    (
        "ldap crypt",
        custom_hash("ldap-ssha", value="{CRYPT}SECRETCRYPTVALUE"),
        CPH,
        P + "/hash/value",
    ),
    ("ldap no scheme", custom_hash("ldap-ssha", value="SECRETNOSCHEME"), CPH, P + "/hash/value"),
    (
        "ldap salt",
        custom(replace=CUSTOM_HASHES["ldap-ssha"], salt={"value": "SECRETSALTVALUE"}),
        CPH,
        P + "/salt",
    ),
    (
        "pbkdf2 salt",
        custom(replace=CUSTOM_HASHES["pbkdf2-sha512"], salt={"value": "SECRETSALTVALUE"}),
        CPH,
        P + "/salt",
    ),
    (
        "pbkdf2 digest",
        custom_hash("pbkdf2-sha512", value="$pbkdf2-sha3$i=1,l=64$SECRETSALT$SECRETHASH"),
        CPH,
        P + "/hash/value",
    ),
    (
        # Auth0 would read i=100000,l=64 into a string without them: a 32-byte hash never matches
        # l=64, and a converter that leaves i= out has lost the source's iteration count.
        "pbkdf2 no params",
        custom_hash("pbkdf2-sha512", value="$pbkdf2-sha256$" + _PBKDF2_SALT.hex() + "$" + "A" * 43),
        CPH,
        P + "/hash/value",
    ),
    (
        "pbkdf2 padded",
        custom_hash("pbkdf2-sha512", value="$pbkdf2-sha512$SECRETSALT==$SECRETHASH=="),
        CPH,
        P + "/hash/value",
    ),
    # What the values of a well-shaped hash say (sources.hashes.value_faults): wrong conversions.
    (
        "pbkdf2 l not the hash's",
        custom_hash(
            "pbkdf2-sha512", value=_pbkdf2_phc("sha512", 10_000).replace(",l=64$", ",l=32$")
        ),
        CPH,
        P + "/hash/value",
    ),
    ("argon2 padded", custom_hash("argon2-docs", value=ARGON2_DOCS + "="), CPH, P + "/hash/value"),
    ("md5 of 20 bytes", custom_hash("md5-hex", value=PASSWORD.hex()[:40]), CPH, P + "/hash/value"),
    ("hmac digest size", custom_hash("hmac-sha256", digest="sha512"), CPH, P + "/hash/value"),
    (
        "ldap ssha too short",
        custom_hash("ldap-ssha", value="{SSHA}" + base64.b64encode(b"SECRET-12345").decode()),
        CPH,
        P + "/hash/value",
    ),
    (
        "scrypt keylen not the hash's",
        custom(replace=CUSTOM_HASHES["scrypt"], keylen=64),
        CPH,
        P + "/keylen",
    ),
    ("hmac no digest", custom_hash("hmac-sha256", digest=None), CPH, P + "/hash/digest"),
    ("hmac bad digest", custom_hash("hmac-sha256", digest="sha3"), CPH, P + "/hash/digest"),
    ("hmac no key", custom_hash("hmac-sha256", key=None), CPH, P + "/hash/key"),
    (
        "hmac key no value",
        custom_hash("hmac-sha256", key={"encoding": "utf8"}),
        CPH,
        P + "/hash/key/value",
    ),
    (
        "hmac key encoding",
        custom_hash("hmac-sha256", key={"value": "SECRETKEYVALUE", "encoding": "latin1"}),
        CPH,
        P + "/hash/key/encoding",
    ),
    (
        "hmac key extra",
        custom_hash("hmac-sha256", key={"value": "SECRETKEYVALUE", "id": 1}),
        CPH,
        P + "/hash/key/id",
    ),
    (
        "hmac key not hex",
        custom_hash("hmac-sha256", key={"value": "SECRETKEYVALUE", "encoding": "hex"}),
        CPH,
        P + "/hash/key/value",
    ),
    ("hmac utf8", custom_hash("hmac-sha256", encoding="utf8"), CPH, P + "/hash/encoding"),
    ("scrypt no keylen", custom(replace=CUSTOM_HASHES["scrypt"], keylen=None), CPH, P + "/keylen"),
    ("scrypt keylen 0", custom(replace=CUSTOM_HASHES["scrypt"], keylen=0), CPH, P + "/keylen"),
    ("scrypt cost not pow2", custom(replace=CUSTOM_HASHES["scrypt"], cost=1000), CPH, P + "/cost"),
    (
        "scrypt blockSize str",
        custom(replace=CUSTOM_HASHES["scrypt"], blockSize="8"),
        CPH,
        P + "/blockSize",
    ),
    (
        "scrypt parallelization 0",
        custom(replace=CUSTOM_HASHES["scrypt"], parallelization=0),
        CPH,
        P + "/parallelization",
    ),
    ("salt no value", custom(salt={"position": "prefix"}), CPH, P + "/salt/value"),
    (
        "salt position",
        custom(salt={"value": "SECRETSALTVALUE", "position": "middle"}),
        CPH,
        P + "/salt/position",
    ),
    (
        "salt encoding",
        custom(salt={"value": "SECRETSALTVALUE", "encoding": "ascii"}),
        CPH,
        P + "/salt/encoding",
    ),
    ("salt extra", custom(salt={"value": "SECRETSALTVALUE", "rounds": 2}), CPH, P + "/salt/rounds"),
    ("salt not object", custom(salt="SECRETSALTVALUE"), CPH, P + "/salt"),
    ("password encoding", custom(password={"encoding": "utf32"}), CPH, P + "/password/encoding"),
    (
        "password extra",
        custom(password={"encoding": "utf8", "pepper": "SECRETPEPPER"}),
        CPH,
        P + "/password/pepper",
    ),
    (
        "mfa not array",
        with_(mfa_factors={"totp": {"secret": TOTP_SECRET}}),
        "invalid_type",
        "/mfa_factors",
    ),
    ("mfa empty", mfa(), MFA, M),
    ("mfa eleven", mfa(*[{"phone": {"value": "+15551234567"}}] * 11), MFA, M),
    ("mfa item string", mfa(TOTP_SECRET), MFA, M + "/0"),
    ("mfa item empty", mfa({}), MFA, M + "/0"),
    (
        "mfa two kinds",
        mfa({"totp": {"secret": TOTP_SECRET}, "phone": {"value": "+1555"}}),
        MFA,
        M + "/0",
    ),
    ("mfa unknown kind", mfa({"sms": {"value": "+15551234567"}}), MFA, M + "/0/sms"),
    ("totp lowercase", mfa({"totp": {"secret": TOTP_SECRET.lower()}}), MFA, M + "/0/totp/secret"),
    ("totp padded", mfa({"totp": {"secret": TOTP_SECRET + "=="}}), MFA, M + "/0/totp/secret"),
    (
        "totp extra",
        mfa({"totp": {"secret": TOTP_SECRET, "issuer": "x"}}),
        MFA,
        M + "/0/totp/issuer",
    ),
    ("totp missing", mfa({"totp": {}}), MFA, M + "/0/totp/secret"),
    ("totp not object", mfa({"totp": TOTP_SECRET}), MFA, M + "/0/totp"),
    ("totp number", mfa({"totp": {"secret": 12345}}), MFA, M + "/0/totp/secret"),
    ("mfa phone", mfa({"phone": {"value": "555-1234"}}), MFA, M + "/0/phone/value"),
    (
        "mfa email",
        mfa({"phone": {"value": "+15551234567"}}, {"email": {"value": "nope"}}),
        MFA,
        M + "/1/email/value",
    ),
    ("app_metadata string", with_(app_metadata="{}"), "invalid_type", "/app_metadata"),
    ("user_metadata array", with_(user_metadata=[]), "invalid_type", "/user_metadata"),
    ("metadata dot", with_(user_metadata={"a.b": 1}), "invalid_metadata_key", "/user_metadata/a.b"),
    (
        "metadata dollar",
        with_(app_metadata={"$set": 1}),
        "invalid_metadata_key",
        "/app_metadata/$set",
    ),
    (
        "metadata nested",
        with_(user_metadata={"prefs": {"x$y": 1}}),
        "invalid_metadata_key",
        "/user_metadata/prefs/x$y",
    ),
    (
        "metadata in list",
        with_(user_metadata={"l": [1, {"k.v": 1}]}),
        "invalid_metadata_key",
        "/user_metadata/l/1/k.v",
    ),
    (
        "metadata pointer escape",
        with_(user_metadata={"a/b~c.": 1}),
        "invalid_metadata_key",
        "/user_metadata/a~1b~0c.",
    ),
    ("unknown field", with_(Email="jane@example.com"), "unknown_field", "/Email"),
    ("export field", with_(logins_count=3), "unknown_field", "/logins_count"),
]


@pytest.mark.parametrize(
    ("mutate", "reason", "path"),
    [pytest.param(m, r, p, id=name) for name, m, r, p in INVALID_CASES],
)
def test_each_rule_rejects_with_its_reason_and_path(
    mutate: Callable[[User], None], reason: str, path: str
) -> None:
    user = copy.deepcopy(BASE)
    mutate(user)
    secrets = _secret_values(user)
    problems = check(user)
    assert (reason, path) in reasons(problems), problems
    for problem in problems:
        assert problem.reason in REASONS
        assert "\n" not in problem.message
        for secret in secrets:
            assert secret not in problem.message, (secret, problem)


def _secret_values(user: User) -> list[str]:
    """Every password hash, salt, key and TOTP secret string in `user` (4+ characters)."""
    found: list[str] = []

    def add(value: object, *path: str) -> None:
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and len(value) >= 4:
            found.append(value)

    add(user, "password_hash")
    add(user, "custom_password_hash")
    add(user, "custom_password_hash", "hash")
    add(user, "custom_password_hash", "hash", "value")
    add(user, "custom_password_hash", "hash", "salt")
    add(user, "custom_password_hash", "hash", "key", "value")
    add(user, "custom_password_hash", "salt")
    add(user, "custom_password_hash", "salt", "value")
    add(user, "custom_password_hash", "password", "pepper")
    factors = user.get("mfa_factors")
    for factor in factors if isinstance(factors, list) else []:
        add(factor)
        add(factor, "totp")
        add(factor, "totp", "secret")
    return found


@pytest.mark.parametrize("key", sorted(FORBIDDEN_APP_METADATA_KEYS))
def test_every_forbidden_app_metadata_key_is_rejected(key: str) -> None:
    problems = check({"email": "x@example.com", "app_metadata": {key: 1, "ok": 2}})
    assert reasons(problems) == [("forbidden_app_metadata_key", f"/app_metadata/{key}")]


def test_forbidden_keys_are_allowed_in_user_metadata() -> None:
    assert check({"email": "x@example.com", "user_metadata": {"email": "a", "blocked": 1}}) == []


def test_a_key_known_clean_elsewhere_is_still_forbidden_at_the_top_of_app_metadata() -> None:
    """Keys found clean are remembered; a reserved one must not slip into app_metadata that way."""
    nested = {"email": "x@example.com", "app_metadata": {"profile": {"email": "a", "user_id": 1}}}
    assert check(nested) == []
    assert check({"email": "x@example.com", "user_metadata": {"email": "a", "user_id": 1}}) == []
    problems = check({"email": "x@example.com", "app_metadata": {"email": "a", "user_id": 1}})
    assert reasons(problems) == [
        ("forbidden_app_metadata_key", "/app_metadata/email"),
        ("forbidden_app_metadata_key", "/app_metadata/user_id"),
    ]


def test_known_metadata_keys_still_catch_bad_keys_below_them() -> None:
    clean: dict[object, object] = {"theme": "dark", "prefs": {"lang": "en"}, "tags": ["a", 1, None]}
    for _ in range(3):  # the second time round the keys are known
        assert check({"email": "x@example.com", "user_metadata": clean}) == []
    cases: list[tuple[dict[object, object], str]] = [
        ({"prefs": {"la.ng": "en"}}, "/user_metadata/prefs/la.ng"),
        ({"tags": ["a", {"x$": 1}]}, "/user_metadata/tags/1/x$"),
        ({"prefs": {"lang": {"de.ep": 1}}}, "/user_metadata/prefs/lang/de.ep"),
        ({"theme": "dark", 3: "x"}, "/user_metadata/3"),
    ]
    for bad, path in cases:
        problems = check({"email": "x@example.com", "user_metadata": {**clean, **bad}})
        assert reasons(problems) == [("invalid_metadata_key", path)]


def test_not_an_object() -> None:
    for value in ([1], "user", 3, None, True, b"{}", ("email", "x@example.com")):
        assert reasons(check(value)) == [("not_an_object", "")]
    (problem,) = check([])
    assert "an array" in problem.message


def test_all_problems_of_a_user_are_listed_in_a_stable_order() -> None:
    user = {
        "created_at": "2023-01-01",
        "email_verified": "yes",
        "name": "",
        "password_hash": "nope",
        "custom_password_hash": {"algorithm": "md5"},
        "user_metadata": {"a.b": {"c$": 1}},
    }
    expected = [
        ("unknown_field", "/created_at"),
        ("missing_email", "/email"),
        ("invalid_type", "/email_verified"),
        ("invalid_length", "/name"),
        ("invalid_password_hash", "/password_hash"),
        ("invalid_custom_password_hash", "/custom_password_hash/hash"),
        ("invalid_metadata_key", "/user_metadata/a.b"),
        ("invalid_metadata_key", "/user_metadata/a.b/c$"),
        ("exclusive_password_fields", "/custom_password_hash"),
    ]
    # The same answer every time: the first check of a key layout and the remembered one.
    for _ in range(3):
        assert reasons(check(copy.deepcopy(user))) == expected


def test_each_object_lists_its_own_bad_keys_before_those_below() -> None:
    user = {"email": "x@example.com", "user_metadata": {"x": {"y.z": 1}, "a.b": [{"c$": 1}]}}
    assert reasons(check(user)) == [
        ("invalid_metadata_key", "/user_metadata/a.b"),
        ("invalid_metadata_key", "/user_metadata/x/y.z"),
        ("invalid_metadata_key", "/user_metadata/a.b/0/c$"),
    ]


def test_metadata_key_problems_are_capped_per_field() -> None:
    user = {"email": "x@example.com", "user_metadata": {f"k.{i}": i for i in range(50)}}
    problems = check(user)
    assert len(problems) == 11
    assert problems[-1].path == "/user_metadata"
    assert "40 more" in problems[-1].message


def test_deep_metadata_does_not_hit_the_recursion_limit() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(5_000):
        deep = {"d": deep}
    assert check({"email": "x@example.com", "user_metadata": deep}) == []
    deep["bad.key"] = 1
    problems = check({"email": "x@example.com", "user_metadata": deep})
    assert reasons(problems) == [("invalid_metadata_key", "/user_metadata/bad.key")]
    nested: list[Any] = []
    for _ in range(5_000):
        nested = [nested, {"k": 1}]
    assert check({"email": "x@example.com", "app_metadata": {"n": nested}}) == []


def test_non_string_keys_from_library_callers_are_reported_not_crashing() -> None:
    problems = check({"email": "x@example.com", "user_metadata": {1: "a"}, 2: "b"})
    assert reasons(problems) == [
        ("unknown_field", "/2"),
        ("invalid_metadata_key", "/user_metadata/1"),
    ]
    # 1, 1.0 and True are equal dict keys but not the same field name
    for key in (1, 1.0, True, None, (1, "a")):
        (problem,) = check({"email": "x@example.com", key: 0})
        assert (problem.reason, problem.path) == ("unknown_field", f"/{key}")
        assert repr(key) in problem.message


def test_integral_floats_count_as_integers_like_the_service() -> None:
    user: User = {
        "email": "x@example.com",
        "custom_password_hash": copy.deepcopy(CUSTOM_HASHES["scrypt"]),
    }
    user["custom_password_hash"]["keylen"] = 32.0
    assert check(user) == []
    for keylen in (32.5, float("inf"), float("nan"), True, "32", 0.0):
        user["custom_password_hash"]["keylen"] = keylen
        assert reasons(check(user)) == [
            ("invalid_custom_password_hash", "/custom_password_hash/keylen")
        ]


def test_unknown_export_field_is_rejected_with_a_hint_to_drop_it() -> None:
    user = {"email": "x@example.com", **dict.fromkeys(sorted(AUTH0_EXPORT_FIELDS), 1)}
    problems = check(user)
    assert [p.path for p in problems] == [f"/{key}" for key in sorted(AUTH0_EXPORT_FIELDS)]
    assert all(p.reason == "unknown_field" for p in problems)
    assert all("--drop-unknown-fields" in p.message for p in problems)
    assert all("--from auth0-export" in p.message for p in problems)


def test_unknown_field_hint_suggests_the_right_spelling() -> None:
    (problem,) = check({"email": "x@example.com", "emailVerified": True})
    assert problem.reason == "unknown_field"
    assert "email_verified" in problem.message
    (problem,) = check({"email": "x@example.com", "favourite_colour": "blue"})
    assert "user_metadata" in problem.message


def test_plain_text_password_field_gets_its_own_hint() -> None:
    (problem,) = check({"email": "x@example.com", "password": "hunter2-secret"})
    assert (problem.reason, problem.path) == ("unknown_field", "/password")
    assert "password_hash" in problem.message
    assert "hunter2-secret" not in problem.message


def test_code_like_keys_are_only_unknown_fields() -> None:
    hostile = "x'):\n    raise SystemExit  # "
    user = {"email": "x@example.com", hostile: 1, "name": "Ann", "__import__('os')": 2}
    for _ in range(3):  # the layout's check is worked out, then remembered
        assert reasons(check(dict(user))) == [
            ("unknown_field", "/x'):\n    raise SystemExit  # "),
            ("unknown_field", "/__import__('os')"),
        ]


def test_export_field_list_holds_no_importable_field() -> None:
    assert not AUTH0_EXPORT_FIELDS & ALLOWED_FIELDS


def test_each_property_has_one_rule_in_the_table_order() -> None:
    assert list(schema.RULES) == [
        "email",
        "email_verified",
        "phone_number",
        "phone_verified",
        "user_id",
        "username",
        "given_name",
        "family_name",
        "name",
        "nickname",
        "picture",
        "blocked",
        "password_hash",
        "custom_password_hash",
        "app_metadata",
        "user_metadata",
        "mfa_factors",
    ]
    assert schema.RULES.keys() == ALLOWED_FIELDS
    assert schema.BOOL_FIELDS | schema.STRING_LIMITS.keys() <= ALLOWED_FIELDS


def test_reasons_document_every_code_the_brief_names() -> None:
    brief = [
        "not_an_object",
        "missing_email",
        "invalid_email",
        "unknown_field",
        "invalid_type",
        "invalid_length",
        "invalid_phone_number",
        "invalid_password_hash",
        "invalid_custom_password_hash",
        "exclusive_password_fields",
        "invalid_mfa_factors",
        "forbidden_app_metadata_key",
        "invalid_metadata_key",
        "invalid_username",
        "invalid_user_id",
        "duplicate_email",
        "duplicate_user_id",
        "too_large",
    ]
    assert set(brief) <= REASONS.keys()
    assert all(description and "\n" not in description for description in REASONS.values())
    assert {reason for _, _, reason, _ in INVALID_CASES} <= REASONS.keys()


def test_space_or_control_is_whitespace_and_control_characters() -> None:
    """The spelled-out class means what `\\s` plus the C0/C1 controls mean, on this Python."""
    spelled = re.compile(f"[{schema.SPACE_OR_CONTROL}]")
    wanted = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
    assert [c for c in range(sys.maxunicode + 1) if spelled.match(chr(c))] == [
        c for c in range(sys.maxunicode + 1) if wanted.match(chr(c))
    ]


def test_string_and_object_subclasses_are_checked_as_what_they_hold() -> None:
    class Text(str):
        pass

    user = OrderedDict(
        email=Text("x@example.com"),
        username=Text("jane"),
        picture=Text("https://example.com/a.png"),
        user_id=Text("abc"),
        name=Text("Jane"),
        mfa_factors=[{Text("email"): {"value": Text("x@example.com")}}],
        custom_password_hash={
            "algorithm": Text("md5"),
            "hash": {"value": Text("ab" * 16), "encoding": Text("hex")},
        },
        user_metadata=OrderedDict(theme=Text("dark")),
    )
    assert check(user) == []
    assert reasons(check({"email": Text("x@")})) == [("invalid_email", "/email")]
    assert reasons(check({"email": "x@example.com", "name": Text("")})) == [
        ("invalid_length", "/name")
    ]


# --- properties -----------------------------------------------------------------------------------
_LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_EMAILS = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,30}", fullmatch=True),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "co", "example", "xn--p1ai"]),
)
_JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_META_KEY = st.text(max_size=12).filter(lambda k: "." not in k and "$" not in k)
_METADATA = st.dictionaries(
    _META_KEY,
    st.recursive(
        _JSON_LEAF,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_META_KEY, inner, max_size=3),
        max_leaves=8,
    ),
    max_size=5,
)


def _text(limit: int) -> st.SearchStrategy[str]:
    """Valid for a 1..limit field: ASCII up to the limit, any script up to half (UTF-16 safe)."""
    return st.text(min_size=1, max_size=limit // 2) | st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=limit
    )


_FACTORS = st.lists(
    st.one_of(
        st.from_regex(r"[A-Z2-7]{16,32}", fullmatch=True).map(lambda s: {"totp": {"secret": s}}),
        st.from_regex(r"\+[0-9]{1,15}", fullmatch=True).map(lambda s: {"phone": {"value": s}}),
        _EMAILS.map(lambda s: {"email": {"value": s}}),
    ),
    min_size=1,
    max_size=10,
)
_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "email_verified": st.booleans(),
    "phone_verified": st.booleans(),
    "blocked": st.booleans(),
    "phone_number": st.from_regex(r"\+[0-9]{1,15}", fullmatch=True),
    "user_id": st.text(
        alphabet=st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")),
        min_size=1,
        max_size=120,
    ),
    "username": st.from_regex(r"[A-Za-z0-9^$!#.+'~_`-]{1,128}", fullmatch=True),
    "given_name": _text(150),
    "family_name": _text(150),
    "name": _text(300),
    "nickname": _text(300),
    "picture": st.builds(
        lambda scheme, host, path: f"{scheme}://{host}.example/{path}",
        st.sampled_from(["http", "https", "HTTPS"]),
        _LABEL,
        st.from_regex(r"[A-Za-z0-9._~%/?=&-]{0,40}", fullmatch=True),
    ),
    "app_metadata": _METADATA.map(
        lambda m: {k: v for k, v in m.items() if k not in FORBIDDEN_APP_METADATA_KEYS}
    ),
    "user_metadata": _METADATA,
    "mfa_factors": _FACTORS,
}
_PASSWORD = st.one_of(
    st.none(),
    st.builds(
        lambda variant, cost, rest: {"password_hash": f"$2{variant}${cost:02d}${rest}"},
        st.sampled_from("aby"),
        st.integers(4, 31),
        st.from_regex(r"[./A-Za-z0-9]{53}", fullmatch=True),
    ),
    st.sampled_from(sorted(CUSTOM_HASHES)).map(
        lambda name: {"custom_password_hash": copy.deepcopy(CUSTOM_HASHES[name])}
    ),
)


@st.composite
def valid_users(draw: st.DrawFn) -> User:
    user: User = {"email": draw(_EMAILS)}
    for key, strategy in _OPTIONAL.items():
        if draw(st.booleans()):
            user[key] = draw(strategy)
    password = draw(_PASSWORD)
    if password:
        user.update(password)
    return user


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(valid_users())
def test_generated_valid_users_always_pass(user: User) -> None:
    assert check(user) == []


# Every (reason, mutation) of INVALID_CASES applied to a random valid user must still be caught.
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(valid_users(), st.sampled_from(INVALID_CASES))
def test_each_mutation_of_a_valid_user_is_caught(
    user: User, case: tuple[str, Callable[[User], None], str, str]
) -> None:
    _, mutate, reason, path = case
    mutate(user)
    assert (reason, path) in reasons(check(user))


def test_messages_quote_no_value_except_field_and_key_names() -> None:
    """Belt and braces for the secret rule: no message contains a long run from a hash."""
    user = copy.deepcopy(BASE)
    user["password_hash"] = SECRET_HASH.replace("$2b$", "$2x$")
    user["mfa_factors"] = [{"totp": {"secret": "lowercase-secret-value"}}]
    for problem in check(user):
        assert not re.search(r"SECRET|secret-value", problem.message)


class _Opaque:
    """A value no JSON decoder makes, whose str() and repr() fail."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


_ODD_LEAF = st.one_of(
    _JSON_LEAF,
    st.floats(),  # nan and inf too
    st.integers(min_value=10**5000, max_value=10**5000 + 10),  # str() refuses > 4300 digits
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),  # lone surrogates
    st.binary(max_size=4),
    st.builds(_Opaque),
    st.sampled_from([BCRYPT_HELLO, "+15551234567", "https://a.example/", "a@b.co", "x" * 300]),
)
_ODD_KEY = st.one_of(
    st.text(max_size=6),
    st.sampled_from(sorted(ALLOWED_FIELDS | {"totp", "hash", "value", "algorithm", "encoding"})),
    st.integers(),
    st.integers(min_value=10**5000, max_value=10**5000 + 10),
    st.floats(allow_nan=False),
    st.none(),
    st.builds(_Opaque),
)
_ODD_VALUE = st.recursive(
    _ODD_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(_ODD_KEY, inner, max_size=3)
        | st.tuples(inner, inner)
    ),
    max_leaves=8,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(ALLOWED_FIELDS)) | _ODD_KEY, _ODD_VALUE, max_size=8)
    | _ODD_VALUE
)
def test_odd_inputs_never_raise(value: object) -> None:
    problems = check(value)
    assert isinstance(problems, list)
    for problem in problems:
        assert problem.reason in REASONS
        assert isinstance(problem.path, str)
        assert isinstance(problem.message, str)
        assert "\n" not in problem.message


@pytest.mark.parametrize("field", sorted(ALLOWED_FIELDS))
def test_absurd_nesting_in_any_field_never_raises(field: str) -> None:
    deep: object = "leaf"
    for level in range(100_000):
        deep = [deep] if level % 2 else {"value": deep}
    problems = check({"email": "x@example.com", field: deep})
    assert all(problem.reason in REASONS for problem in problems)


def test_a_huge_int_key_is_named_in_the_path_without_failing() -> None:
    huge = 10**5000
    problems = check({"email": "x@example.com", "user_metadata": {huge: 1}, huge: 2})
    assert reasons(problems) == [
        ("unknown_field", "/<int>"),
        ("invalid_metadata_key", "/user_metadata/<int>"),
    ]


def test_layouts_are_bounded() -> None:
    for i in range(layouts._MAX_LAYOUTS + 10):
        assert reasons(check({"email": "x@example.com", f"extra{i}": 1})) == [
            ("unknown_field", f"/extra{i}")
        ]
    assert len(layouts._LAYOUTS) <= layouts._MAX_LAYOUTS


def test_checking_makes_no_reference_cycles() -> None:
    # The planner runs with the cycle collector paused: a cycle per user or per layout would be
    # memory never given back.
    users: list[object] = [
        *orjson.loads((SAMPLE_DATA / "mixed.json").read_bytes()),
        {"email": "x@example.com", 10**5000: 1, "user_metadata": {"a.b": [{"c$": 1}]}},
    ]
    gc.collect()
    for _ in range(2):
        for user in users:
            check(user)
    layouts._LAYOUTS.clear()  # as when the bound is reached: remembered checks are let go
    assert gc.collect() == 0
