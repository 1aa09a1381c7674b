"""Keycloak's password credentials, from a realm export's `users[].credentials`.

Keycloak 11+ writes a credential as `{"type": "password", "secretData": "<JSON>",
"credentialData": "<JSON>"}`: secretData holds the base64 `value` (the derived key) and `salt`,
credentialData the `hashIterations`, the `algorithm` and, for argon2, `additionalParameters`
(`{"type": ["id"], "version": ["1.3"], "memory": ["7168"], "parallelism": ["1"],
"hashLength": ["32"]}`). Older exports carry `hashedSaltedValue`, `salt`, `hashIterations` and
`algorithm` on the credential itself; both are read.

The pbkdf2 providers (`pbkdf2-sha256`, `pbkdf2-sha512`, and `pbkdf2` = SHA-1) derive as many bytes
as the stored value has, from the password's UTF-8, so the PHC string's `l` is the decoded value's
length. The argon2 provider (Keycloak 24+) hashes the UTF-8 password with the salt and parameters
above. A realm configured to pad passwords before hashing (the FIPS `maxPaddingLength` option) is
not visible in the export; such users would fail to log in and need a reset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final, NamedTuple

from orchestrator.sources.hashes import phc
from orchestrator.sources.hashes.credential import NONE, Credential, custom, unsupported

_PBKDF2_DIGESTS: Final = {"pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512", "pbkdf2": "sha1"}
_ARGON2: Final = "argon2"
_ARGON2_VARIANTS: Final = {"id": "argon2id", "i": "argon2i", "d": "argon2d"}
_ARGON2_VERSIONS: Final = {"1.3": 19, "1.0": 16}
#: An algorithm name safe to count by (a provider id); anything else is counted as unknown.
_PROVIDER_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


class _Stored(NamedTuple):
    """One password credential's parts, whichever export shape they came in (unchecked)."""

    algorithm: object
    iterations: object
    value: object
    salt: object
    parameters: object


def from_keycloak(credentials: object) -> Credential:
    """A Keycloak user's `credentials` list as the import takes it.

    Returns:
        pbkdf2 or argon2; NONE when the user has no password credential; unsupported:keycloak-<id>
        for another hash provider (a custom one), unsupported:keycloak-plaintext for the clear
        `value` of a hand-written realm file, unsupported:malformed-keycloak for a password
        credential whose parts do not parse.
    """
    if not isinstance(credentials, list):
        return NONE
    for entry in credentials:
        if isinstance(entry, Mapping) and entry.get("type") == "password":
            return _convert(entry)
    return NONE  # no password (e.g. only "otp", or a federated user)


def _convert(entry: Mapping[str, object]) -> Credential:
    if isinstance(entry.get("value"), str):  # a hand-written realm file's plain-text password
        return unsupported(
            "keycloak-plaintext",
            "a plain-text password (a hand-written realm file): the import takes hashes only",
        )
    stored = _read(entry)
    if stored is None:
        return _malformed("secretData or credentialData is not the JSON object Keycloak writes")
    algorithm = stored.algorithm
    if not isinstance(algorithm, str) or not algorithm:
        return _malformed("it names no hash algorithm")
    if algorithm not in _PBKDF2_DIGESTS and algorithm != _ARGON2:
        known = _PROVIDER_ID.fullmatch(algorithm.lower()) is not None
        return unsupported(
            f"keycloak-{algorithm.lower()}" if known else "keycloak-unknown",
            "a Keycloak password hash provider this tool cannot convert for Auth0",
        )
    iterations = stored.iterations
    value = phc.standard_b64decode(stored.value) if isinstance(stored.value, str) else None
    salt = phc.standard_b64decode(stored.salt) if isinstance(stored.salt, str) else None
    if type(iterations) is not int or iterations < 1:
        return _malformed("its hashIterations is not a positive integer")
    if not value or not salt:
        return _malformed("its value or salt is missing or not base64")
    if algorithm == _ARGON2:
        parameters = stored.parameters if isinstance(stored.parameters, Mapping) else {}
        return _argon2(parameters, iterations, salt, value)
    text = phc.pbkdf2(_PBKDF2_DIGESTS[algorithm], iterations, salt, value)
    return custom("pbkdf2", "pbkdf2", {"value": text, "encoding": "utf8"})


def _read(entry: Mapping[str, object]) -> _Stored | None:
    """The parts of either export shape; None when secretData/credentialData do not parse."""
    if "secretData" not in entry and "credentialData" not in entry:  # before Keycloak 11
        return _Stored(
            entry.get("algorithm"),
            entry.get("hashIterations"),
            entry.get("hashedSaltedValue"),
            entry.get("salt"),
            None,
        )
    secret, data = _json_object(entry.get("secretData")), _json_object(entry.get("credentialData"))
    if secret is None or data is None:
        return None
    return _Stored(
        data.get("algorithm"),
        data.get("hashIterations"),
        secret.get("value"),
        secret.get("salt"),
        data.get("additionalParameters"),
    )


def _json_object(text: object) -> Mapping[str, object] | None:
    """secretData/credentialData: a JSON text in exports, an object if someone decoded it."""
    if isinstance(text, Mapping):
        return text
    if not isinstance(text, str):
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _argon2(
    parameters: Mapping[object, object], iterations: int, salt: bytes, value: bytes
) -> Credential:
    variant = _ARGON2_VARIANTS.get(_first(parameters, "type") or "")
    version = _ARGON2_VERSIONS.get(_first(parameters, "version") or "")
    memory, lanes, length = (
        _number(_first(parameters, key)) for key in ("memory", "parallelism", "hashLength")
    )
    if variant is None or version is None or memory is None or lanes is None:
        return _malformed("its argon2 type, version, memory or parallelism is missing or unknown")
    if length is not None and length != len(value):
        return _malformed("its argon2 hashLength is not the stored hash's length")
    text = phc.argon2(variant, version, memory, iterations, lanes, salt, value)
    if phc.argon2_faults(text):  # e.g. a salt shorter than argon2 allows
        return _malformed("its argon2 parameters are outside what argon2 accepts")
    return custom("argon2", "argon2", {"value": text, "encoding": "utf8"})


def _first(parameters: Mapping[object, object], key: str) -> str | None:
    """additionalParameters is multi-valued ({"memory": ["7168"]}); a bare value is read too."""
    value = parameters.get(key)
    if isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else None


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.isascii() and text.isdigit() else None


def _malformed(why: str) -> Credential:
    return unsupported("malformed-keycloak", f"a Keycloak password credential where {why}")
