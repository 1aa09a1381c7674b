"""The import schema as a JSON Schema, checked in native code: the fast accept path of validation.

Owns one question: is this (normalised) user certainly valid? jsonschema-rs answers it in Rust for
about a third of what the same checks cost in Python. Where the optional C extension
`_fastcheck.c` is built, it answers the same question from the same rules, ~5x faster again, and
this module is not loaded at all (`validation.UserValidator`).

The schema is deliberately *stricter* than the rules in `validation.py` (ASCII-only addresses and
names, no '@' in usernames, lengths counted so that any string passes in UTF-16 units): a user it
accepts is valid; a user it refuses is handed to the Python rules, which decide and explain. It
never produces messages.

Every pattern below is the anchored form of the Python pattern of the same rule in
`validation.py`, restricted to ASCII where the Python one is wider; `tests/test_json_schema.py`
checks that the schema never accepts what the Python rules refuse.
"""

from __future__ import annotations

from typing import Final

import jsonschema_rs

from orchestrator import validation as rules

_EMAIL: Final = (
    r"^[!#-'*+\-./0-9=?A-Z^_`a-z{|}~]{1,64}@"
    r"[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*(?:\.[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*)+$"
)
_B64: Final = r"[A-Za-z0-9+/]+"
_BCRYPT: Final = r"^\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$"
_ARGON2: Final = (
    rf"^\$argon2(?:id|i|d)(?:\$v=[0-9]+)?\$m=[0-9]+,t=[0-9]+,p=[0-9]+"
    rf"(?:,[a-z0-9-]+=[^$,]+)*\${_B64}\${_B64}$"
)
# The digest is named in the pattern: it must be followed by '$', so it is the whole name.
_PBKDF2: Final = (
    rf"^\$pbkdf2-(?:{'|'.join(sorted(rules.PBKDF2_DIGESTS, key=len, reverse=True))})"
    rf"(?:\$[il]=[0-9]+(?:,[il]=[0-9]+)?)?\${_B64}\${_B64}$"
)
# Schemes spelled out instead of case-insensitive matching (Unicode case folding differs).
_LDAP: Final = r"^\{(?:[Ss]?[Mm][Dd]5|[Ss]?[Ss][Hh][Aa][0-9]*)\}[A-Za-z0-9+/]+={0,2}$"
_HEX: Final = r"^(?:[0-9A-Fa-f]{2})+$"
_BASE64: Final = r"^[A-Za-z0-9+/_-]+={0,2}$"
_PHONE: Final = r"^\+[0-9]{1,15}$"
# Printable ASCII without space (what Python's isascii/isprintable/no-space test accepts).
_PRINTABLE: Final = r"^[!-~]+$"
_USERNAME: Final = r"^[A-Za-z0-9^$!#.+'~_`-]+$"  # no '@': such usernames go to the Python rules
# http(s)://, a first host character that is not / ? #, then printable ASCII without space.
_PICTURE: Final = r'^https?://[!-"$-.0->@-~][!-~]*$'
_METADATA_KEY: Final = r"^[^.$]*$"
_TOTP_SECRET: Final = r"^[A-Z2-7]+$"


def _string(pattern: str, *, max_length: int | None = None) -> dict[str, object]:
    schema: dict[str, object] = {"type": "string", "pattern": pattern}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def _bounded(limit: int) -> dict[str, object]:
    # maxLength counts code points; half the limit in code points is within it in UTF-16 units.
    return {"type": "string", "minLength": 1, "maxLength": limit // 2}


def _encoded(value: dict[str, object], *, plain: bool) -> dict[str, object]:
    """Alternatives for an object whose `value` is checked as its `encoding` declares."""
    options: list[dict[str, object]] = [
        {
            "required": ["encoding"],
            "properties": {"encoding": {"const": "hex"}, "value": _string(_HEX)},
        },
        {
            "required": ["encoding"],
            "properties": {"encoding": {"const": "base64"}, "value": _string(_BASE64)},
        },
    ]
    if plain:  # no encoding, or utf8: the value is not checked further
        options.append({"properties": {"encoding": {"const": "utf8"}}})
    return {"allOf": [value, {"anyOf": options}]}


def _strict_object(keys: frozenset[str], **properties: object) -> dict[str, object]:
    return {
        "type": "object",
        "propertyNames": {"enum": sorted(keys)},
        "required": ["value"],
        "properties": {"value": {"type": "string", "minLength": 1}, **properties},
    }


def _custom_password_hash() -> dict[str, object]:
    encodings = {"enum": list(rules.ENCODINGS)}
    key = _encoded(_strict_object(rules.KEY_KEYS, encoding=encodings), plain=True)
    salt = _encoded(
        _strict_object(
            rules.SALT_KEYS, encoding=encodings, position={"enum": list(rules.SALT_POSITIONS)}
        ),
        plain=True,
    )
    hash_object = _strict_object(
        rules.HASH_KEYS, encoding=encodings, digest={"enum": list(rules.HMAC_DIGESTS)}, key=key
    )
    digest_hash = _encoded({}, plain=False)

    def family(algorithms: list[str], hash_: dict[str, object], **extra: object) -> object:
        return {"properties": {"algorithm": {"enum": algorithms}, "hash": hash_}, **extra}

    def utf8_value(pattern: str) -> dict[str, object]:
        return {"properties": {"encoding": {"const": "utf8"}, "value": _string(pattern)}}

    no_salt = {"not": {"required": ["salt"]}}
    positive = {"type": "integer", "minimum": 1}
    return {
        "type": "object",
        "propertyNames": {"enum": sorted(rules.CPH_KEYS)},
        "required": ["algorithm", "hash"],
        "properties": {
            "algorithm": {"enum": list(rules.ALGORITHMS)},
            "hash": hash_object,
            "salt": salt,
            "password": {
                "type": "object",
                "propertyNames": {"enum": ["encoding"]},
                "properties": {"encoding": {"enum": list(rules.PASSWORD_ENCODINGS)}},
            },
            "keylen": positive,
            "cost": {"enum": [2**n for n in range(1, 63)]},
            "blockSize": positive,
            "parallelization": positive,
        },
        "anyOf": [
            family(sorted(rules.DIGEST_ALGORITHMS), digest_hash),
            family(["pbkdf2"], utf8_value(_PBKDF2), **no_salt),
            family(["bcrypt"], utf8_value(_BCRYPT)),
            family(["argon2"], utf8_value(_ARGON2), **no_salt),
            family(["hmac"], {"allOf": [digest_hash, {"required": ["digest", "key"]}]}),
            family(["scrypt"], digest_hash, required=["keylen"]),
            family(["ldap"], utf8_value(_LDAP), **no_salt),
        ],
    }


def _mfa_factors() -> dict[str, object]:
    def factor(kind: str, field: str, value: dict[str, object]) -> dict[str, object]:
        inner = {
            "type": "object",
            "required": [field],
            "propertyNames": {"const": field},
            "properties": {field: value},
        }
        return {
            "type": "object",
            "required": [kind],
            "propertyNames": {"const": kind},
            "properties": {kind: inner},
        }

    return {
        "type": "array",
        "minItems": 1,
        "maxItems": rules.MFA_MAX,
        "items": {
            "anyOf": [
                factor("phone", "value", _string(_PHONE)),
                factor("totp", "secret", _string(_TOTP_SECRET)),
                factor("email", "value", _string(_EMAIL, max_length=rules.EMAIL_ASCII_MAX)),
            ]
        },
    }


def import_schema() -> dict[str, object]:
    """The fast path's schema (Draft 2020-12) for a normalised user."""
    # Keywords apply only to their own type (items to arrays, propertyNames to objects), so one
    # schema covers every metadata value without an anyOf over the types.
    metadata_value = {
        "items": {"$ref": "#/$defs/metadata_value"},
        "propertyNames": {"pattern": _METADATA_KEY},
        "additionalProperties": {"$ref": "#/$defs/metadata_value"},
    }
    properties: dict[str, object] = {
        "email": _string(_EMAIL, max_length=rules.EMAIL_ASCII_MAX),
        "user_id": {**_string(_PRINTABLE), "maxLength": rules.MAX_USER_ID},
        "username": {**_string(_USERNAME), "maxLength": rules.MAX_USERNAME},
        "picture": _string(_PICTURE),
        "phone_number": _string(_PHONE),
        "password_hash": _string(_BCRYPT),
        "custom_password_hash": _custom_password_hash(),
        "mfa_factors": _mfa_factors(),
        "app_metadata": {
            **metadata_value,
            "type": "object",
            "properties": dict.fromkeys(sorted(rules.FORBIDDEN_APP_METADATA_KEYS), False),
        },
        "user_metadata": {**metadata_value, "type": "object"},
        **{name: _bounded(limit) for name, limit in rules.STRING_LIMITS.items()},
        **{name: {"type": "boolean"} for name in rules.BOOL_FIELDS},
    }
    assert properties.keys() == rules.ALLOWED_FIELDS
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["email"],
        "additionalProperties": False,
        "properties": properties,
        "not": {"required": ["password_hash", "custom_password_hash"]},
        "$defs": {"metadata_value": metadata_value},
    }


def _batch_schema() -> dict[str, object]:
    """An array of users (one native call checks a whole batch)."""
    user = import_schema()
    item = {key: value for key, value in user.items() if key not in ("$schema", "$defs")}
    return {"$schema": user["$schema"], "type": "array", "items": item, "$defs": user["$defs"]}


_VALIDATOR: Final = jsonschema_rs.validator_for(import_schema())
_BATCH_VALIDATOR: Final = jsonschema_rs.validator_for(_batch_schema())


def certainly_valid(user: dict[str, object]) -> bool:
    """True if the normalised `user` passes the schema (so it is valid); False: ask the rules.

    Never raises: a value the native side cannot take (e.g. a key that is not a string) is
    simply not certain.
    """
    try:
        return _VALIDATOR.is_valid(user)
    except Exception:  # noqa: BLE001 (the Python rules decide such a user)
        return False


def all_certainly_valid(users: list[object]) -> bool:
    """`certainly_valid` of every normalised user at once (one call for the usual batch)."""
    try:
        return _BATCH_VALIDATOR.is_valid(users)
    except Exception:  # noqa: BLE001 (the Python rules decide, user by user)
        return False


def uncertain(users: list[object]) -> list[int]:
    """The indexes of the `users` that are not `certainly_valid` (the usual batch: none, found by
    one call); an entry that is no object is never certain."""
    if all_certainly_valid(users):
        return []
    return [
        index
        for index, user in enumerate(users)
        if type(user) is not dict or not certainly_valid(user)
    ]
