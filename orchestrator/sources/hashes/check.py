"""The content checks of a `custom_password_hash`: what inside its values makes a wrong
conversion, which the import accepts and the user then cannot log in with.

The import schema (`plan.schema`) checks the object's shape: the algorithm, the properties and
their types, the encodings each algorithm allows, hmac's digest and key, scrypt's numbers. Once the
shape is right it asks `value_faults` what the values say: PHC syntax and B64, a key length that is
not the hash's, a digest size that does not fit the algorithm, scrypt's keylen, bcrypt's variant,
an LDAP scheme and its size. Only users that carry a custom hash pay for these.

Paths are JSON pointers below `custom_password_hash` ("/hash/value"); messages say what to do and
never quote a hash, salt or key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from orchestrator.sources.hashes import phc
from orchestrator.sources.hashes.bcrypt import bcrypt_fault
from orchestrator.sources.hashes.vocabulary import DIGEST_SIZES, decode

#: (JSON pointer below custom_password_hash, message) pairs.
Faults = list[tuple[str, str]]

#: RFC 2307 schemes Auth0 reads: (digest bytes, salted). A salted value is base64(digest || salt).
_LDAP_SCHEMES: Final = {
    "MD5": (16, False), "SMD5": (16, True), "SHA": (20, False), "SSHA": (20, True),
    "SHA256": (32, False), "SSHA256": (32, True), "SHA384": (48, False), "SSHA384": (48, True),
    "SHA512": (64, False), "SSHA512": (64, True),
}  # fmt: skip
_LDAP_VALUE: Final = re.compile(r"\{([A-Za-z0-9]+)\}(.*)", re.DOTALL)
_VALUE: Final = "/hash/value"


def value_faults(algorithm: str, cph: Mapping[object, object]) -> Faults:
    """The content faults of a `custom_password_hash` whose shape the schema found right.

    Args:
        algorithm: one of `ALGORITHMS` (as a plain str).
        cph: the object, already known to have a non-empty `hash.value`, the encoding its algorithm
            takes, hmac's `hash.digest` and scrypt's `keylen`. A part that is not so is left to
            the schema's report: nothing is said about it here.

    Returns:
        An empty list when the values agree with each other and with the algorithm.
    """
    hash_part = cph.get("hash")
    if not isinstance(hash_part, Mapping):
        return []
    text = hash_part.get("value")
    if not isinstance(text, str):
        return []
    read_text = _TEXT_CHECKS.get(algorithm)
    if read_text is not None:
        return [(_VALUE, fault) for fault in read_text(text)]
    encoding = hash_part.get("encoding")
    if encoding != "hex" and encoding != "base64":
        return []
    decoded = decode(text, "hex" if encoding == "hex" else "base64")
    if decoded is None:
        return [(_VALUE, f"the hash value is not valid {encoding}: check hash.encoding")]
    if algorithm == "scrypt":
        return _keylen(cph.get("keylen"), len(decoded))
    if algorithm == "hmac":
        digest = hash_part.get("digest")
        size = DIGEST_SIZES.get(digest) if isinstance(digest, str) else None
        return [] if size is None else _size(f"hmac-{digest}", size, len(decoded))
    size = DIGEST_SIZES.get(algorithm)
    return [] if size is None else _size(algorithm, size, len(decoded))


def _size(name: str, expected: int, actual: int) -> Faults:
    if actual == expected:
        return []
    return [
        (
            _VALUE,
            (
                f"a {name} digest is {expected} bytes but the value decodes to {actual}: "
                "check hash.encoding (hex or base64) and the algorithm"
            ),
        )
    ]


def _keylen(keylen: object, size: int) -> Faults:
    """scrypt derives `keylen` bytes and compares them with the hash: another length never
    matches."""
    if type(keylen) is float and keylen.is_integer():  # 32.0 is 32 to Auth0's JavaScript
        keylen = int(keylen)
    if type(keylen) is not int or keylen == size:
        return []
    return [
        ("/keylen", f"keylen is {keylen} but the hash decodes to {size} bytes: set it to {size}")
    ]


def _bcrypt(text: str) -> list[str]:
    fault = bcrypt_fault(text)
    return [fault] if fault else []


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
    decoded = decode(match.group(2), "base64")
    size, salted = scheme
    if decoded is None:
        return ["the part after {SCHEME} is not base64: re-encode the digest (and salt) in base64"]
    if len(decoded) == size or (salted and len(decoded) > size):
        return []
    wanted = f"more than {size} bytes (digest then salt)" if salted else f"{size} bytes"
    return [f"this scheme's value must decode to {wanted}, not {len(decoded)}: check the scheme"]


#: The algorithms whose hash.value is text in the algorithm's own format, and its reader.
_TEXT_CHECKS: Final[dict[str, Callable[[str], list[str]]]] = {
    "argon2": phc.argon2_faults,
    "bcrypt": _bcrypt,
    "ldap": _ldap,
    "pbkdf2": phc.pbkdf2_faults,
}
