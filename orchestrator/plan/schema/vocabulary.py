"""The import schema's vocabulary: reject reasons, the problem type, the table's fields and limits,
the shared patterns, and the small helpers every rule's messages use.

Facts of the service's schema (reference §7), each spelled once; the rules in the sibling modules
decide with them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

REASONS: Final[dict[str, str]] = {
    "not_an_object": "the entry is not a JSON object",
    "missing_email": "the required email field is missing",
    "invalid_email": "email is not a plausible address",
    "unknown_field": "a top-level field the import schema does not accept",
    "invalid_type": 'a field has the wrong JSON type (e.g. the string "true" for a boolean)',
    "invalid_length": "a string is empty or longer than Auth0 allows",
    "invalid_phone_number": "phone_number is not E.164 (+ then 1-15 digits)",
    "invalid_picture": "picture is not an http(s) URL",
    "invalid_password_hash": "password_hash is not a bcrypt $2a$/$2b$/$2y$ hash",
    "invalid_custom_password_hash": "custom_password_hash breaks the schema or its algorithm rules",
    "exclusive_password_fields": "password_hash and custom_password_hash are both present",
    "invalid_mfa_factors": "mfa_factors is not 1-10 valid totp/phone/email enrollments",
    "forbidden_app_metadata_key": "app_metadata holds a key Auth0 reserves",
    "invalid_metadata_key": "a metadata key (at any depth) contains '.' or '$'",
    "invalid_username": "username has characters Auth0 refuses or is an email address",
    "invalid_user_id": "user_id is empty, too long, or contains whitespace/control characters",
    "duplicate_email": "the email repeats an earlier user's (case-insensitive)",
    "duplicate_user_id": "the user_id repeats an earlier user's",
    "too_large": "the user alone does not fit in one import request",
    "unsafe_number": "a number is an integer beyond 2^53 - 1, which Auth0 (JavaScript) changes",
    "no_password": "no password hash, and --require-passwords is given",
    "unsupported_password": "a password hash Auth0 cannot check, and --require-passwords is given",
    "not_database_user": "a user of a social or enterprise connection, not of a database",
    "unknown_connection": "--only-connection is given and the export does not say the connection",
    "invalid_source_value": "a source field's value cannot become its import field (--from, --map)",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a user cannot be imported.

    Attributes:
        reason: a key of `REASONS`.
        path: JSON-pointer-like location, e.g. `/custom_password_hash/hash/encoding` ("": the user).
        message: one line for people; never contains a password hash, salt, key or TOTP secret.
    """

    reason: str
    path: str
    message: str


#: What a rule returns: its value's problems; the shared empty `OK` when there are none.
Problems = Sequence[Problem]
Rule = Callable[[object], Problems]
OK: Final[Problems] = ()

# --- the table's vocabulary -----------------------------------------------------------------------
#: Top-level properties of the import schema (additionalProperties: false).
ALLOWED_FIELDS: Final = frozenset(
    {
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
    }
)

#: Fields of an Auth0 user profile/export that the import schema refuses (hinted at in messages).
AUTH0_EXPORT_FIELDS: Final = frozenset(
    {
        "created_at",
        "updated_at",
        "identities",
        "logins_count",
        "last_login",
        "last_ip",
        "last_password_reset",
        "multifactor",
        "multifactor_last_modified",
        "password_set_date",
    }
)

#: Keys `app_metadata` must not contain (reference §7, SCHEMA-PAGE).
FORBIDDEN_APP_METADATA_KEYS: Final = frozenset(
    {
        "__tenant",
        "_id",
        "blocked",
        "clientID",
        "created_at",
        "email_verified",
        "email",
        "globalClientID",
        "global_client_id",
        "identities",
        "lastIP",
        "lastLogin",
        "loginsCount",
        "metadata",
        "multifactor_last_modified",
        "multifactor",
        "updated_at",
        "user_id",
    }
)

# Limits: address <= 254, local part <= 64 [C] user-profile page; a DNS label <= 63 (RFC 1035);
# user_id <= 255, username <= 128, names 150/300 [C] OAS POST /users; mfa_factors maxItems 10 [C]
# SCHEMA-PAGE. Lengths of free text count UTF-16 units, as Auth0's JavaScript does.
MAX_EMAIL: Final = 254
MAX_EMAIL_LOCAL_PART: Final = 64
MAX_DOMAIN_LABEL: Final = 63
MAX_USER_ID: Final = 255
MAX_USERNAME: Final = 128
STRING_LIMITS: Final = {"given_name": 150, "family_name": 150, "name": 300, "nickname": 300}
BOOL_FIELDS: Final = frozenset({"email_verified", "phone_verified", "blocked"})
MFA_MAX: Final = 10
#: Metadata key problems listed per metadata object; a pathological user must not flood reports.
MAX_KEY_PROBLEMS: Final = 10

# custom_password_hash (SCHEMA-PAGE). Tuples keep the documented order for messages. The hash
# formats' own vocabulary (the algorithms, bcrypt, the digests and their sizes, how Node decodes
# hex and base64) is `sources.hashes`', shared with the converters: imported, never restated here.
#: Algorithms whose hash.value is a string in the algorithm's own format (hash.encoding utf8).
UTF8_ALGORITHMS: Final = frozenset({"argon2", "bcrypt", "ldap", "pbkdf2"})
#: Algorithms whose salt is inside hash.value: a salt object is refused.
NO_SALT_ALGORITHMS: Final = frozenset({"argon2", "ldap", "pbkdf2"})
ENCODINGS: Final = ("base64", "hex", "utf8")
SALT_POSITIONS: Final = ("prefix", "suffix")
PASSWORD_ENCODINGS: Final = ("ascii", "utf8", "utf16le", "ucs2", "latin1", "binary")
CPH_KEYS: Final = frozenset(
    {"algorithm", "hash", "salt", "password", "keylen", "cost", "blockSize", "parallelization"}
)
HASH_KEYS: Final = frozenset({"value", "encoding", "digest", "key"})
KEY_KEYS: Final = frozenset({"value", "encoding"})
SALT_KEYS: Final = frozenset({"value", "encoding", "position"})
PASSWORD_KEYS: Final = frozenset({"encoding"})
#: MFA factor type -> the one property its object holds.
MFA_KINDS: Final = {"totp": "secret", "phone": "value", "email": "value"}

# --- patterns -------------------------------------------------------------------------------------
# Whitespace (what str.isspace calls whitespace) and C0/C1 control characters, spelled out as
# ranges: the regex engine tests such a class with a table lookup, ~2x faster than `\s`.
SPACE_OR_CONTROL: Final = (
    "\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
# Any run of characters that are not SPACE_OR_CONTROL. The printable-ASCII run comes first and
# is possessive: the usual all-ASCII value never touches the wider class, and a refused value is
# refused in one pass.
VISIBLE_RUN: Final = f"[!-~]*+[^{SPACE_OR_CONTROL}]*+"
# A domain label: 1-63 letters/digits of any script and inner hyphens. The ASCII form is tried
# first only because it is cheaper; it matches a subset of what the general form matches.
_LABEL: Final = (
    f"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,{MAX_DOMAIN_LABEL - 2}}}[A-Za-z0-9])?"
    f"|[^\\W_](?:[^\\W_]|-){{0,{MAX_DOMAIN_LABEL - 1}}}(?<!-))"
)
EMAIL: Final = re.compile(
    f"(?=(?s:.){{1,{MAX_EMAIL}}}\\Z)"  # the whole address: at most 254 characters
    f"(?=[^@]{{1,{MAX_EMAIL_LOCAL_PART}}}@)[!-?A-~]*+[^@{SPACE_OR_CONTROL}]*+"  # local part
    f"@{_LABEL}(?:\\.{_LABEL})+"
)
PHONE: Final = re.compile(r"\+[0-9]{1,15}")
USER_ID: Final = re.compile(VISIBLE_RUN)  # non-empty: the rule checks the length first
USERNAME: Final = re.compile(f"[A-Za-z0-9@^$!#.+'~_`-]{{1,{MAX_USERNAME}}}")
URL: Final = re.compile(f"(?i:https?)://[^/?#{SPACE_OR_CONTROL}]{VISIBLE_RUN}")
TOTP_SECRET: Final = re.compile(r"[A-Z2-7]+")
# Explanations only (run after a rule refused a value, to say which part is wrong).
_EMAIL_LOCAL: Final = re.compile(f"[^@{SPACE_OR_CONTROL}]+")
_DOMAIN_LABEL: Final = re.compile(_LABEL)


def not_plain_str(rule: Rule, name: str, value: object) -> Problems:
    """A string rule's answer for a value that is not a plain str: a str subclass (a library
    caller's) is checked as the string it holds; anything else has the wrong type."""
    if isinstance(value, str):
        return rule(str.__str__(value))
    return (wrong_type("/" + name, name, value, "a string"),)


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def key_text(key: object) -> str:
    """`str(key)` for a path; never fails (an int over 4300 digits or an odd object would)."""
    if isinstance(key, str):
        return str.__str__(key)
    try:
        return str(key)
    except Exception:  # noqa: BLE001 (a library caller's key: the path still names its type)
        return f"<{type(key).__name__}>"


def show_key(key: object) -> str:
    """A key as quoted in a message: its repr, cut to 60 characters; never fails."""
    try:
        text = repr(key)
    except Exception:  # noqa: BLE001 (as in key_text)
        text = f"<{type(key).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def pointer(*parts: object) -> str:
    """JSON pointer from unescaped parts (RFC 6901: '~' -> '~0', '/' -> '~1')."""
    return "".join("/" + key_text(part).replace("~", "~0").replace("/", "~1") for part in parts)


def wrong_type(path: str, name: str, value: object, expected: str) -> Problem:
    return Problem("invalid_type", path, f"{name} is {json_type(value)}; it must be {expected}")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def email_faults(text: str) -> list[str]:
    """Which parts of an address `EMAIL` refused are wrong (it alone decides)."""
    faults: list[str] = []
    if len(text) > MAX_EMAIL:
        faults.append(f"it is {len(text)} characters long, more than {MAX_EMAIL}")
    if text.count("@") != 1:
        faults.append("it must contain exactly one '@'")
        return faults
    local, _, domain = text.partition("@")
    if not local:
        faults.append("the part before '@' is empty")
    elif len(local) > MAX_EMAIL_LOCAL_PART:
        faults.append(f"the part before '@' is longer than {MAX_EMAIL_LOCAL_PART} characters")
    elif _EMAIL_LOCAL.fullmatch(local) is None:
        faults.append("it contains a space or a control character")
    labels = domain.split(".")
    if len(labels) < 2:
        faults.append("the domain needs a dot (like example.com)")
    elif not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        faults.append(
            "the domain has an invalid label (letters, digits and inner hyphens, 1-63 each)"
        )
    return faults or ["it is not a plausible address"]
