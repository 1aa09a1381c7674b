"""Checks of a `custom_password_hash` deeper than the import's JSON schema: the ones that catch a
wrong conversion, which the import itself accepts and the user then cannot log in with.

The schema sees types and enums; these see inside the values: PHC syntax and B64, a key length
that is not the hash's, a digest whose size does not fit the algorithm, scrypt's keylen, bcrypt's
variant. Basic shape problems that stop the deeper checks are reported too, so the function stands
alone. Paths are JSON pointers into the object checked ("/hash/value"); messages say what to do
and never quote a hash, salt or key.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Final

from orchestrator.sources.hashes import phc
from orchestrator.sources.hashes.credential import ALGORITHMS, BCRYPT

Problems = list[tuple[str, str]]

#: Digest sizes in bytes: the digest algorithms' own, and hmac's `hash.digest`.
_DIGEST_SIZES: Final = {
    "md4": 16,
    "md5": 16,
    "ripemd160": 20,
    "sha1": 20,
    "sha224": 28,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "whirlpool": 64,
}
#: RFC 2307 schemes Auth0 reads: (digest bytes, salted). A salted value is base64(digest || salt).
_LDAP_SCHEMES: Final = {
    "MD5": (16, False), "SMD5": (16, True), "SHA": (20, False), "SSHA": (20, True),
    "SHA256": (32, False), "SSHA256": (32, True), "SHA384": (48, False), "SSHA384": (48, True),
    "SHA512": (64, False), "SSHA512": (64, True),
}  # fmt: skip
_TEXT_ALGORITHMS: Final = frozenset({"argon2", "bcrypt", "ldap", "pbkdf2"})
_NO_SALT: Final = frozenset({"argon2", "ldap", "pbkdf2"})
_LDAP_VALUE: Final = re.compile(r"\{([A-Za-z0-9]+)\}(.*)", re.DOTALL)
_HEX: Final = re.compile(r"(?:[0-9A-Fa-f]{2})*")
#: Node's Buffer reads base64 in either alphabet, padded or not (reference §7).
_NODE_BASE64: Final = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def check_custom_password_hash(value: object) -> Problems:
    """The problems of one `custom_password_hash` object, as (JSON pointer, message) pairs.

    Returns:
        An empty list when nothing is wrong. Paths are relative to `value`: prefix them with
        "/custom_password_hash" to point into the user.
    """
    if not isinstance(value, Mapping):
        return [("", "custom_password_hash must be an object with algorithm and hash")]
    algorithm = value.get("algorithm")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        return [("/algorithm", f"set algorithm to one of: {', '.join(sorted(ALGORITHMS))}")]
    hash_part = value.get("hash")
    text = hash_part.get("value") if isinstance(hash_part, Mapping) else None
    if not isinstance(hash_part, Mapping) or not isinstance(text, str) or not text:
        return [("/hash/value", "hash.value must hold the hash as a non-empty string")]
    problems: Problems = []
    if algorithm in _NO_SALT and "salt" in value:
        problems.append(
            ("/salt", f"{algorithm} takes no salt object: its salt is inside hash.value; remove it")
        )
    if algorithm in _TEXT_ALGORITHMS:
        if hash_part.get("encoding", "utf8") != "utf8":
            problems.append(("/hash/encoding", f"{algorithm} hashes are text: set encoding utf8"))
        problems.extend(("/hash/value", fault) for fault in _TEXT_CHECKS[algorithm](text))
        return problems
    encoding = hash_part.get("encoding")
    decoded = _decode(text, encoding)
    if encoding not in ("hex", "base64"):
        problems.append(("/hash/encoding", f"{algorithm} hashes need encoding hex or base64"))
    elif decoded is None:
        problems.append(
            ("/hash/value", f"the hash value is not valid {encoding}: check hash.encoding")
        )
    if algorithm == "scrypt":
        problems.extend(_scrypt(value, decoded))
    elif algorithm == "hmac":
        problems.extend(_hmac(hash_part, decoded))
    elif decoded is not None:
        problems.extend(_size("/hash/value", algorithm, _DIGEST_SIZES[algorithm], len(decoded)))
    return problems


def _decode(text: str, encoding: object) -> bytes | None:
    """hex (either case) or base64 (either alphabet, padding optional), as Node decodes them."""
    if encoding == "hex":
        return bytes.fromhex(text) if _HEX.fullmatch(text) else None
    if encoding != "base64" or not _NODE_BASE64.fullmatch(text):
        return None
    bare = text.rstrip("=").replace("-", "+").replace("_", "/")
    if len(bare) % 4 == 1:
        return None
    try:
        return base64.b64decode(bare + "=" * (-len(bare) % 4), validate=True)
    except binascii.Error:
        return None


def _size(path: str, name: str, expected: int, actual: int) -> Problems:
    if actual == expected:
        return []
    return [
        (
            path,
            (
                f"a {name} digest is {expected} bytes but the value decodes to {actual}: "
                "check hash.encoding (hex or base64) and the algorithm"
            ),
        )
    ]


def _bcrypt(text: str) -> list[str]:
    if BCRYPT.fullmatch(text):
        return []
    if text.startswith(("$2x$", "$2$")):
        return ["bcrypt $2x$ and $2$ hashes are refused: only $2a$, $2b$ and $2y$ are accepted"]
    return [
        (
            "the hash value is not bcrypt: it must be $2a$, $2b$ or $2y$, a two-digit cost 04-31, "
            "'$' and 53 characters of [./A-Za-z0-9]"
        )
    ]


def _ldap(text: str) -> list[str]:
    match = _LDAP_VALUE.fullmatch(text)
    scheme = _LDAP_SCHEMES.get(match.group(1).upper()) if match else None
    if match is None or scheme is None:
        return [
            (
                "the hash value is not an RFC 2307 hash Auth0 reads: write {SCHEME}<base64> with "
                f"a scheme of {', '.join(_LDAP_SCHEMES)} (not CRYPT)"
            )
        ]
    decoded = _decode(match.group(2), "base64")
    size, salted = scheme
    if decoded is None:
        return ["the part after {SCHEME} is not base64: re-encode the digest (and salt) in base64"]
    if len(decoded) == size or (salted and len(decoded) > size):
        return []
    wanted = f"more than {size} bytes (digest then salt)" if salted else f"{size} bytes"
    return [f"this scheme's value must decode to {wanted}, not {len(decoded)}: check the scheme"]


_TEXT_CHECKS: Final[dict[str, Callable[[str], list[str]]]] = {
    "argon2": phc.argon2_faults,
    "bcrypt": _bcrypt,
    "ldap": _ldap,
    "pbkdf2": phc.pbkdf2_faults,
}


def _hmac(hash_part: Mapping[object, object], decoded: bytes | None) -> Problems:
    problems: Problems = []
    digest = hash_part.get("digest")
    size = _DIGEST_SIZES.get(digest) if isinstance(digest, str) else None
    if size is None:
        problems.append(("/hash/digest", f"hmac needs digest: one of {', '.join(_DIGEST_SIZES)}"))
    elif decoded is not None:
        problems.extend(_size("/hash/value", f"hmac-{digest}", size, len(decoded)))
    key = hash_part.get("key")
    key_value = key.get("value") if isinstance(key, Mapping) else None
    if not isinstance(key_value, str) or not key_value:
        problems.append(("/hash/key", "hmac needs key.value: the HMAC secret key"))
    return problems


def _scrypt(value: Mapping[object, object], decoded: bytes | None) -> Problems:
    problems: Problems = []
    keylen = _whole(value.get("keylen"))
    if "keylen" not in value:
        known = f" ({len(decoded)} here)" if decoded is not None else ""
        problems.append(("/keylen", f"scrypt needs keylen: the hash's length in bytes{known}"))
    elif keylen is None or keylen < 1:
        problems.append(("/keylen", "keylen must be a whole number greater than zero"))
    elif decoded is not None and keylen != len(decoded):
        size = len(decoded)
        problems.append(
            (
                "/keylen",
                f"keylen is {keylen} but the hash decodes to {size} bytes: set it to {size}",
            )
        )
    cost = _whole(value.get("cost", 2))
    if cost is None or cost < 2 or cost & (cost - 1):
        problems.append(("/cost", "cost (N) must be a power of two greater than one"))
    for key in ("blockSize", "parallelization"):
        number = _whole(value.get(key, 1))
        if number is None or number < 1:
            problems.append((f"/{key}", f"{key} must be a whole number greater than zero"))
    return problems


def _whole(number: object) -> int | None:
    """A JSON integer as Auth0's JavaScript sees one: 32 and 32.0 alike; None for anything else."""
    if type(number) is int:
        return number
    if type(number) is float and number.is_integer():
        return int(number)
    return None
