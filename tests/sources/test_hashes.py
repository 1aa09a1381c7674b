"""The password-hash converters, proved by logging in: every hash is made by the source's real
algorithm from a known password (hashlib with Django's and Keycloak's exact encodings, bcrypt,
argon2-cffi), converted, and checked by the sandbox's verifier, which checks hashes as Auth0 does.
A conversion passes only if the password matches and a wrong one does not; unsupported kinds carry
no fields and a reason that never repeats the hash. The import schema (`check_user`, which runs the
content checks of `value_faults` on a well-shaped custom hash) passes what the converters make and
catches the usual wrong conversions, each of which really fails to log in."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Final

import bcrypt
import pytest
from argon2 import PasswordHasher, Type
from argon2.low_level import hash_secret, hash_secret_raw
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.plan.passwords import USABLE_KINDS
from orchestrator.plan.schema import check_user
from orchestrator.sandbox.passwords import verify
from orchestrator.sources.hashes import (
    NONE,
    Credential,
    from_bcrypt,
    from_django,
    from_firebase,
    from_keycloak,
    from_support_hash,
    phc,
)

PASSWORD = "correct horse battery staple"
WRONG = "correct horse battery stapler"
UNICODE_PASSWORD = "pässwörd ✓ 密码"
#: Cheap argon2 parameters where the test is about the encoding, not the cost.
FAST_ARGON2: Final = {"time_cost": 1, "memory_cost": 64, "parallelism": 1}
HYPOTHESIS = settings(max_examples=40, deadline=None)
passwords = st.text(st.characters(codec="utf-8"), max_size=24)


def fast_hasher(memory_cost: int = 64, parallelism: int = 1) -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=memory_cost, parallelism=parallelism)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def stored_of(credential: Credential) -> str | Mapping[str, object]:
    """What the import would store: the password_hash string or the custom_password_hash object."""
    (name, value), *others = credential.fields.items()
    assert not others
    assert name in ("password_hash", "custom_password_hash")
    assert isinstance(value, (str, Mapping))
    return value


def hash_value(credential: Credential) -> str:
    """custom_password_hash.hash.value of a converted credential."""
    stored = stored_of(credential)
    assert isinstance(stored, Mapping)
    hash_part = stored["hash"]
    assert isinstance(hash_part, Mapping)
    value = hash_part["value"]
    assert isinstance(value, str)
    return value


def faults(cph: object) -> list[tuple[str, str]]:
    """The problems `check_user` finds in a user holding `cph` as its custom_password_hash, as
    (path below /custom_password_hash, message) pairs."""
    problems = check_user({"email": "a@example.com", "custom_password_hash": cph})
    return [(p.path.removeprefix("/custom_password_hash"), p.message) for p in problems]


def assert_logs_in(credential: Credential, password: str = PASSWORD, kind: str = "") -> None:
    """The converted hash accepts `password` and nothing else, and the import schema passes it."""
    assert credential.kind in USABLE_KINDS
    if kind:
        assert credential.kind == kind
    assert credential.note == ""
    stored = stored_of(credential)
    assert verify(stored, password) is True
    assert verify(stored, "x" + password) is False
    assert verify(stored, WRONG) is False
    if isinstance(stored, Mapping):
        assert stored["algorithm"] == credential.kind
        assert faults(stored) == []
    else:
        assert credential.kind == "bcrypt"
        assert check_user({"email": "a@example.com", "password_hash": stored}) == []


def assert_unsupported(credential: Credential, kind: str, *secrets: str) -> None:
    assert credential.kind == f"unsupported:{kind}"
    assert credential.fields == {}
    assert credential.note
    for secret in secrets:
        assert secret not in credential.note


# -- bcrypt ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$"])
def test_bcrypt_at_cost_10_is_a_password_hash(prefix: str) -> None:
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10, prefix=prefix[1:3].encode()))
    credential = from_bcrypt(made.decode())
    assert credential.fields == {"password_hash": made.decode()}
    assert_logs_in(credential, kind="bcrypt")


def test_bcrypt_at_another_cost_is_a_custom_hash() -> None:
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    credential = from_bcrypt(made)
    assert credential.fields == {
        "custom_password_hash": {
            "algorithm": "bcrypt",
            "hash": {"value": made, "encoding": "utf8"},
        }
    }
    assert_logs_in(credential, kind="bcrypt")


def test_php_2y_bcrypt_is_a_custom_hash() -> None:
    # PHP's password_hash() writes $2y$: the same algorithm as $2b$ under another name.
    made = "$2y$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()[4:]
    credential = from_bcrypt(made)
    assert "custom_password_hash" in credential.fields
    assert_logs_in(credential, kind="bcrypt")


def test_supabase_style_unicode_password() -> None:
    made = bcrypt.hashpw(UNICODE_PASSWORD.encode(), bcrypt.gensalt(11)).decode()
    assert_logs_in(from_bcrypt(made), UNICODE_PASSWORD)


@HYPOTHESIS
@given(password=passwords.filter(lambda p: len(p.encode()) <= 72), prefix=st.sampled_from("aby"))
def test_bcrypt_round_trip(password: str, prefix: str) -> None:
    made = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    assert_logs_in(from_bcrypt(f"$2{prefix}$" + made[4:]), password)


def test_bcrypt_variants_the_import_refuses() -> None:
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    for variant in ("$2x$", "$2$"):
        assert_unsupported(from_bcrypt(variant + made[4:]), "bcrypt-variant", made[7:])


@pytest.mark.parametrize(
    "text",
    [
        "$2b$10$tooshort",
        "$2b$03$" + "a" * 53,  # below bcrypt's lowest cost
        "$2b$32$" + "a" * 53,
        "$2b$10$" + "a" * 52 + "!",
        "$2c$10$" + "a" * 53,
        "$2b$10$" + "a" * 53 + "\n",
        "plain text password",
    ],
)
def test_malformed_bcrypt(text: str) -> None:
    assert_unsupported(from_bcrypt(text), "malformed-bcrypt", text)


def test_an_empty_bcrypt_column_is_no_password() -> None:
    # GoTrue/Devise leave encrypted_password empty for users who only sign in with a provider.
    assert from_bcrypt("") is NONE


# -- Auth0 support's password hash export ----------------------------------------------------------


def test_support_export_hash() -> None:
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    line = json.loads(
        json.dumps(
            {
                "_id": {"$oid": "5dea1e1c3f4b2a0e8c6d7f10"},
                "email": "euclid@example.com",
                "passwordHash": made,
                "connection": "Username-Password-Authentication",
            }
        )
    )
    credential = from_support_hash(line["passwordHash"])
    assert credential.fields == {"password_hash": made}
    assert_logs_in(credential)


def test_support_export_hash_of_another_shape() -> None:
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert_unsupported(from_support_hash(digest), "unknown", digest)
    assert_unsupported(from_support_hash("$2b$10$cut"), "malformed-bcrypt", "cut")
    assert from_support_hash("") is NONE


# -- Django ----------------------------------------------------------------------------------------


def django_pbkdf2(password: str, salt: str, iterations: int, digest: str = "sha256") -> str:
    """django.contrib.auth.hashers.PBKDF2PasswordHasher.encode: text salt, padded base64 key."""
    key = hashlib.pbkdf2_hmac(digest, password.encode(), salt.encode(), iterations)
    return f"pbkdf2_{digest}${iterations}${salt}${base64.b64encode(key).decode().strip()}"


def django_argon2(password: str, salt: str, variant: Type = Type.ID, **params: int) -> str:
    """Argon2PasswordHasher.encode: "argon2" + argon2-cffi's PHC string over the text salt."""
    params = {"time_cost": 2, "memory_cost": 102_400, "parallelism": 8, **params}
    data = hash_secret(password.encode(), salt.encode(), hash_len=32, type=variant, **params)
    return "argon2" + data.decode("ascii")


def django_scrypt(password: str, salt: str, n: int = 2**14, r: int = 8, p: int = 1) -> str:
    """ScryptPasswordHasher.encode: N, salt text, r, p, padded base64 of a 64-byte key."""
    key = hashlib.scrypt(password.encode(), salt=salt.encode(), n=n, r=r, p=p, dklen=64)
    return f"scrypt${n}${salt}${r}${p}${b64(key)}"


@pytest.mark.parametrize("digest", ["sha256", "sha1"])
def test_django_pbkdf2(digest: str) -> None:
    encoded = django_pbkdf2(PASSWORD, "seasalt1234567890AbCdE", 30_000, digest)
    credential = from_django(encoded)
    assert_logs_in(credential, kind="pbkdf2")
    value = hash_value(credential)
    size = {"sha256": 32, "sha1": 20}[digest]
    assert value.startswith(f"$pbkdf2-{digest}$i=30000,l={size}$")
    assert "=" not in value.split("$", 3)[3]


def test_django_pbkdf2_at_djangos_own_iteration_count() -> None:
    # Django 5.1's default (870,000): the real cost, once.
    encoded = django_pbkdf2(UNICODE_PASSWORD, "Xk3dL9vQ2mN8pR4tW7yZ1a", 870_000)
    assert_logs_in(from_django(encoded), UNICODE_PASSWORD, kind="pbkdf2")


def test_django_pbkdf2_salt_is_used_as_its_utf8_bytes() -> None:
    encoded = django_pbkdf2(PASSWORD, "sél+/=ü", 1000)
    assert_logs_in(from_django(encoded))


@HYPOTHESIS
@given(
    password=passwords,
    salt=st.text(st.characters(codec="utf-8", exclude_characters="$"), min_size=1),
    iterations=st.integers(1, 2000),
    digest=st.sampled_from(["sha256", "sha1"]),
)
def test_django_pbkdf2_round_trip(password: str, salt: str, iterations: int, digest: str) -> None:
    assert_logs_in(from_django(django_pbkdf2(password, salt, iterations, digest)), password)


def test_django_argon2() -> None:
    encoded = django_argon2(PASSWORD, "b1Gz8XqLmN0pR2sT4uV6wY")  # Django's own default parameters
    credential = from_django(encoded)
    assert_logs_in(credential, kind="argon2")
    assert hash_value(credential) == encoded.removeprefix("argon2")


@pytest.mark.parametrize("variant", [Type.I, Type.D])
def test_django_argon2_other_variants(variant: Type) -> None:
    encoded = django_argon2(PASSWORD, "saltsaltsalt", variant, **FAST_ARGON2)
    assert_logs_in(from_django(encoded))


def test_django_argon2_of_argon2_cffi_hasher() -> None:
    encoded = "argon2" + fast_hasher().hash(UNICODE_PASSWORD)
    assert_logs_in(from_django(encoded), UNICODE_PASSWORD)


def test_django_argon2_without_a_version() -> None:
    # Django 1.10's argon2 hashes (argon2 1.0) were written without v=.
    encoded = django_argon2(PASSWORD, "saltsaltsalt", Type.I, version=16, **FAST_ARGON2)
    assert "$v=16$" in encoded
    assert_logs_in(from_django(encoded.replace("$v=16", "")))


def test_django_bcrypt() -> None:
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    credential = from_django("bcrypt$" + made)
    assert_logs_in(credential, kind="bcrypt")
    made_10 = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    assert from_django("bcrypt$" + made_10).fields == {"password_hash": made_10}


def test_django_bcrypt_sha256_is_unsupported() -> None:
    # BCryptSHA256PasswordHasher: bcrypt over the hex SHA-256 of the password.
    prehashed = binascii.hexlify(hashlib.sha256(PASSWORD.encode()).digest())
    made = bcrypt.hashpw(prehashed, bcrypt.gensalt(12)).decode()
    assert_unsupported(from_django("bcrypt_sha256$" + made), "django-bcrypt_sha256", made)


def test_django_scrypt() -> None:
    credential = from_django(django_scrypt(UNICODE_PASSWORD, "aB3dE5fG7hJ9kL1mN2pQ4r"))
    assert_logs_in(credential, UNICODE_PASSWORD, kind="scrypt")
    stored = stored_of(credential)
    assert isinstance(stored, Mapping)
    assert (stored["keylen"], stored["cost"], stored["blockSize"]) == (64, 2**14, 8)


@pytest.mark.parametrize("digest", ["md5", "sha1"])
def test_django_salted_digests(digest: str) -> None:
    salt = "Zx9Yw8Vu7Ts6"  # MD5PasswordHasher / SHA1PasswordHasher: hex of digest(salt + password)
    hexed = hashlib.new(digest, (salt + UNICODE_PASSWORD).encode()).hexdigest()
    credential = from_django(f"{digest}${salt}${hexed}")
    assert_logs_in(credential, UNICODE_PASSWORD, kind=digest)


def test_django_unsalted_digests() -> None:
    md5 = hashlib.md5(PASSWORD.encode()).hexdigest()
    sha1 = hashlib.sha1(PASSWORD.encode()).hexdigest()
    assert_logs_in(from_django(md5), kind="md5")  # UnsaltedMD5PasswordHasher's bare form
    assert_logs_in(from_django("md5$$" + md5), kind="md5")
    assert_logs_in(from_django("sha1$$" + sha1), kind="sha1")  # UnsaltedSHA1PasswordHasher
    assert "salt" not in stored_of(from_django(md5))


@pytest.mark.parametrize("encoded", ["", "!", "!Xy7sd98sdf7sdfSD8f7sd8f7s6df87s6df8s7d6f"])
def test_django_unusable_password_is_none(encoded: str) -> None:
    assert from_django(encoded) is NONE


def test_django_crypt_is_unsupported() -> None:
    assert_unsupported(from_django("crypt$$abN5lVwRGR7Ow"), "django-crypt", "abN5lVwRGR7Ow")


@pytest.mark.parametrize(
    "encoded",
    ["whirlpool$salt$abcdef", "pbkdf2_sha512$1000$salt$AAAA", "plaintext", "a" * 31, "g" * 32],
)
def test_django_unknown(encoded: str) -> None:
    assert_unsupported(from_django(encoded), "django-unknown", encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        "pbkdf2_sha256$many$salt$" + b64(b"k" * 32),
        "pbkdf2_sha256$0$salt$" + b64(b"k" * 32),
        "pbkdf2_sha256$1000$$" + b64(b"k" * 32),
        "pbkdf2_sha256$1000$salt$not*base64",
        "pbkdf2_sha256$1000$salt",
        "pbkdf2_sha1$1000$salt$" + b64(b"k" * 20) + "$extra",
        "argon2$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        "argon2$garbage",
        "bcrypt$",
        "scrypt$16384$salt$8$1",
        "scrypt$1000$salt$8$1$" + b64(b"k" * 64),  # N not a power of two
        "md5$salt$" + "z" * 32,
        "sha1$salt$" + "a" * 32,
        "md5$nodigest",
    ],
)
def test_django_malformed(encoded: str) -> None:
    assert_unsupported(from_django(encoded), "malformed-django", encoded)
    last = encoded.rsplit("$", 1)[-1]
    if len(last) >= 8:
        assert last not in from_django(encoded).note


def test_django_bcrypt_with_a_malformed_bcrypt_part() -> None:
    assert_unsupported(from_django("bcrypt$$2b$10$short"), "malformed-bcrypt", "short")


# -- Keycloak --------------------------------------------------------------------------------------


def keycloak_credential(
    password: str,
    algorithm: str = "pbkdf2-sha256",
    iterations: int = 27_500,
    *,
    key_bytes: int = 64,
    salt: bytes = b"\xfb\xef\x00sixteen-bytes\xff",
) -> dict[str, Any]:
    """A realm export's password credential (Keycloak 11+): secretData and credentialData are
    JSON texts inside the JSON."""
    digest = {"pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512", "pbkdf2": "sha1"}[algorithm]
    key = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations, key_bytes)
    return {
        "id": "8b1f6a0e-3c1d-4a52-9d4e-1f0c2b7a9e11",
        "type": "password",
        "userLabel": "My password",
        "createdDate": 1_700_000_000_000,
        "secretData": json.dumps(
            {"value": b64(key), "salt": b64(salt), "additionalParameters": {}}
        ),
        "credentialData": json.dumps(
            {"hashIterations": iterations, "algorithm": algorithm, "additionalParameters": {}}
        ),
    }


def keycloak_argon2(
    password: str,
    *,
    kind: str = "id",
    version: str = "1.3",
    memory: int = 7168,
    iterations: int = 5,
    parallelism: int = 1,
    hash_length: int = 32,
) -> dict[str, Any]:
    """Keycloak 24+'s argon2 provider: raw argon2 of the UTF-8 password, parameters alongside."""
    salt = b"\x00\xffkeycloak-salt\x01"  # Keycloak's salts are 16 random bytes
    variant = {"id": Type.ID, "i": Type.I, "d": Type.D}[kind]
    raw = hash_secret_raw(
        password.encode(),
        salt,
        time_cost=iterations,
        memory_cost=memory,
        parallelism=parallelism,
        hash_len=hash_length,
        type=variant,
        version={"1.3": 19, "1.0": 16}[version],
    )
    parameters = {
        "version": [version],
        "type": [kind],
        "hashLength": [str(hash_length)],
        "memory": [str(memory)],
        "parallelism": [str(parallelism)],
    }
    return {
        "type": "password",
        "secretData": json.dumps(
            {"value": b64(raw), "salt": b64(salt), "additionalParameters": {}}
        ),
        "credentialData": json.dumps(
            {
                "hashIterations": iterations,
                "algorithm": "argon2",
                "additionalParameters": parameters,
            }
        ),
    }


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [("pbkdf2-sha256", "sha256"), ("pbkdf2-sha512", "sha512"), ("pbkdf2", "sha1")],
)
def test_keycloak_pbkdf2(algorithm: str, digest: str) -> None:
    credential = from_keycloak([keycloak_credential(PASSWORD, algorithm)])
    assert_logs_in(credential, kind="pbkdf2")
    value = hash_value(credential)
    assert value.startswith(f"$pbkdf2-{digest}$i=27500,l=64$")


@pytest.mark.parametrize("key_bytes", [20, 32, 64, 100])
def test_keycloak_key_length_is_the_stored_values(key_bytes: int) -> None:
    credential = from_keycloak([keycloak_credential(PASSWORD, key_bytes=key_bytes)])
    assert f",l={key_bytes}$" in hash_value(credential)
    assert_logs_in(credential)


def test_keycloak_modern_default_and_unicode() -> None:
    # Keycloak 24+ defaults to pbkdf2-sha512 at 210,000 iterations.
    entry = keycloak_credential(UNICODE_PASSWORD, "pbkdf2-sha512", 210_000)
    assert_logs_in(from_keycloak([entry]), UNICODE_PASSWORD)


@HYPOTHESIS
@given(
    password=passwords,
    salt=st.binary(min_size=1, max_size=32),
    iterations=st.integers(1, 3000),
    algorithm=st.sampled_from(["pbkdf2-sha256", "pbkdf2-sha512", "pbkdf2"]),
    key_bytes=st.integers(16, 80),  # shorter keys let a wrong password match by chance
)
def test_keycloak_pbkdf2_round_trip(
    password: str, salt: bytes, iterations: int, algorithm: str, key_bytes: int
) -> None:
    entry = keycloak_credential(password, algorithm, iterations, key_bytes=key_bytes, salt=salt)
    assert_logs_in(from_keycloak([entry]), password)


def test_keycloak_legacy_credential_shape() -> None:
    # Before Keycloak 11 the parts sat on the credential itself.
    salt = b"0123456789abcdef"
    key = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, 27_500, 64)
    entry = {
        "type": "password",
        "hashedSaltedValue": b64(key),
        "salt": b64(salt),
        "hashIterations": 27_500,
        "algorithm": "pbkdf2-sha256",
        "digits": 0,
        "period": 0,
        "createdDate": 1_500_000_000_000,
        "config": {},
    }
    assert_logs_in(from_keycloak([entry]))


def test_keycloak_decoded_secret_data_is_read_too() -> None:
    entry = keycloak_credential(PASSWORD)
    entry["secretData"] = json.loads(entry["secretData"])
    entry["credentialData"] = json.loads(entry["credentialData"])
    assert_logs_in(from_keycloak([entry]))


def test_keycloak_argon2() -> None:
    credential = from_keycloak([keycloak_argon2(UNICODE_PASSWORD)])  # Keycloak's defaults
    assert_logs_in(credential, UNICODE_PASSWORD, kind="argon2")
    value = hash_value(credential)
    assert value.startswith("$argon2id$v=19$m=7168,t=5,p=1$")


@pytest.mark.parametrize(
    ("kind", "version"), [("i", "1.3"), ("d", "1.3"), ("id", "1.0"), ("i", "1.0")]
)
def test_keycloak_argon2_types_and_versions(kind: str, version: str) -> None:
    entry = keycloak_argon2(PASSWORD, kind=kind, version=version, memory=64, iterations=2)
    assert_logs_in(from_keycloak([entry]), kind="argon2")


def test_keycloak_argon2_with_other_parameters() -> None:
    entry = keycloak_argon2(PASSWORD, memory=256, iterations=3, parallelism=2, hash_length=64)
    assert_logs_in(from_keycloak([entry]))


def test_keycloak_password_is_found_among_other_credentials() -> None:
    otp = {"type": "otp", "secretData": '{"value":"JBSWY3DPEHPK3PXP"}', "credentialData": "{}"}
    history = keycloak_credential(WRONG) | {"type": "password-history"}
    assert_logs_in(from_keycloak([otp, history, keycloak_credential(PASSWORD)]))


@pytest.mark.parametrize(
    "credentials",
    [None, [], [{"type": "otp", "secretData": "{}", "credentialData": "{}"}], "password", {}],
)
def test_keycloak_without_a_password_is_none(credentials: object) -> None:
    assert from_keycloak(credentials) is NONE


def test_keycloak_plain_text_passwords_are_unsupported() -> None:
    # Hand-written realm files may carry {"type": "password", "value": "<clear text>"}.
    entry = {"type": "password", "value": PASSWORD, "temporary": False}
    assert_unsupported(from_keycloak([entry]), "keycloak-plaintext", PASSWORD)


def test_keycloak_other_hash_providers_are_unsupported() -> None:
    entry = keycloak_credential(PASSWORD)
    entry["credentialData"] = json.dumps({"hashIterations": 10, "algorithm": "bcrypt"})
    assert_unsupported(from_keycloak([entry]), "keycloak-bcrypt")
    entry["credentialData"] = json.dumps({"hashIterations": 10, "algorithm": "My Provider!"})
    assert_unsupported(from_keycloak([entry]), "keycloak-unknown")


def _with(entry: dict[str, Any], part: str, **changes: object) -> dict[str, Any]:
    data = json.loads(entry[part])
    data.update(changes)
    return entry | {part: json.dumps(data)}


@pytest.mark.parametrize(
    "entry",
    [
        keycloak_credential(PASSWORD) | {"secretData": "{not json"},
        keycloak_credential(PASSWORD) | {"credentialData": "[]"},
        _with(keycloak_credential(PASSWORD), "credentialData", hashIterations="27500"),
        _with(keycloak_credential(PASSWORD), "credentialData", hashIterations=0),
        _with(keycloak_credential(PASSWORD), "credentialData", algorithm=None),
        _with(keycloak_credential(PASSWORD), "secretData", value="%%%"),
        _with(keycloak_credential(PASSWORD), "secretData", salt=""),
        _with(keycloak_argon2(PASSWORD), "credentialData", additionalParameters={}),
        _with(
            keycloak_argon2(PASSWORD),
            "credentialData",
            additionalParameters={
                "type": ["id"],
                "version": ["1.3"],
                "memory": ["7168"],
                "parallelism": ["1"],
                "hashLength": ["16"],
            },
        ),
        _with(keycloak_argon2(PASSWORD), "secretData", salt=b64(b"short")),
    ],
)
def test_keycloak_malformed(entry: dict[str, Any]) -> None:
    credential = from_keycloak([entry])
    assert_unsupported(credential, "malformed-keycloak")
    secret = entry["secretData"]
    for value in json.loads(secret).values() if secret.startswith('{"') else ():
        assert not value or str(value) not in credential.note


# -- Firebase --------------------------------------------------------------------------------------


def test_firebase_hashes_are_unsupported() -> None:
    user = {
        "localId": "UiJpT9gZ0dXJ2Vh1mJsHbk7H1dX2",
        "email": "ada@example.com",
        "passwordHash": b64(hashlib.sha512(b"firebase scrypt output").digest()),
        "salt": "42xEC+ixf3L2lw==",
    }
    assert_unsupported(from_firebase(user), "firebase-scrypt", user["passwordHash"], user["salt"])


@pytest.mark.parametrize("user", [{"localId": "x", "email": "a@b.co"}, {"passwordHash": ""}])
def test_firebase_users_without_a_password(user: dict[str, object]) -> None:
    assert from_firebase(user) is NONE


# -- the import schema's checks of a custom_password_hash ---------------------------------------------

SALT = b"\xfb\xff\x00salt-bytes\xfe\xff\xfe"  # base64 with '+', '/' and '==' padding
ITERATIONS = 1002  # a key whose base64 has '+', '/' and '=' too
KEY = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, ITERATIONS)


def pbkdf2_custom(value: str) -> dict[str, object]:
    return {"algorithm": "pbkdf2", "hash": {"value": value, "encoding": "utf8"}}


def _paths(problems: list[tuple[str, str]]) -> list[str]:
    return [path for path, _ in problems]


def _assert_caught(stored: dict[str, object], path: str, *words: str) -> None:
    """The check reports `path` with a message naming `words`, never quoting the salt or hash;
    and the hash really does not log in (a wrong conversion, not a style point)."""
    problems = faults(stored)
    assert path in _paths(problems), problems
    message = " ".join(text for where, text in problems if where == path)
    for word in words:
        assert word in message
    secrets = {b64(SALT), b64(KEY), b64(SALT).rstrip("="), b64(KEY).rstrip("="), KEY.hex()}
    for _, text in problems:
        for secret in secrets:
            assert secret not in text
    assert verify(stored, PASSWORD) is False


def good_phc(**overrides: str) -> str:
    parts = {
        "digest": "sha256",
        "params": f"i={ITERATIONS},l={len(KEY)}",
        "salt": b64(SALT).rstrip("="),
        "hash": b64(KEY).rstrip("="),
    } | overrides
    return f"$pbkdf2-{parts['digest']}${parts['params']}${parts['salt']}${parts['hash']}"


def test_check_passes_a_correct_pbkdf2() -> None:
    stored = pbkdf2_custom(good_phc())
    assert faults(stored) == []
    assert verify(stored, PASSWORD) is True


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"salt": b64(SALT)}, ("salt", "padding")),
        ({"hash": b64(KEY)}, ("hash", "padding")),
        ({"salt": base64.urlsafe_b64encode(SALT).decode().rstrip("=")}, ("salt", "url-safe")),
        ({"hash": base64.urlsafe_b64encode(KEY).decode().rstrip("=")}, ("url-safe",)),
        ({"salt": "not base64!"}, ("salt", "outside base64")),
        ({"hash": b64(KEY).rstrip("=")[:-2]}, ("hash", "length")),
        ({"params": "i=1002,l=64"}, ("l=64", "32 bytes", "l=32")),
        ({"params": f"l={len(KEY)}"}, ("no i=", "iteration")),
        ({"params": "i=1002"}, ("no l=",)),
        ({"params": "i=0,l=32"}, ("i=", "greater than zero")),
        ({"params": "i=1002,l=32,i=1002"}, ("each key once",)),
        ({"params": "i=1002,n=32"}, ("each key once",)),
    ],
)
def test_check_catches_wrong_pbkdf2_conversions(
    overrides: dict[str, str], words: tuple[str, ...]
) -> None:
    _assert_caught(pbkdf2_custom(good_phc(**overrides)), "/hash/value", *words)


@pytest.mark.parametrize(
    ("digest", "hint"),
    [("sha-256", "write sha256"), ("SHA256", "write sha256"), ("SHA_512", "write sha512"),
     ("sha3", ""), ("", "")],
)  # fmt: skip
def test_check_catches_digests_the_import_does_not_name(digest: str, hint: str) -> None:
    problems = faults(pbkdf2_custom(good_phc(digest=digest)))
    assert _paths(problems) == ["/hash/value"]
    assert "digest after $pbkdf2-" in problems[0][1]
    assert hint in problems[0][1]


def test_check_accepts_nodes_digest_names() -> None:
    for digest in ("sha1", "sha512", "RSA-SHA256", "sha256WithRSAEncryption"):
        assert faults(pbkdf2_custom(good_phc(digest=digest))) == []


@pytest.mark.parametrize(
    "value",
    [
        "pbkdf2_sha256$1000$salt$" + b64(KEY),  # a Django string pasted as it is
        "$pbkdf2$i=1000,l=32$" + b64(SALT).rstrip("="),
        "$pbkdf2-sha256$i=1000,l=32$$" + b64(KEY).rstrip("="),
    ],
)
def test_check_catches_strings_that_are_not_pbkdf2_phc(value: str) -> None:
    _assert_caught(pbkdf2_custom(value), "/hash/value")


def test_check_pbkdf2_object_rules() -> None:
    stored = pbkdf2_custom(good_phc()) | {"salt": {"value": "x"}}
    assert _paths(faults(stored)) == ["/salt"]
    stored = {"algorithm": "pbkdf2", "hash": {"value": good_phc(), "encoding": "base64"}}
    assert _paths(faults(stored)) == ["/hash/encoding"]


def _argon2_phc(memory_cost: int = 64, parallelism: int = 1) -> str:
    return fast_hasher(memory_cost, parallelism).hash(PASSWORD)


def test_check_passes_argon2() -> None:
    for value in (_argon2_phc(), _argon2_phc(parallelism=4, memory_cost=32)):
        stored = {"algorithm": "argon2", "hash": {"value": value, "encoding": "utf8"}}
        assert faults(stored) == []
        assert verify(stored, PASSWORD) is True


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda v: v.replace("$v=19$", "$v=20$"), ("version",)),
        (lambda v: v.replace(",p=1", ""), ("lack p",)),
        (lambda v: v.replace("m=64,t=1", "t=1,m=64"), ("order",)),
        (lambda v: v.replace("m=64", "m=4"), ("m >= 8 * p",)),
        (lambda v: v.replace("$argon2id$", "$argon2x$"), ("argon2 PHC",)),
        (lambda v: v + "==", ("padding",)),
        (
            lambda v: v.rsplit("$", 2)[0] + "$c2FsdA$" + v.rsplit("$", 1)[1],
            ("4 bytes", "8 or more"),
        ),
    ],
)
def test_check_catches_argon2_faults(change: Any, words: tuple[str, ...]) -> None:
    value = change(_argon2_phc())
    stored = {"algorithm": "argon2", "hash": {"value": value}}
    problems = faults(stored)
    assert problems
    assert _paths(problems) == ["/hash/value"] * len(problems)
    for word in words:
        assert word in " ".join(text for _, text in problems)
    assert value.rsplit("$", 1)[1].rstrip("=") not in " ".join(text for _, text in problems)
    assert verify(stored, PASSWORD) is False


def _scrypt_custom(**changes: object) -> dict[str, object]:
    key = hashlib.scrypt(PASSWORD.encode(), salt=SALT, n=1024, r=8, p=1, dklen=32)
    stored: dict[str, object] = {
        "algorithm": "scrypt",
        "hash": {"value": b64(key), "encoding": "base64"},
        "salt": {"value": b64(SALT), "encoding": "base64"},
        "keylen": 32,
        "cost": 1024,
        "blockSize": 8,
        "parallelization": 1,
    }
    stored.update(changes)
    return {key: value for key, value in stored.items() if value is not None}


def test_check_scrypt() -> None:
    assert faults(_scrypt_custom()) == []
    assert verify(_scrypt_custom(), PASSWORD) is True
    _assert_caught(_scrypt_custom(keylen=64), "/keylen", "keylen is 64", "32 bytes", "set it to 32")
    _assert_caught(_scrypt_custom(keylen=None), "/keylen", "needs keylen", "length in bytes")
    _assert_caught(_scrypt_custom(keylen=0), "/keylen", "greater than zero")
    _assert_caught(_scrypt_custom(cost=1000), "/cost", "power of two")
    _assert_caught(_scrypt_custom(blockSize=-1), "/blockSize")
    hex_key = {"value": hashlib.sha256(b"x").hexdigest(), "encoding": "utf8"}
    _assert_caught(_scrypt_custom(hash=hex_key), "/hash/encoding", "hex or base64")
    assert faults(_scrypt_custom(cost=None, blockSize=None)) == []
    assert faults(_scrypt_custom(keylen=32.0, cost=1024.0)) == []
    _assert_caught(_scrypt_custom(keylen=31.5), "/keylen", "integer")
    _assert_caught(_scrypt_custom(parallelization=True), "/parallelization")


def test_check_bcrypt() -> None:
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    assert faults({"algorithm": "bcrypt", "hash": {"value": made}}) == []
    problems = faults({"algorithm": "bcrypt", "hash": {"value": "$2x$" + made[4:]}})
    assert _paths(problems) == ["/hash/value"]
    assert "$2x$" in problems[0][1]
    assert made[7:] not in problems[0][1]
    problems = faults({"algorithm": "bcrypt", "hash": {"value": made[:-1]}})
    assert _paths(problems) == ["/hash/value"]
    assert made[7:-1] not in problems[0][1]


@pytest.mark.parametrize(
    ("algorithm", "size"), [("md4", 16), ("md5", 16), ("sha1", 20), ("sha256", 32), ("sha512", 64)]
)
def test_check_digest_sizes(algorithm: str, size: int) -> None:
    """A digest of another size is the wrong algorithm or a mis-declared encoding."""
    digest = hashlib.shake_256(PASSWORD.encode()).digest(size)
    for encoding, text in (("hex", digest.hex()), ("base64", b64(digest))):
        stored = {"algorithm": algorithm, "hash": {"value": text, "encoding": encoding}}
        assert faults(stored) == []
    other = hashlib.sha384(PASSWORD.encode()).digest()
    for encoding, text in (("hex", other.hex()), ("base64", b64(other))):
        stored = {"algorithm": algorithm, "hash": {"value": text, "encoding": encoding}}
        problems = faults(stored)
        assert _paths(problems) == ["/hash/value"]
        assert f"{size} bytes" in problems[0][1]
        assert "48" in problems[0][1]
        assert text not in problems[0][1]
        assert verify(stored, PASSWORD) is False


def test_check_digest_encodings() -> None:
    digest = hashlib.sha256(PASSWORD.encode()).digest()
    for encoding, text in (
        ("hex", digest.hex().upper()),
        ("base64", b64(digest)),
        ("base64", base64.urlsafe_b64encode(digest).decode().rstrip("=")),  # Node reads these
    ):
        stored = {"algorithm": "sha256", "hash": {"value": text, "encoding": encoding}}
        assert faults(stored) == []
        assert verify(stored, PASSWORD) is True
    for hash_part in (
        {"value": digest.hex()},
        {"value": digest.hex(), "encoding": "utf8"},
        {"value": digest.hex()[:-1], "encoding": "hex"},
        {"value": "%%" + b64(digest), "encoding": "base64"},
    ):
        stored = {"algorithm": "sha256", "hash": hash_part}
        assert faults(stored), hash_part
        assert verify(stored, PASSWORD) is False


def test_check_hmac() -> None:
    key = b"server-side key"
    mac = hmac.new(key, PASSWORD.encode(), "sha256").digest()
    hash_part: dict[str, object] = {"value": mac.hex(), "encoding": "hex", "digest": "sha256"}
    hash_part["key"] = {"value": key.decode()}
    good = {"algorithm": "hmac", "hash": hash_part}
    assert faults(good) == []
    assert verify(good, PASSWORD) is True
    no_digest = {
        "algorithm": "hmac",
        "hash": {"value": mac.hex(), "encoding": "hex", "key": {"value": "k"}},
    }
    assert _paths(faults(no_digest)) == ["/hash/digest"]
    no_key = {
        "algorithm": "hmac",
        "hash": {"value": mac.hex(), "encoding": "hex", "digest": "sha256"},
    }
    assert _paths(faults(no_key)) == ["/hash/key"]
    wrong_digest = {**good, "hash": {**hash_part, "digest": "sha512"}}
    assert _paths(faults(wrong_digest)) == ["/hash/value"]


def test_check_ldap() -> None:
    salt = b"ldapsalt"
    ssha = "{SSHA}" + b64(hashlib.sha1(PASSWORD.encode() + salt).digest() + salt)
    sha256 = "{SHA256}" + b64(hashlib.sha256(PASSWORD.encode()).digest())
    for value in (ssha, sha256):
        stored = {"algorithm": "ldap", "hash": {"value": value, "encoding": "utf8"}}
        assert faults(stored) == []
        assert verify(stored, PASSWORD) is True
    for value in (
        "{CRYPT}abcdefgh",
        "{SHA256}" + b64(b"short"),
        "{SSHA}" + b64(b"x" * 12),
        "SHA" + b64(b"x" * 20),
    ):
        stored = {"algorithm": "ldap", "hash": {"value": value}}
        problems = faults(stored)
        assert _paths(problems) == ["/hash/value"], value
        assert verify(stored, PASSWORD) is False


@pytest.mark.parametrize(
    ("value", "paths"),
    [
        ("pbkdf2", [""]),
        ([], [""]),
        ({"hash": {"value": "x"}}, ["/algorithm"]),
        ({"algorithm": "sha384", "hash": {"value": "x"}}, ["/algorithm"]),
        ({"algorithm": "md5"}, ["/hash"]),
        ({"algorithm": "md5", "hash": "abc"}, ["/hash"]),
        ({"algorithm": "md5", "hash": {"value": ""}}, ["/hash/value", "/hash/encoding"]),
    ],
)
def test_check_reports_shapes_it_cannot_look_into(value: object, paths: list[str]) -> None:
    """A shape the content checks cannot read is the schema's to report, and only it is."""
    assert _paths(faults(value)) == paths


def test_unsupported_notes_and_messages_never_carry_the_hash() -> None:
    """A hash is a secret in a report: the sources' values above are checked one by one; this
    is the sweep over every message of a mixed batch."""
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    secret_bits = [made[7:], b64(KEY).rstrip("="), b64(SALT).rstrip("=")]
    credentials = [
        from_bcrypt("$2x$" + made[4:]),
        from_bcrypt(made[:-3]),
        from_django("bcrypt_sha256$" + made),
        from_django(
            "pbkdf2_sha256$1000$" + b64(SALT).rstrip("=") + "$" + b64(KEY).rstrip("=") + "*"
        ),
        from_keycloak(
            [
                {
                    "type": "password",
                    "hashedSaltedValue": b64(KEY),
                    "salt": "",
                    "hashIterations": 1,
                    "algorithm": "pbkdf2",
                }
            ]
        ),
        from_support_hash(b64(KEY)),
    ]
    for credential in credentials:
        assert credential.kind.startswith("unsupported:")
        assert credential.fields == {}
        for bit in secret_bits:
            assert bit not in credential.note
            assert bit not in credential.kind


@pytest.mark.parametrize(
    "value",
    [
        "$argon2id$v=" + "9" * 5000 + "$m=64,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2g",
        "$argon2id$v=\u00b2$m=64,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2g",  # a digit int() refuses
        "$argon2id$v=19$m=" + "6" * 5000 + ",t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2g",
        "$pbkdf2-sha256$i=" + "9" * 5000 + ",l=8$c29tZXNhbHQ$aGFzaGhhc2g",
        "$pbkdf2-sha256$i=1000,l=\u0668$c29tZXNhbHQ$aGFzaGhhc2g",
    ],
)
def test_phc_numbers_no_parameter_has_are_faults_not_errors(value: str) -> None:
    faults_of = phc.argon2_faults if value.startswith("$argon2") else phc.pbkdf2_faults
    (fault,) = faults_of(value)
    assert "9999" not in fault
