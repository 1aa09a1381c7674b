"""The Auth0 bulk-import user schema (reference §7): one rule per property, and `check_user`.

Owns what makes one decoded user valid and, when it is not, every reason why (code, JSON-pointer
path, a one-line message that never quotes a secret). Each rule is the only definition of its
property. Normalising users, duplicates and sizes belong elsewhere; their codes are in REASONS.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

#: Every reason code a local reject can carry, with a one-line description for docs and reports.
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


#: What a rule returns: its value's problems; the shared empty `_OK` when there are none.
Problems = Sequence[Problem]
Rule = Callable[[object], Problems]
_OK: Final[Problems] = ()

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

# custom_password_hash (SCHEMA-PAGE). Tuples keep the documented order for messages.
ALGORITHMS: Final = (
    "argon2",
    "bcrypt",
    "hmac",
    "ldap",
    "md4",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "pbkdf2",
    "scrypt",
)
#: Algorithms whose hash.value is a string in the algorithm's own format (hash.encoding utf8).
UTF8_ALGORITHMS: Final = frozenset({"argon2", "bcrypt", "ldap", "pbkdf2"})
DIGEST_ALGORITHMS: Final = frozenset({"md4", "md5", "sha1", "sha256", "sha512"})
#: Algorithms whose salt is inside hash.value: a salt object is refused.
NO_SALT_ALGORITHMS: Final = frozenset({"argon2", "ldap", "pbkdf2"})
ENCODINGS: Final = ("base64", "hex", "utf8")
HMAC_DIGESTS: Final = (
    "md4",
    "md5",
    "ripemd160",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "whirlpool",
)
#: The digests Node's crypto knows by these names (what Auth0 runs pbkdf2 with).
PBKDF2_DIGESTS: Final = frozenset(
    [
        "RSA-MD4",
        "RSA-MD5",
        "RSA-MDC2",
        "RSA-RIPEMD160",
        "RSA-SHA1",
        "RSA-SHA1-2",
        "RSA-SHA224",
        "RSA-SHA256",
        "RSA-SHA384",
        "RSA-SHA512",
        "md4",
        "md4WithRSAEncryption",
        "md5",
        "md5WithRSAEncryption",
        "mdc2",
        "mdc2WithRSA",
        "ripemd",
        "ripemd160",
        "ripemd160WithRSA",
        "rmd160",
        "sha1",
        "sha1WithRSAEncryption",
        "sha224",
        "sha224WithRSAEncryption",
        "sha256",
        "sha256WithRSAEncryption",
        "sha384",
        "sha384WithRSAEncryption",
        "sha512",
        "sha512WithRSAEncryption",
        "ssl3-md5",
        "ssl3-sha1",
        "whirlpool",
    ]
)
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
_VISIBLE_RUN: Final = f"[!-~]*+[^{SPACE_OR_CONTROL}]*+"
# A domain label: 1-63 letters/digits of any script and inner hyphens. The ASCII form is tried
# first only because it is cheaper; it matches a subset of what the general form matches.
_LABEL: Final = (
    f"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,{MAX_DOMAIN_LABEL - 2}}}[A-Za-z0-9])?"
    f"|[^\\W_](?:[^\\W_]|-){{0,{MAX_DOMAIN_LABEL - 1}}}(?<!-))"
)
_EMAIL: Final = re.compile(
    f"(?=(?s:.){{1,{MAX_EMAIL}}}\\Z)"  # the whole address: at most 254 characters
    f"(?=[^@]{{1,{MAX_EMAIL_LOCAL_PART}}}@)[!-?A-~]*+[^@{SPACE_OR_CONTROL}]*+"  # local part
    f"@{_LABEL}(?:\\.{_LABEL})+"
)
_PHONE: Final = re.compile(r"\+[0-9]{1,15}")
_USER_ID: Final = re.compile(_VISIBLE_RUN)  # non-empty: the rule checks the length first
_USERNAME: Final = re.compile(f"[A-Za-z0-9@^$!#.+'~_`-]{{1,{MAX_USERNAME}}}")
_URL: Final = re.compile(f"(?i:https?)://[^/?#{SPACE_OR_CONTROL}]{_VISIBLE_RUN}")
# bcrypt: $2a$/$2b$/$2y$, a two-digit cost 04-31, then 22 salt + 31 hash characters.
_BCRYPT: Final = re.compile(r"\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_B64: Final = r"[A-Za-z0-9+/]+"
_ARGON2: Final = re.compile(
    rf"\$argon2(?:id|i|d)(?:\$v=[0-9]+)?\$m=[0-9]+,t=[0-9]+,p=[0-9]+"
    rf"(?:,[a-z0-9-]+=[^$,]+)*\${_B64}\${_B64}"
)
_PBKDF2: Final = re.compile(
    rf"\$pbkdf2-([A-Za-z0-9-]+)(?:\$[il]=[0-9]+(?:,[il]=[0-9]+)?)?\${_B64}\${_B64}"
)
_LDAP: Final = re.compile(r"\{([A-Za-z0-9-]+)\}([A-Za-z0-9+/]+={0,2})")
_LDAP_SCHEME: Final = re.compile(r"(?i:S?MD5|S?SHA[0-9]*)")
# Hex: whole bytes, so an even number of these (checked apart: `(?:..)+` is ~4x slower).
_HEX_DIGITS: Final = re.compile(r"[0-9A-Fa-f]+")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_TOTP_SECRET: Final = re.compile(r"[A-Z2-7]+")
# Explanations only (run after a rule refused a value, to say which part is wrong).
_EMAIL_LOCAL: Final = re.compile(f"[^@{SPACE_OR_CONTROL}]+")
_DOMAIN_LABEL: Final = re.compile(_LABEL)


# ==================================================================================================
# The user: unknown fields, the required email, each property's rule, the exclusive pair
# ==================================================================================================


def check_user(user: object) -> list[Problem]:
    """Every problem of one normalised, decoded user; [] if it can be imported.

    Args:
        user: one decoded entry of the export (anything: a non-object gets `not_an_object`).

    Returns:
        The problems in a stable order: unknown fields, missing email, then each field's in the
        user's key order, then exclusive password fields. Never raises.
    """
    if type(user) is not dict:
        if not isinstance(user, dict):
            return [_not_an_object(user)]
        user = dict(user)  # a dict subclass from a library caller: checked as the plain object
    keys = tuple(user)
    return (_LAYOUTS.get(keys) or _layout(keys))(user)


#: The check of the users of one key layout: the problems the keys alone give (unknown fields,
#: missing email; exclusive password fields) around those of each value's rule, in key order.
_Check = Callable[[dict[object, object]], list[Problem]]
#: Key layouts seen so far: an export has tens to hundreds. Bounded in number and in size, against
#: hostile inputs; a layout of an export with many extra fields (each named in a message worked
#: out with difflib) is still remembered.
_LAYOUTS: Final[dict[tuple[object, ...], _Check]] = {}
_MAX_LAYOUTS: Final = 2048
_MAX_LAYOUT_KEYS: Final = 256
#: Users of a layout checked before its check is compiled: rare layouts are not worth ~0.1 ms.
_COMPILE_AFTER: Final = 8


def _layout(keys: tuple[object, ...]) -> _Check:
    """The check of the layout `keys`, remembered (plain string keys only: else 1 == 1.0 == True
    would share one layout's messages)."""
    rules = tuple(RULES.get(key, _no_rule) if isinstance(key, str) else _no_rule for key in keys)
    head = [_unknown_field(key) for key in keys if key not in ALLOWED_FIELDS]
    if "email" not in keys:
        head.append(_MISSING_EMAIL)
    tail = (_EXCLUSIVE,) if "password_hash" in keys and "custom_password_hash" in keys else ()
    check = _interpreted(keys, rules, tuple(head), tail)
    if len(keys) <= _MAX_LAYOUT_KEYS and all(type(key) is str for key in keys):
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        _LAYOUTS[keys] = check
    return check


def _interpreted(
    keys: tuple[object, ...],
    rules: tuple[Rule, ...],
    head: tuple[Problem, ...],
    tail: tuple[Problem, ...],
) -> _Check:
    """A layout's first check, a loop; once used often, it puts the compiled one in its place."""
    uses = 0

    def check(user: dict[object, object]) -> list[Problem]:
        nonlocal uses
        uses += 1
        if uses == _COMPILE_AFTER and keys in _LAYOUTS:
            _LAYOUTS[keys] = _compiled(rules, head, tail)
        found = [*head]
        for rule, value in zip(rules, user.values(), strict=True):
            problems = rule(value)
            if problems:
                found += problems
        found += tail
        return found

    return check


def _compiled(
    rules: tuple[Rule, ...], head: tuple[Problem, ...], tail: tuple[Problem, ...]
) -> _Check:
    """A layout's check as straight-line code: `[*head, *r0(v0), *r1(v1), ..., *tail]`.

    In a loop one call site calls a different rule each time round, which defeats the
    interpreter's call caches; here each call site always calls the same rule (~15% of the time
    of a typical user). The source holds generated names only, never a key or a value.
    """
    parts = [f"*r{index}(v{index})" for index in range(len(rules))]
    lines = ["def check(user):"]
    if rules:
        lines.append(
            "    " + "".join(f"v{index}, " for index in range(len(rules))) + "= user.values()"
        )
    items = [*(["*head"] if head else []), *parts, *(["*tail"] if tail else [])]
    lines.append(f"    return [{', '.join(items)}]")
    namespace: dict[str, object] = {f"r{index}": rule for index, rule in enumerate(rules)}
    namespace.update(head=head, tail=tail)
    exec("\n".join(lines), namespace)  # noqa: S102 (generated names only, see above)
    # Taken out of its own globals: no reference cycle (planning runs with the collector off).
    check: _Check = namespace.pop("check")  # type: ignore[assignment]
    return check


def _no_rule(value: object) -> Problems:
    """The rule of a key outside the schema: its value is not looked at (`unknown_field` says it)."""
    return _OK


def _not_an_object(value: object) -> Problem:
    return Problem(
        "not_an_object",
        "",
        f"this entry is {_json_type(value)}, not a user object; "
        "each entry of the export must be a JSON object",
    )


def _unknown_field(key: object) -> Problem:
    if key in AUTH0_EXPORT_FIELDS:
        hint = (
            "it comes from an Auth0 export; re-run with --drop-unknown-fields to drop such fields"
        )
    elif key == "password":
        hint = "plain-text passwords cannot be imported; give password_hash or custom_password_hash"
    else:
        close = difflib.get_close_matches(_text(key), sorted(ALLOWED_FIELDS), n=1, cutoff=0.75)
        hint = (
            f"did you mean {close[0]!r}? (names are case-sensitive)"
            if close
            else "remove it or move it into user_metadata (or use --drop-unknown-fields)"
        )
    return Problem(
        "unknown_field",
        _pointer(key),
        f"field {_show_key(key)} is not accepted by the import schema; {hint}",
    )


_MISSING_EMAIL: Final = Problem(
    "missing_email",
    "/email",
    "email is missing; the import schema requires an email for every user",
)
_EXCLUSIVE: Final = Problem(
    "exclusive_password_fields",
    "/custom_password_hash",
    "password_hash and custom_password_hash are mutually exclusive; keep only one",
)


# ==================================================================================================
# Kinds of rule used by several properties
# ==================================================================================================


def _boolean(name: str) -> Rule:
    """The rule of a boolean property."""
    path = "/" + name

    def rule(value: object) -> Problems:
        if value is True or value is False:
            return _OK
        return (
            Problem(
                "invalid_type",
                path,
                f"{name} is {_json_type(value)}; it must be the JSON boolean true or false",
            ),
        )

    return rule


def _bounded_string(name: str, limit: int) -> Rule:
    """The rule of a string of 1..limit characters, counted in UTF-16 units as Auth0's
    JavaScript validator counts them."""
    path = "/" + name

    def rule(value: object) -> Problems:
        if type(value) is not str:
            return _not_plain_str(rule, name, value)
        n = len(value)
        # A character is 1 or 2 UTF-16 units: only a long non-ASCII string needs encoding.
        if n > 0 and (
            n * 2 <= limit or (n <= limit and (value.isascii() or _utf16_len(value) <= limit))
        ):
            return _OK
        if not value:
            return (Problem("invalid_length", path, f"{name} is empty; remove it or give a value"),)
        return (
            Problem(
                "invalid_length",
                path,
                f"{name} is {_utf16_len(value)} characters long; Auth0 allows at most {limit}",
            ),
        )

    return rule


#: Types with nothing inside to walk (bool listed too: `type()` does not see it as an int).
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
#: What the walk descends into (a tuple: `dict | list` would be built anew at each use).
_CONTAINERS: Final = (dict, list)
# Metadata key names repeat from user to user ("theme", "roles", ...): a name the walk found clean
# is remembered, so the usual small object of known names needs no walk. Bounded; the answer
# depends only on the string.
_CLEAN_KEYS: Final[set[str]] = set()
#: Those of them app_metadata may hold at its top (not reserved).
_CLEAN_APP_KEYS: Final[set[str]] = set()
_MAX_CLEAN_KEYS: Final = 16_384


def _metadata_rule(name: str, forbidden: frozenset[str]) -> Rule:
    """The rule of a metadata object: none of the `forbidden` keys, no bad key at any depth."""
    # The keys the walk found clean before that this object may hold at its top.
    known = _CLEAN_APP_KEYS if forbidden else _CLEAN_KEYS

    def rule(value: object) -> Problems:
        if type(value) is not dict:
            return _metadata(name, forbidden, value)
        # The usual small metadata needs no walk: known keys, and nothing below them but
        # scalars, arrays of scalars and objects of known keys and scalars.
        for key, item in value.items():
            if key not in known:
                return _metadata(name, forbidden, value)
            if type(item) in _SCALARS:
                continue
            if type(item) is list:
                for element in item:
                    if type(element) not in _SCALARS:
                        return _metadata(name, forbidden, value)
            elif not _flat_object(item):
                return _metadata(name, forbidden, value)
        return _OK

    return rule


def _not_plain_str(rule: Rule, name: str, value: object) -> Problems:
    """A string rule's answer for a value that is not a plain str: a str subclass (a library
    caller's) is checked as the string it holds; anything else has the wrong type."""
    if isinstance(value, str):
        return rule(str.__str__(value))
    return (_wrong_type("/" + name, name, value, "a string"),)


# ==================================================================================================
# The rules, one per property, in the order of the reference's table (§7). Each decides whether
# its value is valid and, only when it is not, works out why; `_OK` answers a valid value.
# ==================================================================================================


# email: string, `format: email`, required [C] SCHEMA-PAGE; <= 254, local <= 64 [C] profile page.
def _email(value: object) -> Problems:
    if type(value) is not str:
        return _not_plain_str(_email, "email", value)
    if _EMAIL.fullmatch(value) is not None:
        return _OK
    faults = "; ".join(_email_faults(value))
    return (Problem("invalid_email", "/email", f"email is not valid: {faults}; fix it"),)


# email_verified: boolean [C] SCHEMA-PAGE.
_email_verified: Final = _boolean("email_verified")


# phone_number: E.164 `^\+[0-9]{1,15}$` [C] profile page, OAS POST /users (not in the schema).
def _phone_number(value: object) -> Problems:
    if type(value) is not str:
        return _not_plain_str(_phone_number, "phone_number", value)
    if _PHONE.fullmatch(value) is not None:
        return _OK
    return (
        Problem(
            "invalid_phone_number",
            "/phone_number",
            "phone_number must be E.164: '+' then 1-15 digits, no spaces (like +12125550001)",
        ),
    )


# phone_verified: boolean [C] SCHEMA-PAGE.
_phone_verified: Final = _boolean("phone_verified")


# user_id: 1-255, `^\S*$` [C] OAS POST /users (the import schema has none; enforced here [I]).
_user_id_length: Final = _bounded_string("user_id", MAX_USER_ID)


def _user_id(value: object) -> Problems:
    if type(value) is not str:
        return _not_plain_str(_user_id, "user_id", value)
    length = _user_id_length(value)
    if not length and _USER_ID.fullmatch(value) is not None:
        return _OK
    if not value:
        message = "user_id is empty; remove the field to let Auth0 generate one"
    elif length:
        return length
    else:
        message = "user_id contains whitespace or a control character; remove them"
    return (Problem("invalid_user_id", "/user_id", message),)


# username: 1-128 letters, digits and @^$!#.+'~_`-, not an email address [C] profile page.
_username_length: Final = _bounded_string("username", MAX_USERNAME)


def _username(value: object) -> Problems:
    if type(value) is not str:
        return _not_plain_str(_username, "username", value)
    charset = _USERNAME.fullmatch(value) is not None
    if charset and ("@" not in value or _EMAIL.fullmatch(value) is None):
        return _OK
    length = _username_length(value)
    if length:
        return length
    if not charset:
        message = "username may only contain letters, digits and @ ^ $ ! # . + ' ~ _ ` -"
    else:
        message = "username must not be an email address; put the address in email instead"
    return (Problem("invalid_username", "/username", message),)


# given_name, family_name: 1-150 [C] profile page, OAS POST /users.
_given_name: Final = _bounded_string("given_name", STRING_LIMITS["given_name"])
_family_name: Final = _bounded_string("family_name", STRING_LIMITS["family_name"])
# name, nickname: 1-300 [C] OAS POST /users (the profile page says 150 and 350).
_name: Final = _bounded_string("name", STRING_LIMITS["name"])
_nickname: Final = _bounded_string("nickname", STRING_LIMITS["nickname"])


# picture: OAS POST /users `format: strict-uri` [C]; an absolute http(s) URL here [I].
def _picture(value: object) -> Problems:
    if type(value) is not str:
        return _not_plain_str(_picture, "picture", value)
    if _URL.fullmatch(value) is not None:
        return _OK
    return (
        Problem(
            "invalid_picture",
            "/picture",
            "picture must be an absolute http:// or https:// URL without spaces",
        ),
    )


# blocked: boolean [C] SCHEMA-PAGE.
_blocked: Final = _boolean("blocked")


# password_hash: bcrypt $2a$/$2b$ [C] SCHEMA-PAGE; $2y$ too, as custom bcrypt accepts [C].
def _password_hash(value: object) -> Problems:
    if type(value) is not str:
        return _not_plain_str(_password_hash, "password_hash", value)
    if _BCRYPT.fullmatch(value) is not None:
        return _OK
    return (Problem("invalid_password_hash", "/password_hash", _bcrypt_fault("password_hash")),)


# custom_password_hash: {algorithm, hash, ...}, per-algorithm rules [C] SCHEMA-PAGE (see below).
def _custom_password_hash(value: object) -> Problems:
    if not isinstance(value, dict):
        return (_wrong_type(_CPH, "custom_password_hash", value, "an object"),)
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
    return out


# app_metadata: no reserved key, no '.' or '$' in any key [C] SCHEMA-PAGE, metadata page.
_app_metadata: Final = _metadata_rule("app_metadata", FORBIDDEN_APP_METADATA_KEYS)
# user_metadata: no '.' or '$' in any key [C] metadata page.
_user_metadata: Final = _metadata_rule("user_metadata", frozenset())


# mfa_factors: 1-10 items, each exactly one of totp/phone/email [C] SCHEMA-PAGE.
def _mfa_factors(value: object) -> Problems:
    if not isinstance(value, list):
        return (_wrong_type(_MFA, "mfa_factors", value, "an array"),)
    out: list[Problem] = []
    if not 1 <= len(value) <= MFA_MAX:
        out.append(
            Problem(
                _MFA_REASON,
                _MFA,
                f"mfa_factors has {len(value)} items; give 1 to {MFA_MAX} (or remove the field)",
            )
        )
    for index, factor in enumerate(value):
        _factor(index, factor, out)
    return out


#: Property name -> its rule, in the table's order.
RULES: Final[dict[str, Rule]] = {
    "email": _email,
    "email_verified": _email_verified,
    "phone_number": _phone_number,
    "phone_verified": _phone_verified,
    "user_id": _user_id,
    "username": _username,
    "given_name": _given_name,
    "family_name": _family_name,
    "name": _name,
    "nickname": _nickname,
    "picture": _picture,
    "blocked": _blocked,
    "password_hash": _password_hash,
    "custom_password_hash": _custom_password_hash,
    "app_metadata": _app_metadata,
    "user_metadata": _user_metadata,
    "mfa_factors": _mfa_factors,
}
assert RULES.keys() == ALLOWED_FIELDS


# ==================================================================================================
# Messages and lengths
# ==================================================================================================


def _json_type(value: object) -> str:
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


def _text(key: object) -> str:
    """`str(key)` for a path; never fails (an int over 4300 digits or an odd object would)."""
    if isinstance(key, str):
        return str.__str__(key)
    try:
        return str(key)
    except Exception:  # noqa: BLE001 (a library caller's key: the path still names its type)
        return f"<{type(key).__name__}>"


def _show_key(key: object) -> str:
    """A key as quoted in a message: its repr, cut to 60 characters; never fails."""
    try:
        text = repr(key)
    except Exception:  # noqa: BLE001 (as in _text)
        text = f"<{type(key).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _pointer(*parts: object) -> str:
    """JSON pointer from unescaped parts (RFC 6901: '~' -> '~0', '/' -> '~1')."""
    return "".join("/" + _text(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _wrong_type(path: str, name: str, value: object, expected: str) -> Problem:
    return Problem("invalid_type", path, f"{name} is {_json_type(value)}; it must be {expected}")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _email_faults(text: str) -> list[str]:
    """Which parts of an address `_EMAIL` refused are wrong (it alone decides)."""
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


def _bcrypt_fault(name: str) -> str:
    return (
        f"the {name} value is not a bcrypt hash: it must be $2a$, $2b$ or $2y$, a two-digit cost "
        "04-31, '$' and 53 characters of [./A-Za-z0-9]; for other algorithms use "
        "custom_password_hash"
    )


# ==================================================================================================
# custom_password_hash, in parts (SCHEMA-PAGE, "custom_password_hash" and per-algorithm notes)
# ==================================================================================================
_CPH: Final = "/custom_password_hash"
_CPH_REASON: Final = "invalid_custom_password_hash"
_ALGORITHMS: Final = frozenset(ALGORITHMS)
_ENCODINGS: Final = frozenset(ENCODINGS)
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
            where + _pointer(key),
            f"{_show_key(key)} is not a property of {what}; allowed: {', '.join(sorted(allowed))}",
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
        message = f"custom_password_hash.{key} is {_json_type(value)}; it must be an object"
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
        out.append(_cph(place, f"{_dotted(place)} is {_json_type(value)}; it must be a string"))
    else:
        out.append(_cph(place, f"{_dotted(place)} is empty; give {what}"))
    return None


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and _HEX_DIGITS.fullmatch(text) is not None


def _is_base64(text: str) -> bool:
    return _BASE64.fullmatch(text) is not None


#: How a value in each encoding that can be checked must look.
_ENCODED: Final[dict[str, Callable[[str], bool]]] = {"hex": _is_hex, "base64": _is_base64}


def _encoded(value: str, encoding: object, where: str, what: str, out: list[Problem]) -> None:
    """A value declared hex/base64 must look like it (the value itself is never shown)."""
    looks_right = _ENCODED.get(encoding) if isinstance(encoding, str) else None
    if looks_right is None or looks_right(value):
        return
    if encoding == "hex":
        message = f"the {what} is declared hex but is not an even number of hex digits"
    else:
        message = f"the {what} is declared base64 but has characters outside base64"
    out.append(_cph(where, message))


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
    value = (
        given
        if type(given) is str and given
        else _required_string(hash_, "/hash", "the password hash", out)
    )
    encoding = hash_.get("encoding")
    encoding_ok = (type(encoding) is str and encoding in _ENCODINGS) or _enum(
        hash_, "encoding", ENCODINGS, "/hash", out
    )
    if "digest" in hash_:
        _enum(hash_, "digest", HMAC_DIGESTS, "/hash", out)
    if "key" in hash_:
        _hmac_key(hash_["key"], out)
    if algorithm is None or not encoding_ok:
        return
    if algorithm in UTF8_ALGORITHMS:
        if encoding is not None and encoding != "utf8":
            out.append(_cph("/hash/encoding", f"{algorithm} hashes must use hash.encoding utf8"))
        fault = "" if value is None else _hash_format_fault(algorithm, value)
        if fault:
            out.append(_cph("/hash/value", fault))
        return
    if encoding != "hex" and encoding != "base64":
        out.append(_cph("/hash/encoding", f"{algorithm} hashes need hash.encoding hex or base64"))
    elif value is not None:
        _encoded(value, encoding, "/hash/value", "hash value", out)
    if algorithm == "hmac":
        if "digest" not in hash_:
            out.append(
                _cph("/hash/digest", f"hmac needs hash.digest: one of {', '.join(HMAC_DIGESTS)}")
            )
        if "key" not in hash_:
            out.append(_cph("/hash/key", "hmac needs hash.key with the key's value"))


def _hmac_key(key: object, out: list[Problem]) -> None:
    if not isinstance(key, dict):
        message = f"custom_password_hash.hash.key is {_json_type(key)}; it must be an object"
        out.append(_cph("/hash/key", message))
        return
    if not KEY_KEYS.issuperset(key):
        _unknown_keys(key, KEY_KEYS, _CPH + "/hash/key", out)
    value = _required_string(key, "/hash/key", "the HMAC key", out)
    if _enum(key, "encoding", ENCODINGS, "/hash/key", out) and value is not None:
        _encoded(value, key.get("encoding"), "/hash/key/value", "key value", out)


def _hash_format_fault(algorithm: str, value: str) -> str:
    """Why a utf8 hash value has the wrong shape for `algorithm` ("" if fine); never quotes it."""
    if algorithm == "bcrypt":
        return "" if _BCRYPT.fullmatch(value) else _bcrypt_fault("hash")
    if algorithm == "argon2":
        if _ARGON2.fullmatch(value):
            return ""
        return (
            "the hash value is not an argon2 PHC string: "
            "$argon2id|argon2i|argon2d[$v=N]$m=N,t=N,p=N$<base64 salt>$<base64 hash>"
        )
    if algorithm == "pbkdf2":
        match = _PBKDF2.fullmatch(value)
        if match is None:
            return (
                "the hash value is not a pbkdf2 PHC string: "
                "$pbkdf2-<digest>[$i=N,l=N]$<base64 salt>$<base64 hash> (no '=' padding)"
            )
        if match.group(1) not in PBKDF2_DIGESTS:
            return (
                f"the pbkdf2 digest {match.group(1)!r} is not supported (e.g. use sha512, sha256)"
            )
        return ""
    # ldap: RFC 2307 {SCHEME}<base64>, schemes MD5, SMD5, SHA*, SSHA* (not CRYPT)
    match = _LDAP.fullmatch(value)
    if match is None:
        return "the hash value is not an RFC 2307 LDAP hash: {SCHEME}<base64>"
    if _LDAP_SCHEME.fullmatch(match.group(1)) is None:
        return (
            f"the LDAP scheme {{{match.group(1)}}} is not supported: "
            "use MD5, SMD5, SHA* or SSHA* (CRYPT is not supported)"
        )
    return ""


# ==================================================================================================
# app_metadata and user_metadata: the key walk
# ==================================================================================================
#: Where a node sits: None for the root, else (its key or index, its parent's trail).
_Trail = tuple[object, "_Trail"] | None


def _flat_object(item: object) -> bool:
    """Whether `item` is an object of keys the walk found clean before, with scalar values."""
    if type(item) is not dict:
        return False
    for key, element in item.items():
        if key not in _CLEAN_KEYS or type(element) not in _SCALARS:
            return False
    return True


def _metadata(name: str, forbidden: frozenset[str], value: object) -> Problems:
    """Every problem of a metadata object: reserved keys first, then bad keys in walk order."""
    path = "/" + name
    if not isinstance(value, dict):
        return (_wrong_type(path, name, value, "an object"),)
    out = [
        Problem(
            "forbidden_app_metadata_key",
            _pointer(name, key),
            f"app_metadata must not contain {_show_key(key)} (Auth0 reserves it); "
            "rename or remove it",
        )
        for key in value
        if key in forbidden
    ]
    bad = _walk_keys(name, value, out)
    if bad > MAX_KEY_PROBLEMS:
        out.append(
            Problem(
                "invalid_metadata_key",
                path,
                f"{name} has {bad - MAX_KEY_PROBLEMS} more keys with '.' or '$' (not listed)",
            )
        )
    return out


def _walk_keys(name: str, root: dict[object, object], out: list[Problem]) -> int:
    """Report keys (at any depth) that are not strings or contain '.' or '$'; return how many.

    Iterative, so no nesting is too deep; depth-first, each object's own keys before its children.
    """
    bad = 0
    stack: list[tuple[object, _Trail]] = [(root, None)]
    while stack:
        node, trail = stack.pop()
        children: Iterable[tuple[object, object]]
        if isinstance(node, dict):
            if not _CLEAN_KEYS.issuperset(node):
                bad = _check_keys(name, node, trail, bad, out)
            if _SCALARS.issuperset(map(type, node.values())):
                continue
            children = node.items()
        elif isinstance(node, list):
            if _SCALARS.issuperset(map(type, node)):
                continue
            children = enumerate(node)
        else:
            continue
        below = [(child, (key, trail)) for key, child in children if isinstance(child, _CONTAINERS)]
        below.reverse()
        stack += below
    return bad


def _check_keys(
    name: str, node: dict[object, object], trail: _Trail, bad: int, out: list[Problem]
) -> int:
    """Report the bad keys of one object (up to the cap) and remember its clean ones."""
    clean: list[str] = []
    for key in node:
        if isinstance(key, str) and "." not in key and "$" not in key:
            if type(key) is str:
                clean.append(key)
            continue
        bad += 1
        if bad <= MAX_KEY_PROBLEMS:
            out.append(_bad_key(name, (key, trail)))
    if len(_CLEAN_KEYS) < _MAX_CLEAN_KEYS:
        _CLEAN_KEYS.update(clean)
        # Never, not even for a moment, a reserved key in the set app_metadata is checked against.
        _CLEAN_APP_KEYS.update(set(clean).difference(FORBIDDEN_APP_METADATA_KEYS))
    return bad


def _bad_key(name: str, trail: _Trail) -> Problem:
    parts: list[object] = []
    while trail is not None:
        parts.append(trail[0])
        trail = trail[1]
    return Problem(
        "invalid_metadata_key",
        _pointer(name, *reversed(parts)),
        f"metadata key {_show_key(parts[0])} must be a string without '.' or '$'; rename it",
    )


# ==================================================================================================
# mfa_factors, in parts (SCHEMA-PAGE, "mfa_factors")
# ==================================================================================================
_MFA: Final = "/mfa_factors"
_MFA_REASON: Final = "invalid_mfa_factors"


def _factor(index: int, factor: object, out: list[Problem]) -> None:
    if not isinstance(factor, dict):
        out.append(
            Problem(
                _MFA_REASON,
                f"{_MFA}/{index}",
                f"MFA factor {index} is {_json_type(factor)}; it must be an object",
            )
        )
        return
    if len(factor) != 1:
        out.append(
            Problem(
                _MFA_REASON,
                f"{_MFA}/{index}",
                f"MFA factor {index} must have exactly one of totp, phone, email "
                f"(it has {len(factor)} properties)",
            )
        )
    for kind, inner in factor.items():
        field = MFA_KINDS.get(kind) if isinstance(kind, str) else None
        if field is None:
            out.append(
                Problem(
                    _MFA_REASON,
                    _pointer("mfa_factors", index, kind),
                    f"{_show_key(kind)} is not an MFA factor type; use totp, phone or email",
                )
            )
        else:
            name = str.__str__(kind)
            _factor_body(f"{_MFA}/{index}/{name}", name, field, inner, out)


def _factor_body(path: str, kind: str, field: str, inner: object, out: list[Problem]) -> None:
    if not isinstance(inner, dict):
        message = f"the {kind} factor is {_json_type(inner)}; it must be an object with {field}"
        out.append(Problem(_MFA_REASON, path, message))
        return
    if len(inner) != 1 or field not in inner:
        out.extend(
            Problem(
                _MFA_REASON,
                path + _pointer(key),
                f"{_show_key(key)} is not allowed in a {kind} factor; only {field}",
            )
            for key in inner
            if key != field
        )
        if field not in inner:
            out.append(Problem(_MFA_REASON, f"{path}/{field}", f"the {kind} factor needs {field}"))
            return
    value = inner[field]
    if not isinstance(value, str):
        message = f"the {kind} {field} is {_json_type(value)}; it must be a string"
    elif kind == "totp":
        if _TOTP_SECRET.fullmatch(value) is not None:
            return
        message = "the TOTP secret must be unpadded base32 (A-Z and 2-7 only)"
    elif kind == "phone":
        if _PHONE.fullmatch(value) is not None:
            return
        message = "the MFA phone must be E.164: '+' then 1-15 digits"
    else:
        if _EMAIL.fullmatch(value) is not None:
            return
        message = f"the MFA email is not valid: {'; '.join(_email_faults(value))}"
    out.append(Problem(_MFA_REASON, f"{path}/{field}", message))
