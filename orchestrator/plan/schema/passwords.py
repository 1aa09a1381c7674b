"""The rules of the password properties: `password_hash` (bcrypt) and `custom_password_hash` (an
algorithm, a hash, and each algorithm's own rules).

This module checks a custom hash's shape: its properties, their types and enums, and what each
algorithm requires of them. What the values of a well-shaped one say (PHC strings, digest sizes,
scrypt's keylen, bcrypt's variant, LDAP schemes) is read by `sources.hashes.value_faults`, the
checks the converters are tested against, and reported under the same reason: a hash converted
wrongly imports fine and then never matches, so the schema must catch it before it is sent.
"""

from __future__ import annotations

from typing import Final

from orchestrator.plan.schema.vocabulary import (
    CPH_KEYS,
    ENCODINGS,
    HASH_KEYS,
    KEY_KEYS,
    NO_SALT_ALGORITHMS,
    OK,
    PASSWORD_ENCODINGS,
    PASSWORD_KEYS,
    SALT_KEYS,
    SALT_POSITIONS,
    UTF8_ALGORITHMS,
    Problem,
    Problems,
    Rule,
    json_type,
    not_plain_str,
    pointer,
    show_key,
    wrong_type,
)
from orchestrator.sources.hashes import (
    ALGORITHMS,
    BCRYPT,
    DIGEST_SIZES,
    bcrypt_fault,
    decode,
    value_faults,
)


# password_hash: bcrypt $2a$/$2b$ [C] SCHEMA-PAGE; $2y$ too, as custom bcrypt accepts [C].
def _password_hash(value: object) -> Problems:
    if type(value) is not str:
        return not_plain_str(_password_hash, "password_hash", value)
    if BCRYPT.fullmatch(value) is not None:
        return OK
    message = bcrypt_fault(value, "password_hash value")
    return (
        Problem(
            "invalid_password_hash",
            "/password_hash",
            f"{message}; for other algorithms use custom_password_hash",
        ),
    )


# custom_password_hash: {algorithm, hash, ...}, per-algorithm rules [C] SCHEMA-PAGE (see below).
def _custom_password_hash(value: object) -> Problems:
    if not isinstance(value, dict):
        return (wrong_type(_CPH, "custom_password_hash", value, "an object"),)
    out: list[Problem] = []
    if not CPH_KEYS.issuperset(value):
        _unknown_keys(value, CPH_KEYS, _CPH, out)
    name = value.get("algorithm")
    algorithm = name if type(name) is str and name in _ALGORITHMS else _algorithm(value, out)
    hash_ = value.get("hash")
    if type(hash_) is not dict or not HASH_KEYS.issuperset(hash_):
        hash_ = _sub_object(value, "hash", HASH_KEYS, out)  # says what is wrong with it
    salt = _sub_object(value, "salt", SALT_KEYS, out) if "salt" in value else None
    password = _sub_object(value, "password", PASSWORD_KEYS, out) if "password" in value else None
    if password is not None and "encoding" in password:
        _enum(password, "encoding", PASSWORD_ENCODINGS, "/password", out)
    if salt is not None:
        _salt(salt, algorithm, out)
    if algorithm == "scrypt" or not _SCRYPT_KEYS.isdisjoint(value):
        _scrypt_numbers(value, algorithm, out)
    if hash_ is not None:
        _hash(hash_, algorithm, out)
    if out or algorithm is None:
        return out
    # The shape is right: what the values say is `sources.hashes`' to read (PHC strings, sizes,
    # keylen, bcrypt, LDAP), the checks that catch a wrong conversion the import would accept.
    return [_cph(where, message) for where, message in value_faults(algorithm, value)] or OK


# ==================================================================================================
# custom_password_hash, in parts (SCHEMA-PAGE, "custom_password_hash" and per-algorithm notes)
# ==================================================================================================
_CPH: Final = "/custom_password_hash"
_CPH_REASON: Final = "invalid_custom_password_hash"
_ALGORITHMS: Final = frozenset(ALGORITHMS)
_ENCODINGS: Final = frozenset(ENCODINGS)
#: The digests hmac takes: those whose sizes the hashes know.
_HMAC_DIGESTS: Final = tuple(DIGEST_SIZES)
#: scrypt's numbers: each an integer at least this large; cost also a power of two.
_SCRYPT_NUMBERS: Final = (
    ("keylen", 1, "an integer greater than zero"),
    ("cost", 2, "a power of two greater than one"),
    ("blockSize", 1, "a positive integer"),
    ("parallelization", 1, "a positive integer"),
)
_SCRYPT_KEYS: Final = frozenset(key for key, _, _ in _SCRYPT_NUMBERS)


def _cph(where: str, message: str) -> Problem:
    """A problem at `where` below /custom_password_hash."""
    return Problem(_CPH_REASON, _CPH + where, message)


def _dotted(where: str) -> str:
    """'/hash/key' -> 'custom_password_hash.hash.key', as messages name a place."""
    return "custom_password_hash" + where.replace("/", ".")


def _unknown_keys(
    obj: dict[object, object], allowed: frozenset[str], where: str, out: list[Problem]
) -> None:
    what = _dotted(where.removeprefix(_CPH))
    out.extend(
        Problem(
            _CPH_REASON,
            where + pointer(key),
            f"{show_key(key)} is not a property of {what}; allowed: {', '.join(sorted(allowed))}",
        )
        for key in obj
        if key not in allowed
    )


def _enum(
    obj: dict[object, object], key: str, allowed: tuple[str, ...], where: str, out: list[Problem]
) -> bool:
    """Whether `obj[key]` is absent or one of `allowed` (if not, a problem is added)."""
    if key not in obj:
        return True
    value = obj[key]
    if isinstance(value, str) and value in allowed:
        return True
    place = f"{where}/{key}"
    out.append(_cph(place, f"{_dotted(place)} must be one of: {', '.join(allowed)}"))
    return False


def _algorithm(cph: dict[object, object], out: list[Problem]) -> str | None:
    """The algorithm of a `cph` whose algorithm is not a plain known name: a str subclass's
    name, else None (and a problem is added)."""
    algorithm = cph.get("algorithm")
    if isinstance(algorithm, str) and algorithm in _ALGORITHMS:
        return str.__str__(algorithm)
    if "algorithm" not in cph:
        message = f"custom_password_hash.algorithm is required: one of {', '.join(ALGORITHMS)}"
    else:
        message = f"custom_password_hash.algorithm must be one of: {', '.join(ALGORITHMS)}"
    out.append(_cph("/algorithm", message))
    return None


def _sub_object(
    cph: dict[object, object], key: str, allowed: frozenset[str], out: list[Problem]
) -> dict[object, object] | None:
    """The sub-object `key` if it is an object (its unknown keys reported), else None."""
    if key not in cph:  # only hash is looked up without being there
        out.append(
            _cph("/hash", "custom_password_hash.hash is required (an object with the hash value)")
        )
        return None
    value = cph[key]
    if not isinstance(value, dict):
        message = f"custom_password_hash.{key} is {json_type(value)}; it must be an object"
        out.append(_cph(f"/{key}", message))
        return None
    if not allowed.issuperset(value):
        _unknown_keys(value, allowed, f"{_CPH}/{key}", out)
    return value


def _required_string(
    obj: dict[object, object], where: str, what: str, out: list[Problem]
) -> str | None:
    """`obj["value"]` if it is a non-empty string (if not, a problem is added)."""
    value = obj.get("value")
    if isinstance(value, str) and value:
        return str.__str__(value)
    place = where + "/value"
    if "value" not in obj:
        out.append(_cph(place, f"{_dotted(place)} is required ({what})"))
    elif not isinstance(value, str):
        out.append(_cph(place, f"{_dotted(place)} is {json_type(value)}; it must be a string"))
    else:
        out.append(_cph(place, f"{_dotted(place)} is empty; give {what}"))
    return None


def _encoded(value: str, encoding: object, where: str, what: str, out: list[Problem]) -> None:
    """A value declared hex/base64 must be it, as Node reads it (the value is never shown)."""
    if encoding == "hex":
        if decode(value, "hex") is None:
            out.append(_cph(where, f"the {what} is declared hex but is not whole bytes of hex"))
    elif encoding == "base64" and decode(value, "base64") is None:
        out.append(_cph(where, f"the {what} is declared base64 but is not base64"))


def _salt(salt: dict[object, object], algorithm: str | None, out: list[Problem]) -> None:
    if algorithm in NO_SALT_ALGORITHMS:
        out.append(
            _cph(
                "/salt", f"{algorithm} does not allow a salt object; the salt belongs in hash.value"
            )
        )
    given = salt.get("value")
    value = (
        given
        if type(given) is str and given
        else _required_string(salt, "/salt", "the salt value", out)
    )
    encoding = salt.get("encoding")
    encoding_ok = (type(encoding) is str and encoding in _ENCODINGS) or _enum(
        salt, "encoding", ENCODINGS, "/salt", out
    )
    if "position" in salt:
        _enum(salt, "position", SALT_POSITIONS, "/salt", out)
    if value is not None and encoding_ok and encoding is not None:
        _encoded(value, encoding, "/salt/value", "salt value", out)


def _scrypt_numbers(cph: dict[object, object], algorithm: str | None, out: list[Problem]) -> None:
    for key, least, wanted in _SCRYPT_NUMBERS:
        if key not in cph:
            continue
        number = cph[key]
        # A JSON-schema integer is a number without a fraction (Auth0 checks in JavaScript:
        # 32.0 is 32); bool is no number.
        if type(number) is float and number.is_integer():
            number = int(number)
        if type(number) is not int or number < least or (key == "cost" and number & (number - 1)):
            out.append(_cph(f"/{key}", f"custom_password_hash.{key} must be {wanted}"))
    if algorithm == "scrypt" and "keylen" not in cph:
        out.append(_cph("/keylen", "scrypt needs keylen (the derived key length in bytes)"))


def _hash(hash_: dict[object, object], algorithm: str | None, out: list[Problem]) -> None:
    given = hash_.get("value")
    if type(given) is not str or not given:
        _required_string(hash_, "/hash", "the password hash", out)
    encoding = hash_.get("encoding")
    encoding_ok = (type(encoding) is str and encoding in _ENCODINGS) or _enum(
        hash_, "encoding", ENCODINGS, "/hash", out
    )
    if "digest" in hash_:
        _enum(hash_, "digest", _HMAC_DIGESTS, "/hash", out)
    if "key" in hash_:
        _hmac_key(hash_["key"], out)
    if algorithm is None or not encoding_ok:
        return
    if algorithm in UTF8_ALGORITHMS:
        if encoding is not None and encoding != "utf8":
            out.append(_cph("/hash/encoding", f"{algorithm} hashes must use hash.encoding utf8"))
        return
    if encoding != "hex" and encoding != "base64":
        out.append(_cph("/hash/encoding", f"{algorithm} hashes need hash.encoding hex or base64"))
    if algorithm == "hmac":
        if "digest" not in hash_:
            out.append(
                _cph("/hash/digest", f"hmac needs hash.digest: one of {', '.join(_HMAC_DIGESTS)}")
            )
        if "key" not in hash_:
            out.append(_cph("/hash/key", "hmac needs hash.key with the key's value"))


def _hmac_key(key: object, out: list[Problem]) -> None:
    if not isinstance(key, dict):
        message = f"custom_password_hash.hash.key is {json_type(key)}; it must be an object"
        out.append(_cph("/hash/key", message))
        return
    if not KEY_KEYS.issuperset(key):
        _unknown_keys(key, KEY_KEYS, _CPH + "/hash/key", out)
    value = _required_string(key, "/hash/key", "the HMAC key", out)
    if _enum(key, "encoding", ENCODINGS, "/hash/key", out) and value is not None:
        _encoded(value, key.get("encoding"), "/hash/key/value", "key value", out)


#: Property name -> its rule, in the table's order.
RULES: Final[dict[str, Rule]] = {
    "password_hash": _password_hash,
    "custom_password_hash": _custom_password_hash,
}
