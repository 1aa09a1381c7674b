"""Django's encoded passwords (`auth_user.password`, `dumpdata`): `<algorithm>$<fields>`.

Each hasher of `django.contrib.auth.hashers` has its own field layout; those whose algorithm Auth0
can run are rewritten into the import's shape, byte for byte the same computation:

- `pbkdf2_sha256$<iterations>$<salt text>$<base64 key>` (and `pbkdf2_sha1`): the salt is used as
  its UTF-8 bytes and the key is the digest's size, so the PHC string is
  `$pbkdf2-sha256$i=<iterations>,l=<key bytes>$<B64 salt bytes>$<B64 key>`.
- `argon2$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>`: already a PHC string after "argon2".
- `bcrypt$<bcrypt hash>`: plain bcrypt of the password.
- `scrypt$<N>$<salt text>$<r>$<p>$<base64 key>`: standard scrypt, which Auth0 runs too.
- `md5$<salt>$<hex>` and `sha1$<salt>$<hex>`: a digest of salt + password; with an empty salt,
  and a bare 32-digit hex string, the unsalted hashers.

`bcrypt_sha256$` (bcrypt of the password's SHA-256) and `crypt$` cannot be expressed; a password
starting with "!" is Django's unusable password: no password.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from orchestrator.sources.hashes import phc
from orchestrator.sources.hashes.bcrypt import from_bcrypt
from orchestrator.sources.hashes.credential import NONE, Credential, custom, unsupported
from orchestrator.sources.hashes.vocabulary import decode

_UNUSABLE_PREFIX: Final = "!"
_HEX_DIGEST_LENGTHS: Final = {"md5": 32, "sha1": 40}
_PBKDF2_DIGESTS: Final = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}
_NOT_EXPRESSIBLE: Final = {
    "bcrypt_sha256": "Django's bcrypt_sha256 runs bcrypt over the password's SHA-256, "
    "which the import cannot express: these users must reset their password",
    "crypt": "Django's crypt hasher uses the system's crypt(3), which the import cannot run",
}
_DIGITS: Final = re.compile(r"[0-9]+")


def from_django(encoded: str) -> Credential:
    """A Django encoded password as the import takes it.

    Returns:
        pbkdf2, argon2, bcrypt, scrypt, md5 or sha1; NONE for "" or an unusable password ("!...");
        unsupported:django-bcrypt_sha256, unsupported:django-crypt, unsupported:malformed-django
        (a known hasher whose fields do not parse) or unsupported:django-unknown.
    """
    if not isinstance(encoded, str) or encoded == "" or encoded.startswith(_UNUSABLE_PREFIX):
        return NONE
    algorithm, dollar, rest = encoded.partition("$")
    if not dollar:
        if len(encoded) == _HEX_DIGEST_LENGTHS["md5"] and decode(encoded, "hex") is not None:
            return _salted_digest("md5", "", encoded)  # UnsaltedMD5PasswordHasher's bare form
        return _unknown()
    if algorithm in _NOT_EXPRESSIBLE:
        return unsupported(f"django-{algorithm}", _NOT_EXPRESSIBLE[algorithm])
    convert = _CONVERTERS.get(algorithm)
    return _unknown() if convert is None else convert(algorithm, rest)


def _unknown() -> Credential:
    return unsupported("django-unknown", "not a password hash of any Django hasher this tool knows")


def _malformed(algorithm: str, what: str) -> Credential:
    return unsupported("malformed-django", f"a Django {algorithm} hash whose {what}")


def _pbkdf2(algorithm: str, rest: str) -> Credential:
    fields = rest.split("$")
    if len(fields) != 3:
        return _malformed(algorithm, "fields are not <iterations>$<salt>$<hash>")
    iterations, salt, encoded_key = fields
    key = phc.standard_b64decode(encoded_key)
    if not _DIGITS.fullmatch(iterations) or int(iterations) < 1:
        return _malformed(algorithm, "iteration count is not a positive number")
    if salt == "":  # Django never writes one, and a PHC string cannot carry one
        return _malformed(algorithm, "salt is empty")
    if not key:
        return _malformed(algorithm, "hash is not base64")
    value = phc.pbkdf2(_PBKDF2_DIGESTS[algorithm], int(iterations), salt.encode(), key)
    return custom("pbkdf2", "pbkdf2", {"value": value, "encoding": "utf8"})


def _argon2(algorithm: str, rest: str) -> Credential:
    value = "$" + rest
    if phc.argon2_faults(value):
        return _malformed(algorithm, "rest is not an argon2 PHC string")
    return custom("argon2", "argon2", {"value": value, "encoding": "utf8"})


def _bcrypt(algorithm: str, rest: str) -> Credential:
    return from_bcrypt(rest) if rest else _malformed(algorithm, "bcrypt part is empty")


def _scrypt(algorithm: str, rest: str) -> Credential:
    fields = rest.split("$")
    if len(fields) != 5:
        return _malformed(algorithm, "fields are not <N>$<salt>$<r>$<p>$<hash>")
    cost, salt, block_size, parallelism, encoded_key = fields
    numbers = [int(n) if _DIGITS.fullmatch(n) else 0 for n in (cost, block_size, parallelism)]
    if min(numbers) < 1 or numbers[0] < 2 or numbers[0] & (numbers[0] - 1):
        return _malformed(algorithm, "N, r or p is not valid (N a power of two, r and p >= 1)")
    key = phc.standard_b64decode(encoded_key)
    if not key:
        return _malformed(algorithm, "hash is not base64")
    extra: dict[str, object] = {
        "keylen": len(key),
        "cost": numbers[0],
        "blockSize": numbers[1],
        "parallelization": numbers[2],
    }
    if salt:
        extra["salt"] = {"value": salt, "encoding": "utf8"}
    hash_part: dict[str, object] = {"value": encoded_key, "encoding": "base64"}
    return custom("scrypt", "scrypt", hash_part, **extra)


def _salted(algorithm: str, rest: str) -> Credential:
    salt, dollar, hex_digest = rest.partition("$")
    if not dollar:
        return _malformed(algorithm, "fields are not <salt>$<hex digest>")
    return _salted_digest(algorithm, salt, hex_digest)


def _salted_digest(algorithm: str, salt: str, hex_digest: str) -> Credential:
    """`<digest>(salt + password)` in hex: the import's digest algorithm with a prefix salt."""
    if len(hex_digest) != _HEX_DIGEST_LENGTHS[algorithm] or decode(hex_digest, "hex") is None:
        return _malformed(algorithm, "digest is not hex of the right length")
    extra: dict[str, object] = {}
    if salt:
        extra["salt"] = {"value": salt, "encoding": "utf8", "position": "prefix"}
    return custom(algorithm, algorithm, {"value": hex_digest, "encoding": "hex"}, **extra)


_CONVERTERS: Final[dict[str, Callable[[str, str], Credential]]] = {
    "pbkdf2_sha256": _pbkdf2,
    "pbkdf2_sha1": _pbkdf2,
    "argon2": _argon2,
    "bcrypt": _bcrypt,
    "scrypt": _scrypt,
    "md5": _salted,
    "sha1": _salted,
}
