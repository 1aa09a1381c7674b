"""Checking a password against what a user was imported with, for every hash kind the bulk import
accepts (reference §7), the way Auth0 checks it: a wrongly converted hash fails here as it would there.

`verify(stored, password)` takes a `password_hash` string (bcrypt) or a `custom_password_hash` object.
A hash that cannot match (malformed, a wrong encoding, a parameter that does not fit the hash) is just a
wrong password. Only a hash this Python cannot check at all (a missing package, a digest its OpenSSL
lacks) raises CannotVerify: a login never succeeds by default.

Encodings follow Node's Buffer, which the service is built on: `base64` values may be url-safe and
unpadded, hex may be either case, and a password's `latin1`/`binary`/`ascii` bytes are the low byte of
each UTF-16 unit. The PHC strings of pbkdf2 are stricter (B64: standard alphabet, no padding).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Protocol, Self

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

#: Node's names for digests (what pbkdf2 PHC strings and hmac name) -> hashlib's.
_DIGEST_ALIASES: Final = {
    "rsa-md4": "md4", "md4withrsaencryption": "md4", "rsa-md5": "md5",
    "md5withrsaencryption": "md5", "ssl3-md5": "md5", "rsa-mdc2": "mdc2", "mdc2withrsa": "mdc2",
    "rsa-ripemd160": "ripemd160", "ripemd": "ripemd160", "rmd160": "ripemd160",
    "ripemd160withrsa": "ripemd160", "rsa-sha1": "sha1", "rsa-sha1-2": "sha1",
    "sha1withrsaencryption": "sha1", "ssl3-sha1": "sha1", "rsa-sha224": "sha224",
    "sha224withrsaencryption": "sha224", "rsa-sha256": "sha256",
    "sha256withrsaencryption": "sha256", "rsa-sha384": "sha384",
    "sha384withrsaencryption": "sha384", "rsa-sha512": "sha512",
    "sha512withrsaencryption": "sha512",
}  # fmt: skip
#: RFC 2307 schemes: (digest, salted). A salted value is base64(digest || salt).
_LDAP_SCHEMES: Final = {
    "MD5": ("md5", False), "SMD5": ("md5", True), "SHA": ("sha1", False), "SSHA": ("sha1", True),
    "SHA256": ("sha256", False), "SSHA256": ("sha256", True), "SHA384": ("sha384", False),
    "SSHA384": ("sha384", True), "SHA512": ("sha512", False), "SSHA512": ("sha512", True),
}  # fmt: skip
_DIGEST_ALGORITHMS: Final = frozenset({"md4", "md5", "sha1", "sha256", "sha512"})
_BCRYPT_PREFIXES: Final = ("$2a$", "$2b$", "$2y$")
#: bcrypt reads at most 72 bytes; the bcrypt package refuses longer input rather than cut it.
_BCRYPT_MAX_BYTES: Final = 72
_PBKDF2_DEFAULT_ITERATIONS: Final = 100_000
_PBKDF2_DEFAULT_KEY_LENGTH: Final = 64
_SCRYPT_DEFAULTS: Final = {"cost": 16_384, "blockSize": 8, "parallelization": 1}
#: scrypt needs 128 * r * N bytes; a hash asking for more than this is not checked (a wrong password).
_SCRYPT_MAX_MEMORY: Final = 1 << 30
_PHC_B64: Final = re.compile(r"[A-Za-z0-9+/]+")
_NODE_B64: Final = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_HEX: Final = re.compile(r"(?:[0-9A-Fa-f]{2})*")
_LDAP_VALUE: Final = re.compile(r"\{([A-Za-z0-9]+)\}(.+)", re.DOTALL)
_INSTALL_HINT: Final = "pip install 'orchestrator[sandbox]'"


class CannotVerify(Exception):
    """This Python cannot check the hash at all; the message says what is missing."""


class MissingPackage(CannotVerify):
    """A package the hash kind needs is not installed."""

    def __init__(self, package: str, kind: str) -> None:
        super().__init__(
            f"the sandbox cannot check {kind} hashes: the {package!r} package is not installed "
            f"({_INSTALL_HINT}, or pip install {package})"
        )
        self.package = package


def verify(stored: str | Mapping[str, object], password: str) -> bool:
    """Whether `password` matches `stored`: a `password_hash` string or a `custom_password_hash`.

    Raises:
        CannotVerify: the hash needs a package or a digest this Python does not have.
    """
    if isinstance(stored, str):
        return verify_password_hash(stored, password)
    return verify_custom_hash(stored, password)


def verify_password_hash(value: str, password: str) -> bool:
    """A `password_hash`: bcrypt `$2a$`, `$2b$` or `$2y$` over the UTF-8 password."""
    return _bcrypt_matches(value, password.encode())


def verify_custom_hash(custom: Mapping[str, object], password: str) -> bool:
    """A `custom_password_hash` object (reference §7): algorithm, hash, salt, password encoding..."""
    algorithm = custom.get("algorithm")
    hash_part = custom.get("hash")
    if not isinstance(algorithm, str) or not isinstance(hash_part, Mapping):
        return False
    secret = _password_bytes(password, custom.get("password"))
    salt = _salt(custom.get("salt"))
    if secret is None or salt is None:
        return False
    salt_bytes, salt_first = salt
    if algorithm == "bcrypt":
        if hash_part.get("encoding", "utf8") != "utf8":
            return False
        value = hash_part.get("value")
        joined = salt_bytes + secret if salt_first else secret + salt_bytes
        return isinstance(value, str) and _bcrypt_matches(value, joined)
    if algorithm == "argon2":
        return _argon2_matches(hash_part, secret)
    if algorithm == "pbkdf2":
        return _pbkdf2_matches(hash_part, secret)
    if algorithm == "ldap":
        return _ldap_matches(hash_part, secret)
    expected = _decode(hash_part.get("value"), hash_part.get("encoding"), strict_encoding=True)
    if expected is None:
        return False
    if algorithm == "scrypt":
        return _scrypt_matches(custom, secret, salt_bytes, expected)
    message = salt_bytes + secret if salt_first else secret + salt_bytes
    if algorithm == "hmac":
        return _hmac_matches(hash_part, message, expected)
    if algorithm in _DIGEST_ALGORITHMS:
        return hmac.compare_digest(_new_digest(algorithm, message).digest(), expected)
    return False


# -- encodings ---------------------------------------------------------------------------------------


def _password_bytes(password: str, spec: object) -> bytes | None:
    """The password's bytes in `password.encoding` (default utf8), as Node's Buffer makes them."""
    encoding = spec.get("encoding", "utf8") if isinstance(spec, Mapping) else "utf8"
    if spec is not None and not isinstance(spec, Mapping):
        return None
    try:
        if encoding == "utf8":
            return password.encode()
        if encoding in {"utf16le", "ucs2"}:
            return password.encode("utf-16-le")
        if encoding in {"latin1", "binary", "ascii"}:
            # Node keeps the low byte of each UTF-16 unit (its "ascii" encodes like latin1).
            return password.encode("utf-16-le")[::2]
    except UnicodeEncodeError:  # a lone surrogate: no byte string the service could have hashed
        return None
    return None


def _salt(spec: object) -> tuple[bytes, bool] | None:
    """(salt bytes, salt goes first); no salt is (b"", True). None for a malformed salt object."""
    if spec is None:
        return b"", True
    if not isinstance(spec, Mapping):
        return None
    value = _decode(spec.get("value"), spec.get("encoding", "utf8"))
    position = spec.get("position", "prefix")
    if value is None or position not in {"prefix", "suffix"}:
        return None
    return value, position == "prefix"


def _decode(value: object, encoding: object, *, strict_encoding: bool = False) -> bytes | None:
    """`value` decoded as `encoding` (utf8, hex or base64); None when it does not decode.

    `strict_encoding`: a hash value must name hex or base64 (the digest algorithms' rule).
    """
    if not isinstance(value, str):
        return None
    if encoding == "hex":
        return bytes.fromhex(value) if _HEX.fullmatch(value) else None
    if encoding == "base64":
        return _node_b64decode(value)
    if encoding == "utf8" and not strict_encoding:
        return value.encode()
    return None


def _node_b64decode(text: str) -> bytes | None:
    """Base64 as Node reads it: standard or url-safe alphabet, padding optional."""
    if not _NODE_B64.fullmatch(text):
        return None
    bare = text.rstrip("=").replace("-", "+").replace("_", "/")
    return _b64decode(bare)


def _phc_b64decode(text: str) -> bytes | None:
    """The B64 of PHC strings: the standard alphabet without `=` padding, nothing else."""
    return _b64decode(text) if _PHC_B64.fullmatch(text) else None


def _b64decode(bare: str) -> bytes | None:
    if len(bare) % 4 == 1:
        return None
    try:
        return base64.b64decode(bare + "=" * (-len(bare) % 4), validate=True)
    except binascii.Error:
        return None


# -- digests -----------------------------------------------------------------------------------------


class _Hash(Protocol):
    """What hmac and the digest algorithms need of a hash object (hashlib's, or _MD4)."""

    @property
    def digest_size(self) -> int: ...

    @property
    def block_size(self) -> int: ...

    @property
    def name(self) -> str: ...

    def update(self, data: ReadableBuffer, /) -> None: ...

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Self: ...


def _digest_name(name: str) -> str:
    lowered = name.lower()
    return _DIGEST_ALIASES.get(lowered, lowered)


def _digest_factory(name: str) -> Callable[[], _Hash]:
    """A constructor of `name` hashes (a hashlib name); MD4 falls back to the pure-Python one.

    Raises:
        CannotVerify: hashlib has no such digest (OpenSSL 3 drops legacy ones such as whirlpool).
    """

    def from_hashlib(data: ReadableBuffer = b"") -> _Hash:
        return hashlib.new(name, data)

    try:
        hashlib.new(name)
    except ValueError:
        if name == "md4":
            return _MD4
        raise CannotVerify(
            f"the sandbox cannot check {name} digests: this Python's hashlib (OpenSSL) lacks {name}"
        ) from None
    return from_hashlib


def _new_digest(name: str, data: bytes) -> _Hash:
    digest = _digest_factory(name)()
    digest.update(data)
    return digest


# -- the algorithms ----------------------------------------------------------------------------------


def _bcrypt_matches(value: str, secret: bytes) -> bool:
    # The library would also take $2$ and $2x$, which the import refuses (reference §7).
    if not value.startswith(_BCRYPT_PREFIXES):
        return False
    try:
        import bcrypt
    except ImportError:
        raise MissingPackage("bcrypt", "bcrypt") from None
    try:
        return bcrypt.checkpw(secret[:_BCRYPT_MAX_BYTES], value.encode())
    except ValueError:  # a malformed hash ("Invalid salt")
        return False


def _argon2_matches(hash_part: Mapping[str, object], secret: bytes) -> bool:
    value = hash_part.get("value")
    if not isinstance(value, str) or hash_part.get("encoding", "utf8") != "utf8":
        return False
    try:
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError
    except ImportError:
        raise MissingPackage("argon2-cffi", "argon2") from None
    try:
        # The hasher's own parameters do not matter: verify() reads them from the PHC string.
        return PasswordHasher().verify(value, secret)
    except (VerificationError, InvalidHashError):  # VerifyMismatchError is a VerificationError
        return False


def _pbkdf2_matches(hash_part: Mapping[str, object], secret: bytes) -> bool:
    """`$pbkdf2-<digest>$i=<iterations>,l=<key length>$<salt>$<hash>`, salt and hash in PHC B64."""
    value = hash_part.get("value")
    if not isinstance(value, str) or hash_part.get("encoding", "utf8") != "utf8":
        return False
    fields = value.split("$")
    if len(fields) not in {4, 5} or fields[0] != "" or not fields[1].startswith("pbkdf2-"):
        return False
    params = _phc_params(fields[2]) if len(fields) == 5 else {}
    salt, expected = _phc_b64decode(fields[-2]), _phc_b64decode(fields[-1])
    if params is None or salt is None or expected is None:
        return False
    iterations = params.get("i", _PBKDF2_DEFAULT_ITERATIONS)
    length = params.get("l", _PBKDF2_DEFAULT_KEY_LENGTH)
    if iterations < 1 or length < 1:
        return False
    digest = _digest_name(fields[1].removeprefix("pbkdf2-"))
    factory = _digest_factory(digest)
    if factory is _MD4:
        derived = _pbkdf2_python(factory, secret, salt, iterations, length)
    else:
        derived = hashlib.pbkdf2_hmac(digest, secret, salt, iterations, length)
    # A key length other than the hash's own never matches: the service compares the whole key.
    return hmac.compare_digest(derived, expected)


def _phc_params(text: str) -> dict[str, int] | None:
    """`i=…,l=…` (either, any order) as integers; None for anything else."""
    params: dict[str, int] = {}
    for item in text.split(","):
        key, sep, number = item.partition("=")
        if not sep or key not in {"i", "l"} or key in params or not number.isdigit():
            return None
        params[key] = int(number)
    return params


def _pbkdf2_python(
    factory: Callable[[], _Hash], secret: bytes, salt: bytes, iterations: int, length: int
) -> bytes:
    """PBKDF2-HMAC (RFC 8018) for a digest hashlib lacks."""
    out = b""
    block = 1
    while len(out) < length:
        u = hmac.new(secret, salt + struct.pack(">I", block), factory).digest()
        t = int.from_bytes(u)
        for _ in range(iterations - 1):
            u = hmac.new(secret, u, factory).digest()
            t ^= int.from_bytes(u)
        out += t.to_bytes(len(u))
        block += 1
    return out[:length]


def _ldap_matches(hash_part: Mapping[str, object], secret: bytes) -> bool:
    """RFC 2307 `{SCHEME}base64`; a salted scheme's salt follows the digest inside the base64."""
    value = hash_part.get("value")
    if not isinstance(value, str) or hash_part.get("encoding", "utf8") != "utf8":
        return False
    match = _LDAP_VALUE.fullmatch(value)
    scheme = _LDAP_SCHEMES.get(match.group(1).upper()) if match else None
    decoded = _node_b64decode(match.group(2)) if match else None
    if scheme is None or decoded is None:
        return False
    name, salted = scheme
    size = hashlib.new(name).digest_size
    if len(decoded) < size or (not salted and len(decoded) != size):
        return False
    expected, salt = decoded[:size], decoded[size:]
    return hmac.compare_digest(hashlib.new(name, secret + salt).digest(), expected)


def _scrypt_matches(
    custom: Mapping[str, object], secret: bytes, salt: bytes, expected: bytes
) -> bool:
    keylen = _positive_int(custom.get("keylen"))  # required: no default
    n, r, p = (_positive_int(custom.get(key, default)) for key, default in _SCRYPT_DEFAULTS.items())
    if keylen is None or n is None or r is None or p is None:
        return False
    try:
        derived = hashlib.scrypt(
            secret, salt=salt, n=n, r=r, p=p, dklen=keylen, maxmem=_SCRYPT_MAX_MEMORY
        )
    except (ValueError, MemoryError):  # N not a power of two > 1, or more memory than allowed
        return False
    return hmac.compare_digest(derived, expected)


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _hmac_matches(hash_part: Mapping[str, object], message: bytes, expected: bytes) -> bool:
    digest, key_spec = hash_part.get("digest"), hash_part.get("key")
    if not isinstance(digest, str) or not isinstance(key_spec, Mapping):
        return False
    key = _decode(key_spec.get("value"), key_spec.get("encoding", "utf8"))
    if key is None:
        return False
    factory = _digest_factory(_digest_name(digest))
    return hmac.compare_digest(hmac.new(key, message, factory).digest(), expected)


# -- MD4 ---------------------------------------------------------------------------------------------


class _MD4:
    """MD4 (RFC 1320) in Python: OpenSSL 3 leaves it out of hashlib, and the import accepts it."""

    digest_size = 16
    block_size = 64
    name = "md4"

    def __init__(self, data: ReadableBuffer = b"") -> None:
        # hmac hands a key longer than a block to the constructor.
        self._data = bytearray(data)

    def update(self, data: ReadableBuffer, /) -> None:
        self._data += data

    def copy(self) -> Self:
        return type(self)(bytes(self._data))

    def hexdigest(self) -> str:
        return self.digest().hex()

    def digest(self) -> bytes:
        message = bytes(self._data)
        bits = (len(message) * 8) & 0xFFFF_FFFF_FFFF_FFFF
        message += b"\x80" + b"\x00" * ((55 - len(message)) % 64) + struct.pack("<Q", bits)
        state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
        for offset in range(0, len(message), 64):
            x = struct.unpack("<16I", message[offset : offset + 64])
            a, b, c, d = state
            for i in (0, 4, 8, 12):  # round 1: F
                a = _rotl(a + ((b & c) | (~b & d)) + x[i], 3)
                d = _rotl(d + ((a & b) | (~a & c)) + x[i + 1], 7)
                c = _rotl(c + ((d & a) | (~d & b)) + x[i + 2], 11)
                b = _rotl(b + ((c & d) | (~c & a)) + x[i + 3], 19)
            for i in (0, 1, 2, 3):  # round 2: G
                a = _rotl(a + _majority(b, c, d) + x[i] + 0x5A827999, 3)
                d = _rotl(d + _majority(a, b, c) + x[i + 4] + 0x5A827999, 5)
                c = _rotl(c + _majority(d, a, b) + x[i + 8] + 0x5A827999, 9)
                b = _rotl(b + _majority(c, d, a) + x[i + 12] + 0x5A827999, 13)
            for i in (0, 2, 1, 3):  # round 3: H
                a = _rotl(a + (b ^ c ^ d) + x[i] + 0x6ED9EBA1, 3)
                d = _rotl(d + (a ^ b ^ c) + x[i + 8] + 0x6ED9EBA1, 9)
                c = _rotl(c + (d ^ a ^ b) + x[i + 4] + 0x6ED9EBA1, 11)
                b = _rotl(b + (c ^ d ^ a) + x[i + 12] + 0x6ED9EBA1, 15)
            state = [(s + v) & 0xFFFF_FFFF for s, v in zip(state, (a, b, c, d), strict=True)]
        return struct.pack("<4I", *state)


def _rotl(value: int, shift: int) -> int:
    value &= 0xFFFF_FFFF
    return ((value << shift) | (value >> (32 - shift))) & 0xFFFF_FFFF


def _majority(x: int, y: int, z: int) -> int:
    return (x & y) | (x & z) | (y & z)
