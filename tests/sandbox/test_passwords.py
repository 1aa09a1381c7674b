"""The sandbox's password checks: every hash kind the import accepts, made from known passwords by the
real algorithms (hashlib, bcrypt, argon2-cffi), accepts that password, refuses a wrong one, and refuses
the usual wrong conversions (padded or mis-encoded salts, key lengths that do not fit the hash)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
from typing import Any

import bcrypt
import pytest
from argon2 import PasswordHasher, Type
from argon2.low_level import hash_secret

from orchestrator.sandbox.passwords import (
    _MD4,
    CannotVerify,
    MissingPackage,
    _pbkdf2_python,
    verify,
)

PASSWORD = "correct horse battery staple"
WRONG = "correct horse battery stapler"
SALT = b"\xfb\xff\x00salt-bytes\xfe"  # encodes with '+' and '/' in base64


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def phc_b64(data: bytes) -> str:
    return b64(data).rstrip("=")


def custom(algorithm: str, value: str, encoding: str | None = None, **extra: Any) -> dict[str, Any]:
    hash_part: dict[str, Any] = {"value": value}
    if encoding is not None:
        hash_part["encoding"] = encoding
    hash_part.update(extra.pop("hash_extra", {}))
    return {"algorithm": algorithm, "hash": hash_part, **extra}


def accepts_only(stored: str | dict[str, Any], password: str = PASSWORD) -> None:
    assert verify(stored, password) is True
    assert verify(stored, WRONG) is False
    assert verify(stored, "") is False


# -- MD4 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "digest"),
    [  # RFC 1320, appendix A.5
        (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
        (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
        (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
        (b"message digest", "d9130a8164549fe818874806e1c7014b"),
        (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
        (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
    ],
)
def test_md4_matches_the_rfc_vectors(message: bytes, digest: str) -> None:
    assert _MD4(message).hexdigest() == digest
    split = _MD4(message[:3])
    split.update(message[3:])
    assert split.copy().digest().hex() == digest


def test_python_pbkdf2_matches_hashlib() -> None:
    def sha256() -> Any:
        return hashlib.sha256()

    expected = hashlib.pbkdf2_hmac("sha256", b"pw", SALT, 50, 70)
    assert _pbkdf2_python(sha256, b"pw", SALT, 50, 70) == expected


# -- password_hash and bcrypt ------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_password_hash_bcrypt(prefix: str) -> None:
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    accepts_only(prefix + made[4:])


def test_password_hash_refuses_other_bcrypt_prefixes_and_garbage() -> None:
    made = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    for value in ("$2x$" + made[4:], "$2$" + made[4:], "$2b$04$short", PASSWORD, ""):
        assert verify(value, PASSWORD) is False


def test_bcrypt_reads_72_bytes() -> None:
    long_password = "x" * 72 + "tail"
    made = bcrypt.hashpw(long_password[:72].encode(), bcrypt.gensalt(4)).decode()
    assert verify(made, long_password) is True
    assert verify(made, "x" * 72 + "other tail") is True


@pytest.mark.parametrize("position", ["prefix", "suffix"])
def test_custom_bcrypt_with_a_salt(position: str) -> None:
    salt = "pepper"
    joined = salt + PASSWORD if position == "prefix" else PASSWORD + salt
    made = bcrypt.hashpw(joined.encode(), bcrypt.gensalt(4)).decode()
    stored = custom("bcrypt", made, "utf8", salt={"value": salt, "position": position})
    accepts_only(stored)
    assert verify(custom("bcrypt", made), PASSWORD) is False  # the salt left out


def test_custom_bcrypt_salt_counts_in_the_72_bytes() -> None:
    salt = "s" * 70
    made = bcrypt.hashpw((salt + "ab").encode(), bcrypt.gensalt(4)).decode()
    stored = custom("bcrypt", made, salt={"value": salt})
    assert verify(stored, "abANYTHING") is True
    assert verify(stored, "aX") is False


# -- argon2 ------------------------------------------------------------------------------------------


def test_argon2id_phc() -> None:
    made = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    accepts_only(custom("argon2", made, "utf8"))


@pytest.mark.parametrize("kind", [Type.I, Type.D, Type.ID])
def test_argon2_variants(kind: Type) -> None:
    made = hash_secret(PASSWORD.encode(), b"saltsalt", 1, 8, 1, 32, kind).decode()
    accepts_only(custom("argon2", made))


def test_argon2_wrong_forms() -> None:
    made = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    assert verify(custom("argon2", made + "="), PASSWORD) is False
    assert verify(custom("argon2", made.replace("$argon2id$", "$argon2x$")), PASSWORD) is False
    assert verify(custom("argon2", made, "base64"), PASSWORD) is False


# -- pbkdf2 ------------------------------------------------------------------------------------------


def pbkdf2_phc(
    digest: str = "sha256",
    iterations: int = 1000,
    length: int = 32,
    *,
    name: str | None = None,
    params: str | None = None,
    salt: bytes = SALT,
) -> str:
    key = hashlib.pbkdf2_hmac(digest, PASSWORD.encode(), salt, iterations, length)
    params = f"i={iterations},l={length}" if params is None else params
    middle = f"${params}" if params else ""
    return f"$pbkdf2-{name or digest}{middle}${phc_b64(salt)}${phc_b64(key)}"


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
def test_pbkdf2_phc(digest: str) -> None:
    accepts_only(custom("pbkdf2", pbkdf2_phc(digest), "utf8"))


def test_pbkdf2_defaults_and_parameter_order() -> None:
    # No parameters: i=100000 and l=64.
    accepts_only(custom("pbkdf2", pbkdf2_phc("sha512", 100_000, 64, params="")))
    accepts_only(custom("pbkdf2", pbkdf2_phc(params="l=32,i=1000")))
    accepts_only(custom("pbkdf2", pbkdf2_phc("sha256", 100_000, 32, params="l=32")))


def test_pbkdf2_node_digest_names() -> None:
    accepts_only(custom("pbkdf2", pbkdf2_phc("sha256", name="RSA-SHA256")))
    accepts_only(custom("pbkdf2", pbkdf2_phc("sha1", name="sha1WithRSAEncryption")))


def test_pbkdf2_md4_falls_back_to_python() -> None:
    key = _pbkdf2_python(_MD4, PASSWORD.encode(), SALT, 3, 16)
    value = f"$pbkdf2-md4$i=3,l=16${phc_b64(SALT)}${phc_b64(key)}"
    accepts_only(custom("pbkdf2", value))


def test_pbkdf2_gigya_example_parses() -> None:
    # The support article's example (its password is not given): well-formed, so a plain mismatch.
    value = "$pbkdf2-sha512$i=10000,l=20$YWJjc29tZXRoaW5n$89v2METlSkX2LKWSQGHCdE4iUkE"
    assert verify(custom("pbkdf2", value), PASSWORD) is False


def test_pbkdf2_wrong_conversions_fail() -> None:
    good = pbkdf2_phc("sha256", 1000, 32)
    key = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, 1000, 32)
    wrong = {
        # Padded base64 (PHC B64 has no '='): the same bytes, written the wrong way.
        "padded": f"$pbkdf2-sha256$i=1000,l=32${b64(SALT)}${b64(key)}",
        # url-safe alphabet instead of the standard one.
        "url-safe": good.replace("+", "-").replace("/", "_"),
        # The salt's text was base64-encoded instead of its bytes (hex text here).
        "salt of the wrong bytes": (
            f"$pbkdf2-sha256$i=1000,l=32${phc_b64(SALT.hex().encode())}${phc_b64(key)}"
        ),
        # l says 64 while the hash holds 32 bytes.
        "l not the hash length": good.replace("l=32", "l=64"),
        "iterations": good.replace("i=1000", "i=1001"),
        "digest": good.replace("pbkdf2-sha256", "pbkdf2-sha512"),
        # passlib's and Django's own formats are not PHC strings Auth0 reads.
        "passlib": f"$pbkdf2-sha256$1000${phc_b64(SALT)}${phc_b64(key)}",
        "django": f"pbkdf2_sha256$1000${SALT.hex()}${b64(key)}",
        "hex hash": f"$pbkdf2-sha256$i=1000,l=32${phc_b64(SALT)}${key.hex()}",
        "unknown parameter": good.replace("i=1000,l=32", "i=1000,l=32,x=1"),
        "repeated parameter": good.replace("i=1000,l=32", "i=1000,i=1000,l=32"),
    }
    assert verify(custom("pbkdf2", good), PASSWORD) is True
    for reason, value in wrong.items():
        assert verify(custom("pbkdf2", value), PASSWORD) is False, reason
    assert verify(custom("pbkdf2", good, "base64"), PASSWORD) is False


# -- md4 / md5 / sha* ----------------------------------------------------------------------------------


def digest_of(algorithm: str, data: bytes) -> bytes:
    return _MD4(data).digest() if algorithm == "md4" else hashlib.new(algorithm, data).digest()


@pytest.mark.parametrize("algorithm", ["md4", "md5", "sha1", "sha256", "sha512"])
def test_plain_digests_in_every_encoding(algorithm: str) -> None:
    digest = digest_of(algorithm, PASSWORD.encode())
    for value, encoding in (
        (digest.hex(), "hex"),
        (digest.hex().upper(), "hex"),
        (b64(digest), "base64"),
        (b64(digest).rstrip("="), "base64"),
        (base64.urlsafe_b64encode(digest).decode(), "base64"),
    ):
        accepts_only(custom(algorithm, value, encoding))
    # No encoding, or utf8, is not how these hashes are written.
    assert verify(custom(algorithm, digest.hex()), PASSWORD) is False
    assert verify(custom(algorithm, digest.hex(), "utf8"), PASSWORD) is False
    # Hex declared as base64 decodes to other bytes.
    assert verify(custom(algorithm, digest.hex(), "base64"), PASSWORD) is False


@pytest.mark.parametrize(
    ("salt_spec", "salt_bytes"),
    [
        ({"value": "NaCl"}, b"NaCl"),
        ({"value": "NaCl", "encoding": "utf8"}, b"NaCl"),
        ({"value": SALT.hex(), "encoding": "hex"}, SALT),
        ({"value": b64(SALT), "encoding": "base64"}, SALT),
    ],
)
@pytest.mark.parametrize("position", [None, "prefix", "suffix"])
def test_salted_digests(salt_spec: dict[str, str], salt_bytes: bytes, position: str | None) -> None:
    joined = (
        PASSWORD.encode() + salt_bytes if position == "suffix" else salt_bytes + PASSWORD.encode()
    )
    salt = dict(salt_spec) if position is None else {**salt_spec, "position": position}
    stored = custom("sha256", hashlib.sha256(joined).hexdigest(), "hex", salt=salt)
    accepts_only(stored)
    other = "suffix" if position in {None, "prefix"} else "prefix"
    assert verify({**stored, "salt": {**salt_spec, "position": other}}, PASSWORD) is False
    assert verify({**stored, "salt": {**salt_spec, "value": "x"}}, PASSWORD) is False


@pytest.mark.parametrize(
    ("encoding", "password", "data"),
    [
        ("utf8", "pässwörd€", "pässwörd€".encode()),
        ("utf16le", "pässwörd€", "pässwörd€".encode("utf-16-le")),
        ("ucs2", "pässwörd€", "pässwörd€".encode("utf-16-le")),
        ("latin1", "pässwörd", "pässwörd".encode("latin-1")),
        ("binary", "pässwörd", "pässwörd".encode("latin-1")),
        # Node keeps the low byte of a character past U+00FF: '€' (U+20AC) is 0xAC.
        ("latin1", "€uro", b"\xacuro"),
        ("ascii", "€uro", b"\xacuro"),
    ],
)
def test_password_encodings(encoding: str, password: str, data: bytes) -> None:
    stored = custom("md5", hashlib.md5(data).hexdigest(), "hex", password={"encoding": encoding})
    assert verify(stored, password) is True
    if encoding != "utf8" and data != password.encode():
        # The same hash without the declared encoding: the UTF-8 bytes differ.
        assert verify({**stored, "password": {"encoding": "utf8"}}, password) is False


def test_unknown_password_encoding_fails() -> None:
    stored = custom("md5", hashlib.md5(b"pw").hexdigest(), "hex", password={"encoding": "ebcdic"})
    assert verify(stored, "pw") is False


# -- hmac ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("digest", ["md5", "sha1", "sha256", "sha512", "RSA-SHA256"])
def test_hmac(digest: str) -> None:
    name = "sha256" if digest == "RSA-SHA256" else digest
    key = b"\x00secret key\xff"
    mac = hmac.new(key, PASSWORD.encode(), name).digest()
    for key_spec in (
        {"value": key.hex(), "encoding": "hex"},
        {"value": b64(key), "encoding": "base64"},
    ):
        stored = custom("hmac", mac.hex(), "hex", hash_extra={"digest": digest, "key": key_spec})
        accepts_only(stored)
    wrong_key = {"value": "other", "encoding": "utf8"}
    stored = custom("hmac", b64(mac), "base64", hash_extra={"digest": digest, "key": wrong_key})
    assert verify(stored, PASSWORD) is False


def test_hmac_with_salt_and_utf8_key() -> None:
    mac = hmac.new(b"k3y", PASSWORD.encode() + b"NaCl", "sha256").hexdigest()
    stored = custom(
        "hmac",
        mac,
        "hex",
        hash_extra={"digest": "sha256", "key": {"value": "k3y"}},
        salt={"value": "NaCl", "position": "suffix"},
    )
    accepts_only(stored)


def test_hmac_md4_uses_the_python_md4() -> None:
    key = b"k" * 100  # longer than a block: hashed first, through the same fallback
    mac = hmac.new(key, PASSWORD.encode(), _MD4).hexdigest()
    inner = bytes(b ^ 0x36 for b in _MD4(key).digest().ljust(64, b"\x00"))
    outer = bytes(b ^ 0x5C for b in _MD4(key).digest().ljust(64, b"\x00"))
    assert mac == _MD4(outer + _MD4(inner + PASSWORD.encode()).digest()).hexdigest()
    key_spec = {"value": key.decode()}
    accepts_only(custom("hmac", mac, "hex", hash_extra={"digest": "md4", "key": key_spec}))


def test_hmac_needs_digest_and_key() -> None:
    mac = hmac.new(b"k", PASSWORD.encode(), "sha256").hexdigest()
    assert verify(custom("hmac", mac, "hex", hash_extra={"key": {"value": "k"}}), PASSWORD) is False
    assert verify(custom("hmac", mac, "hex", hash_extra={"digest": "sha256"}), PASSWORD) is False


def test_a_digest_hashlib_lacks_cannot_be_verified() -> None:
    if "whirlpool" in hashlib.algorithms_available:
        pytest.skip("this OpenSSL still has whirlpool")
    stored = custom(
        "hmac", "00" * 64, "hex", hash_extra={"digest": "whirlpool", "key": {"value": "k"}}
    )
    with pytest.raises(CannotVerify, match="whirlpool"):
        verify(stored, PASSWORD)


# -- ldap ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "digest", "salted"),
    [
        ("MD5", "md5", False),
        ("SMD5", "md5", True),
        ("SHA", "sha1", False),
        ("SSHA", "sha1", True),
        ("SHA256", "sha256", False),
        ("SSHA256", "sha256", True),
        ("SHA384", "sha384", False),
        ("SSHA384", "sha384", True),
        ("SHA512", "sha512", False),
        ("SSHA512", "sha512", True),
    ],
)
def test_ldap_schemes(scheme: str, digest: str, salted: bool) -> None:
    salt = b"\x01\x02salt" if salted else b""
    value = f"{{{scheme}}}{b64(hashlib.new(digest, PASSWORD.encode() + salt).digest() + salt)}"
    accepts_only(custom("ldap", value, "utf8"))
    accepts_only(custom("ldap", value.replace(scheme, scheme.lower())))


def test_ldap_wrong_forms() -> None:
    digest = hashlib.sha1(PASSWORD.encode() + b"salt").digest()
    assert verify(custom("ldap", "{SSHA}" + b64(digest + b"salt")), PASSWORD) is True
    # The salt in front of the digest instead of after it.
    assert verify(custom("ldap", "{SSHA}" + b64(b"salt" + digest)), PASSWORD) is False
    # An unsalted scheme with bytes after the digest.
    assert verify(custom("ldap", "{SHA}" + b64(digest + b"salt")), PASSWORD) is False
    assert verify(custom("ldap", "{CRYPT}" + b64(digest)), PASSWORD) is False
    assert verify(custom("ldap", b64(digest)), PASSWORD) is False
    assert verify(custom("ldap", "{SSHA}" + digest.hex()), PASSWORD) is False


# -- scrypt --------------------------------------------------------------------------------------------


def test_scrypt() -> None:
    key = hashlib.scrypt(PASSWORD.encode(), salt=SALT, n=1024, r=8, p=1, dklen=32)
    salt = {"value": b64(SALT), "encoding": "base64"}
    stored = custom("scrypt", key.hex(), "hex", salt=salt, keylen=32, cost=1024)
    accepts_only(stored)
    accepts_only({**stored, "hash": {"value": b64(key), "encoding": "base64"}})
    assert verify({**stored, "keylen": 16}, PASSWORD) is False
    assert verify({**stored, "cost": 2048}, PASSWORD) is False
    assert verify({**stored, "cost": 1000}, PASSWORD) is False  # not a power of two
    assert verify({**stored, "blockSize": 4}, PASSWORD) is False
    without_keylen = {k: v for k, v in stored.items() if k != "keylen"}
    assert verify(without_keylen, PASSWORD) is False


def test_scrypt_defaults() -> None:
    key = hashlib.scrypt(PASSWORD.encode(), salt=b"NaCl", n=16384, r=8, p=1, dklen=64)
    accepts_only(custom("scrypt", b64(key), "base64", salt={"value": "NaCl"}, keylen=64))


# -- malformed objects and missing packages ----------------------------------------------------------


@pytest.mark.parametrize(
    "stored",
    [
        {},
        {"algorithm": "md5"},
        {"algorithm": "md5", "hash": "5f4dcc3b5aa765d61d8327deb882cf99"},
        {"algorithm": "nope", "hash": {"value": "00", "encoding": "hex"}},
        {"algorithm": "md5", "hash": {"value": 5, "encoding": "hex"}},
        {"algorithm": "md5", "hash": {"value": "zz", "encoding": "hex"}},
        {"algorithm": "md5", "hash": {"value": "a", "encoding": "hex"}},
        {"algorithm": "md5", "hash": {"value": "a===", "encoding": "base64"}},
        {"algorithm": "md5", "hash": {"value": "00", "encoding": "hex"}, "salt": "NaCl"},
        {
            "algorithm": "md5",
            "hash": {"value": "00", "encoding": "hex"},
            "salt": {"value": "NaCl", "position": "middle"},
        },
        {"algorithm": "md5", "hash": {"value": "00", "encoding": "hex"}, "password": "utf8"},
    ],
)
def test_malformed_custom_hashes_never_match(stored: dict[str, Any]) -> None:
    assert verify(stored, "password") is False


@pytest.mark.parametrize(
    ("module", "package", "stored"),
    [
        ("bcrypt", "bcrypt", "$2b$04$" + "a" * 53),
        ("bcrypt", "bcrypt", {"algorithm": "bcrypt", "hash": {"value": "$2b$04$" + "a" * 53}}),
        ("argon2", "argon2-cffi", {"algorithm": "argon2", "hash": {"value": "$argon2id$v=19$x"}}),
    ],
)
def test_a_missing_package_is_named_never_a_success(
    monkeypatch: pytest.MonkeyPatch, module: str, package: str, stored: Any
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingPackage, match=f"'{package}'") as raised:
        verify(stored, PASSWORD)
    assert raised.value.package == package
    assert "orchestrator[sandbox]" in str(raised.value)
