"""Normalise and validate one user against the Auth0 bulk-import user schema.

Owns the schema rules (reference §7) and the reason codes of local rejects; it does not read input,
detect duplicates (`dedupe.py`) or measure sizes (the planner). Nearly every valid user is accepted
by a native check of the same rules: the C extension `_fastcheck.c` where it is built, else the
schema check of `json_schema.py`. The Python predicates below accept the valid users that check is
too strict for, and the detailed, message-producing diagnosis runs only for users that fail both.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Final

_fastcheck: ModuleType | None
try:  # the C version of the native check (built at install when a compiler is there)
    from orchestrator import _fastcheck
except ImportError:  # pragma: no cover - depends on the install
    _fastcheck = None

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


@dataclass(frozen=True, slots=True)
class NormaliseOptions:
    """Switches of the normalisation that runs before validation."""

    keep_user_id_prefix: bool = False
    drop_unknown_fields: bool = False


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

_USER_ID_PREFIX: Final = "auth0|"
_MAX_EMAIL: Final = 254
_MAX_LOCAL_PART: Final = 64
MAX_USER_ID: Final = 255
MAX_USERNAME: Final = 128
STRING_LIMITS: Final = {"given_name": 150, "family_name": 150, "name": 300, "nickname": 300}
BOOL_FIELDS: Final = frozenset({"email_verified", "phone_verified", "blocked"})
MFA_MAX: Final = 10
_MAX_DROPPED_SETS: Final = 4096
#: Metadata key problems listed per metadata object; a pathological user must not flood reports.
_MAX_KEY_PROBLEMS: Final = 10

# --- patterns -----------------------------------------------------------------------------------
# The ASCII pattern is exact for the common case and ~2x cheaper than the general one; an address it
# refuses (non-ASCII, or long enough that a domain label could exceed 63) gets the general check.
_EMAIL_ASCII: Final = re.compile(
    r"[!#-'*+\-./0-9=?A-Z^_`a-z{|}~]{1,64}@"
    r"[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*(?:\.[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*)+"
)
# Up to this length the domain (after at least "x@") is at most 63 characters, so no label can
# break the 63 limit the ASCII pattern does not check; longer addresses take the general check.
EMAIL_ASCII_MAX: Final = 2 + 63
_CONTROL: Final = "\x00-\x1f\x7f-\x9f"
_EMAIL_LOCAL: Final = re.compile(rf"[^@\s{_CONTROL}]+")
# A label: letters/digits (any script) and inner hyphens, 1-63 characters.
_DOMAIN_LABEL: Final = re.compile(r"[^\W_](?:[^\W_]|-){0,62}(?<!-)")
_PHONE: Final = re.compile(r"\+[0-9]{1,15}")
_NO_SPACE: Final = re.compile(rf"[^\s{_CONTROL}]+")
_USERNAME: Final = re.compile(r"[A-Za-z0-9@^$!#.+'~_`-]+")
_URL: Final = re.compile(rf"(?i:https?)://[^\s/?#{_CONTROL}]+(?:[/?#][^\s{_CONTROL}]*)?")
# bcrypt: $2a$/$2b$/$2y$, a two-digit cost 04-31, then 22 salt + 31 hash characters.
_BCRYPT: Final = re.compile(r"\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_BCRYPT_PREFIX: Final = re.compile(r"\$2[aby]\$")
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
_HEX: Final = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_TOTP_SECRET: Final = re.compile(r"[A-Z2-7]+")

# --- custom_password_hash vocabulary (SCHEMA-PAGE) -----------------------------------------------
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
_UTF8_ALGORITHMS: Final = frozenset({"argon2", "bcrypt", "ldap", "pbkdf2"})
DIGEST_ALGORITHMS: Final = frozenset({"md4", "md5", "sha1", "sha256", "sha512"})
_NO_SALT_ALGORITHMS: Final = frozenset({"argon2", "ldap", "pbkdf2"})
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
_PASSWORD_KEYS: Final = frozenset({"encoding"})
_MFA_KINDS: Final = {"totp": "secret", "phone": "value", "email": "value"}

_CPH: Final = "/custom_password_hash"
_CPH_REASON: Final = "invalid_custom_password_hash"
_MFA_REASON: Final = "invalid_mfa_factors"


# ==================================================================================================
# Predicates: the second tier, for users the native check refused (_fastcheck.c, json_schema.py).
# Each answers "is this value valid?" without building messages.
# Diagnosis below starts from the same predicate, so the two can never disagree on a valid value.
# ==================================================================================================


def _fits(text: str, limit: int) -> bool:
    """1..limit long, counted in UTF-16 units as Auth0's JavaScript validator counts."""
    n = len(text)
    if n == 0 or n > limit:
        return False
    # UTF-16 length is at most 2 code points' worth, so only long non-ASCII strings need encoding.
    return n * 2 <= limit or text.isascii() or _utf16_len(text) <= limit


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _is_email(value: object) -> bool:
    if type(value) is not str:
        return False
    if len(value) <= EMAIL_ASCII_MAX and _EMAIL_ASCII.fullmatch(value) is not None:
        return True
    return not _email_faults(value)


def _is_bool(value: object) -> bool:
    return value is True or value is False


def _is_phone(value: object) -> bool:
    return type(value) is str and _PHONE.fullmatch(value) is not None


def _is_user_id(value: object) -> bool:
    if type(value) is not str:
        return False
    if value.isascii():
        # Printable and no space: no whitespace and no control characters.
        return 0 < len(value) <= MAX_USER_ID and value.isprintable() and " " not in value
    return _fits(value, MAX_USER_ID) and _NO_SPACE.fullmatch(value) is not None


def _is_username(value: object) -> bool:
    return (
        type(value) is str
        and _fits(value, MAX_USERNAME)
        and _USERNAME.fullmatch(value) is not None
        and ("@" not in value or not _is_email(value))
    )


def _is_picture(value: object) -> bool:
    if type(value) is not str:
        return False
    # Shortcut equivalent to _URL for the usual lower-case-scheme ASCII URL.
    if value.startswith("https://"):
        host = 8
    elif value.startswith("http://"):
        host = 7
    else:
        return _URL.fullmatch(value) is not None
    if not value.isascii():
        return _URL.fullmatch(value) is not None
    return (
        len(value) > host and value[host] not in "/?#" and value.isprintable() and " " not in value
    )


def _is_password_hash(value: object) -> bool:
    return type(value) is str and _BCRYPT.fullmatch(value) is not None


_CONTAINERS: Final = frozenset({dict, list})
# Metadata key names repeat from user to user ("theme", "roles", ...): once a name is known to be
# clean, a whole dict of known names is cleared by one C-level subset test. Bounded, and shared by
# all validators (the answer depends only on the string).
_CLEAN_KEYS: Final[set[str]] = set()
_MAX_CLEAN_KEYS: Final = 16_384


def _keys_ok(obj: dict[str, object]) -> bool:
    """No key at any depth contains '.' or '$' (fast for the usual small, shallow metadata)."""
    if not _CLEAN_KEYS.issuperset(obj):
        for key in obj:
            if "." in key or "$" in key:  # a non-string key raises TypeError: check() diagnoses
                return False
        if len(_CLEAN_KEYS) < _MAX_CLEAN_KEYS:
            _CLEAN_KEYS.update(obj)
    values = obj.values()
    # Function calls are the dominant cost here, so scalars are never visited one by one.
    return _CONTAINERS.isdisjoint(map(type, values)) or _items_ok(values)


def _items_ok(items: Iterable[object]) -> bool:
    for item in items:
        if type(item) is list:
            if not (_CONTAINERS.isdisjoint(map(type, item)) or _items_ok(item)):
                return False
        elif type(item) is dict and not _keys_ok(item):
            return False
    return True


def _is_app_metadata(value: object) -> bool:
    return type(value) is dict and FORBIDDEN_APP_METADATA_KEYS.isdisjoint(value) and _keys_ok(value)


def _is_user_metadata(value: object) -> bool:
    return type(value) is dict and _keys_ok(value)


def _is_custom_password_hash(value: object) -> bool:
    """Fast accept of the usual `{algorithm, hash: {value[, encoding]}}`; else the full check."""
    if type(value) is dict and len(value) == 2:
        hash_ = value.get("hash")
        if type(hash_) is dict and (len(hash_) == 1 or (len(hash_) == 2 and "encoding" in hash_)):
            fast = _fast_hash_value(
                value.get("algorithm"), hash_.get("value"), hash_.get("encoding")
            )
            if fast is not None:
                return fast
    out: list[Problem] = []
    _diagnose_custom_password_hash(value, out)
    return not out


def _fast_hash_value(algorithm: object, value: object, encoding: object) -> bool | None:
    """Whether a plain hash value is valid for `algorithm`; None if the shape needs the full check."""
    if type(value) is not str or type(algorithm) is not str:
        return None
    if algorithm in DIGEST_ALGORITHMS:
        if encoding == "hex":
            return _HEX.fullmatch(value) is not None
        if encoding == "base64":
            return _BASE64.fullmatch(value) is not None
        return None
    if encoding is not None and encoding != "utf8":
        return None
    if algorithm == "bcrypt":
        return _BCRYPT.fullmatch(value) is not None
    if algorithm in ("argon2", "pbkdf2", "ldap"):
        return not _hash_format_fault(algorithm, value)
    return None


def _is_mfa_factors(value: object) -> bool:
    if type(value) is not list or not 0 < len(value) <= MFA_MAX:
        return False
    for factor in value:
        if type(factor) is not dict or len(factor) != 1:
            return False
        for kind, inner in factor.items():
            if type(inner) is not dict or len(inner) != 1:
                return False
            if kind == "totp":
                secret = inner.get("secret")
                if type(secret) is not str or _TOTP_SECRET.fullmatch(secret) is None:
                    return False
            elif kind == "phone":
                if not _is_phone(inner.get("value")):
                    return False
            elif kind != "email" or not _is_email(inner.get("value")):
                return False
    return True


def _bounded(limit: int) -> Callable[[object], bool]:
    half = limit // 2

    def check(value: object) -> bool:
        return (  # _fits(), with the limit's half computed once
            type(value) is str
            and 0 < len(value) <= limit
            and (len(value) <= half or value.isascii() or _utf16_len(value) <= limit)
        )

    return check


_FAST: Final[dict[str, Callable[[object], bool]]] = {
    "email": _is_email,
    "user_id": _is_user_id,
    "picture": _is_picture,
    "password_hash": _is_password_hash,
    "app_metadata": _is_app_metadata,
    "user_metadata": _is_user_metadata,
    "phone_number": _is_phone,
    "username": _is_username,
    "custom_password_hash": _is_custom_password_hash,
    "mfa_factors": _is_mfa_factors,
    **{name: _bounded(limit) for name, limit in STRING_LIMITS.items()},
    **dict.fromkeys(BOOL_FIELDS, _is_bool),
}
assert _FAST.keys() == ALLOWED_FIELDS


class UserValidator:
    """Normalises users in place and lists every schema problem of each.

    Normalisation mutates the dict it is given (it comes straight from the decoder and is owned by
    the pipeline): a leading `auth0|` is removed from `user_id` unless `keep_user_id_prefix`, and
    with `drop_unknown_fields` top-level keys outside the import schema are deleted and counted in
    `dropped_fields` (field name -> number of users it was dropped from).

    Three tiers, cheapest first: the native check (`_fastcheck`, or `json_schema` where the C
    extension is not built) accepts nearly every valid user; a one-pass Python check accepts the
    valid users it is too strict for (non-ASCII addresses, long names); only the users both refuse
    get the diagnosis, which lists the problems.
    """

    def __init__(self, options: NormaliseOptions) -> None:
        """Create a validator; one per run (it accumulates `dropped_fields`).

        Args:
            options: the normalisation switches.
        """
        self.options = options
        self._certainly_valid: Callable[[dict[str, object]], bool] = self._load_native_check
        self._uncertain: Callable[[list[object]], list[int]] = self._load_native_uncertain
        # Counted per set of dropped keys: one increment per user instead of one per field.
        self._dropped_sets: Counter[tuple[str, ...]] = Counter()
        self._dropped_folded: Counter[str] = Counter()
        self._strip_prefix = not options.keep_user_id_prefix
        self._drop_unknown = options.drop_unknown_fields

    def check(self, value: object) -> list[Problem]:
        """Normalise `value` in place (if a dict) and return its problems; [] means valid.

        Args:
            value: one decoded entry of the export.

        Returns:
            Every problem found, in field order after `unknown_field`/`missing_email`.
        """
        if type(value) is not dict:
            return _not_an_object(value)
        self._normalise([value])
        if self._certainly_valid(value):
            return []
        return self._check_normalised(value)

    def problems(self, values: list[object]) -> dict[int, list[Problem]]:
        """`check` of a batch: normalise every value in place; the problems of the invalid ones.

        Args:
            values: decoded entries of the export, in order.

        Returns:
            index in `values` -> its problems, for the invalid entries only (usually none).
        """
        self._normalise(values)
        found: dict[int, list[Problem]] = {}
        for index in self._uncertain(values):  # one native call; usually none
            value = values[index]
            if type(value) is not dict:
                found[index] = _not_an_object(value)
            else:
                problems = self._check_normalised(value)
                if problems:
                    found[index] = problems
        return found

    def _normalise(self, values: list[object]) -> None:
        """Strip the `auth0|` prefix and drop unknown fields (as configured) of each object."""
        strip, drop = self._strip_prefix, self._drop_unknown
        if strip and _fastcheck is not None:
            _fastcheck.strip_user_id_prefix(values)
            strip = False
        if not (strip or drop):
            return
        for user in values:  # once per user: the steps are written out, no calls
            if type(user) is not dict:
                continue
            if strip:
                user_id = user.get("user_id")
                if type(user_id) is str and user_id.startswith(_USER_ID_PREFIX):
                    user["user_id"] = user_id[len(_USER_ID_PREFIX) :]
            if drop and not ALLOWED_FIELDS.issuperset(user):
                self._drop(user, [key for key in user if key not in ALLOWED_FIELDS])

    def _check_normalised(self, user: dict[str, object]) -> list[Problem]:
        """The problems of a user the native check did not accept ([] if valid after all)."""
        try:
            if _python_valid(user):
                return []
        except (TypeError, RecursionError):
            pass  # odd input (non-string keys, absurd nesting): the diagnosis handles it
        return self._diagnose(user)

    def _load_native_check(self, user: dict[str, object]) -> bool:
        """The first call of `_certainly_valid`: load the native check, then use it."""
        self._load_native()
        return self._certainly_valid(user)

    def _load_native_uncertain(self, users: list[object]) -> list[int]:
        """The first call of `_uncertain`: as `_load_native_check`."""
        self._load_native()
        return self._uncertain(users)

    def _load_native(self) -> None:
        """Load the native check on first use, not at construction: a planner whose users are all
        validated by worker processes never pays for it. The C extension when it is built, else
        the schema check (~11 MB; json_schema imports this module).
        """
        if _fastcheck is not None:
            self._certainly_valid = _fastcheck.certain
            self._uncertain = _fastcheck.uncertain
        else:
            from orchestrator import json_schema

            self._certainly_valid = json_schema.certainly_valid
            self._uncertain = json_schema.uncertain

    @property
    def dropped_fields(self) -> Counter[str]:
        """Field name -> number of users it was dropped from (a new Counter each time)."""
        total = Counter(self._dropped_folded)
        for keys, users in self._dropped_sets.items():
            for key in keys:
                total[key] += users
        return total

    def _drop(self, user: dict[str, object], keys: Sequence[str]) -> None:
        for key in keys:
            del user[key]
        self._dropped_sets[tuple(keys)] += 1
        if len(self._dropped_sets) > _MAX_DROPPED_SETS:  # exports with user-specific keys
            self._dropped_folded = self.dropped_fields
            self._dropped_sets.clear()

    def _diagnose(self, user: dict[str, object]) -> list[Problem]:
        """The slow, complete pass over a normalised user: every problem with path and message."""
        out = [_unknown_field(key) for key in user if key not in ALLOWED_FIELDS]
        if "email" not in user:
            out.append(
                Problem(
                    "missing_email",
                    "/email",
                    "email is missing; the import schema requires an email for every user",
                )
            )
        for key, value in user.items():
            diagnose = _DIAGNOSE.get(key)
            if diagnose is not None:
                diagnose(value, out)
        if "password_hash" in user and "custom_password_hash" in user:
            out.append(
                Problem(
                    "exclusive_password_fields",
                    "/custom_password_hash",
                    "password_hash and custom_password_hash are mutually exclusive; keep only one",
                )
            )
        return out


def _not_an_object(value: object) -> list[Problem]:
    return [
        Problem(
            "not_an_object",
            "",
            f"this entry is {_json_type(value)}, not a user object; "
            "each entry of the export must be a JSON object",
        )
    ]


def _python_valid(user: dict[str, object]) -> bool:
    """True when the normalised `user` is certainly valid (False: run the diagnosis)."""
    fast = _FAST
    for key, value in user.items():
        check = fast.get(key)
        if check is None or not check(value):
            return False
    return "email" in user and not ("custom_password_hash" in user and "password_hash" in user)


# ==================================================================================================
# Diagnosis: runs only for users the fast path refused. Each function appends its field's problems.
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


def _pointer(*parts: str | int) -> str:
    """JSON pointer from unescaped parts (RFC 6901: '~' -> '~0', '/' -> '~1')."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _show_key(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong_type(path: str, name: str, value: object, expected: str) -> Problem:
    return Problem("invalid_type", path, f"{name} is {_json_type(value)}; it must be {expected}")


def _unknown_field(key: object) -> Problem:
    shown = _show_key(key)
    if key in AUTH0_EXPORT_FIELDS:
        hint = (
            "it comes from an Auth0 export; re-run with --drop-unknown-fields to drop such fields"
        )
    elif key == "password":
        hint = "plain-text passwords cannot be imported; give password_hash or custom_password_hash"
    else:
        close = difflib.get_close_matches(str(key), sorted(ALLOWED_FIELDS), n=1, cutoff=0.75)
        hint = (
            f"did you mean {close[0]!r}? (names are case-sensitive)"
            if close
            else "remove it or move it into user_metadata (or use --drop-unknown-fields)"
        )
    return Problem(
        "unknown_field",
        _pointer(str(key)),
        f"field {shown} is not accepted by the import schema; {hint}",
    )


def _email_faults(value: str) -> list[str]:
    """What is wrong with an address (empty = plausible); shared by email and MFA email."""
    faults: list[str] = []
    if len(value) > _MAX_EMAIL:
        faults.append(f"it is {len(value)} characters long, more than {_MAX_EMAIL}")
    if value.count("@") != 1:
        faults.append("it must contain exactly one '@'")
        return faults
    local, _, domain = value.partition("@")
    if not local:
        faults.append("the part before '@' is empty")
    elif len(local) > _MAX_LOCAL_PART:
        faults.append(f"the part before '@' is longer than {_MAX_LOCAL_PART} characters")
    elif _EMAIL_LOCAL.fullmatch(local) is None:
        faults.append("it contains a space or a control character")
    labels = domain.split(".")
    if len(labels) < 2:
        faults.append("the domain needs a dot (like example.com)")
    elif not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        faults.append(
            "the domain has an invalid label (letters, digits and inner hyphens, 1-63 each)"
        )
    return faults


def _diagnose_email(value: object, out: list[Problem]) -> None:
    if _is_email(value):
        return
    if not isinstance(value, str):
        out.append(_wrong_type("/email", "email", value, "a string"))
        return
    faults = _email_faults(value) or ["it is not a plausible address"]
    out.append(
        Problem("invalid_email", "/email", f"email is not valid: {'; '.join(faults)}; fix it")
    )


def _diagnose_bool(name: str) -> Callable[[object, list[Problem]], None]:
    def diagnose(value: object, out: list[Problem]) -> None:
        if not _is_bool(value):
            out.append(
                Problem(
                    "invalid_type",
                    _pointer(name),
                    f"{name} is {_json_type(value)}; it must be the JSON boolean true or false",
                )
            )

    return diagnose


def _length_problem(path: str, name: str, value: str, limit: int) -> Problem:
    if not value:
        return Problem("invalid_length", path, f"{name} is empty; remove it or give a value")
    return Problem(
        "invalid_length",
        path,
        f"{name} is {_utf16_len(value)} characters long; Auth0 allows at most {limit}",
    )


def _diagnose_bounded(name: str, limit: int) -> Callable[[object, list[Problem]], None]:
    def diagnose(value: object, out: list[Problem]) -> None:
        if not isinstance(value, str):
            out.append(_wrong_type(_pointer(name), name, value, "a string"))
        elif not _fits(value, limit):
            out.append(_length_problem(_pointer(name), name, value, limit))

    return diagnose


def _diagnose_phone(value: object, out: list[Problem]) -> None:
    if _is_phone(value):
        return
    if not isinstance(value, str):
        out.append(_wrong_type("/phone_number", "phone_number", value, "a string"))
        return
    out.append(
        Problem(
            "invalid_phone_number",
            "/phone_number",
            "phone_number must be E.164: '+' then 1-15 digits, no spaces (like +12125550001)",
        )
    )


def _diagnose_user_id(value: object, out: list[Problem]) -> None:
    if _is_user_id(value):
        return
    if not isinstance(value, str):
        out.append(_wrong_type("/user_id", "user_id", value, "a string"))
    elif not value:
        out.append(
            Problem(
                "invalid_user_id",
                "/user_id",
                "user_id is empty; remove the field to let Auth0 generate one",
            )
        )
    elif not _fits(value, MAX_USER_ID):
        out.append(_length_problem("/user_id", "user_id", value, MAX_USER_ID))
    else:
        out.append(
            Problem(
                "invalid_user_id",
                "/user_id",
                "user_id contains whitespace or a control character; remove them",
            )
        )


def _diagnose_username(value: object, out: list[Problem]) -> None:
    if _is_username(value):
        return
    if not isinstance(value, str):
        out.append(_wrong_type("/username", "username", value, "a string"))
    elif not _fits(value, MAX_USERNAME):
        out.append(_length_problem("/username", "username", value, MAX_USERNAME))
    elif _USERNAME.fullmatch(value) is None:
        out.append(
            Problem(
                "invalid_username",
                "/username",
                "username may only contain letters, digits and @ ^ $ ! # . + ' ~ _ ` -",
            )
        )
    else:
        out.append(
            Problem(
                "invalid_username",
                "/username",
                "username must not be an email address; put the address in email instead",
            )
        )


def _diagnose_picture(value: object, out: list[Problem]) -> None:
    if _is_picture(value):
        return
    if not isinstance(value, str):
        out.append(_wrong_type("/picture", "picture", value, "a string"))
        return
    out.append(
        Problem(
            "invalid_picture",
            "/picture",
            "picture must be an absolute http:// or https:// URL without spaces",
        )
    )


def _diagnose_password_hash(value: object, out: list[Problem]) -> None:
    if _is_password_hash(value):
        return
    if not isinstance(value, str):
        out.append(_wrong_type("/password_hash", "password_hash", value, "a string"))
        return
    out.append(Problem("invalid_password_hash", "/password_hash", _bcrypt_fault("password_hash")))


def _bcrypt_fault(name: str) -> str:
    return (
        f"the {name} value is not a bcrypt hash: it must be $2a$, $2b$ or $2y$, a two-digit cost "
        "04-31, '$' and 53 characters of [./A-Za-z0-9]; for other algorithms use "
        "custom_password_hash"
    )


def _diagnose_metadata(name: str) -> Callable[[object, list[Problem]], None]:
    forbidden = FORBIDDEN_APP_METADATA_KEYS if name == "app_metadata" else frozenset()

    def diagnose(value: object, out: list[Problem]) -> None:
        if not isinstance(value, dict):
            out.append(_wrong_type(_pointer(name), name, value, "an object"))
            return
        for key in value:
            if key in forbidden:
                out.append(
                    Problem(
                        "forbidden_app_metadata_key",
                        _pointer(name, key),
                        f"app_metadata must not contain {key!r} (Auth0 reserves it); "
                        "rename or remove it",
                    )
                )
        _diagnose_keys(name, value, out)

    return diagnose


def _diagnose_keys(name: str, root: dict[object, object], out: list[Problem]) -> None:
    """Walk iteratively (no recursion limit) and report keys containing '.' or '$'."""
    found = 0
    stack: list[tuple[tuple[str | int, ...], object]] = [((name,), root)]
    while stack:
        parts, node = stack.pop()
        if isinstance(node, dict):
            children: list[tuple[str | int, object]] = []
            for key, child in node.items():
                if not isinstance(key, str) or "." in key or "$" in key:
                    found += 1
                    if found <= _MAX_KEY_PROBLEMS:
                        out.append(_bad_key(parts, key))
                children.append((str(key), child))
            stack.extend(((*parts, key), child) for key, child in reversed(children))
        elif isinstance(node, list):
            items = list(enumerate(node))
            stack.extend(((*parts, index), child) for index, child in reversed(items))
    if found > _MAX_KEY_PROBLEMS:
        out.append(
            Problem(
                "invalid_metadata_key",
                _pointer(name),
                f"{name} has {found - _MAX_KEY_PROBLEMS} more keys with '.' or '$' (not listed)",
            )
        )


def _bad_key(parts: tuple[str | int, ...], key: object) -> Problem:
    return Problem(
        "invalid_metadata_key",
        _pointer(*parts, str(key)),
        f"metadata key {_show_key(key)} must be a string without '.' or '$'; rename it",
    )


# --- custom_password_hash -------------------------------------------------------------------------


def _cph(path: str, message: str) -> Problem:
    return Problem(_CPH_REASON, path, message)


def _unknown_keys(obj: dict[object, object], allowed: frozenset[str], path: str) -> list[Problem]:
    return [
        _cph(
            path + _pointer(str(key)),
            f"{_show_key(key)} is not a property of {path[1:].replace('/', '.')}; "
            f"allowed: {', '.join(sorted(allowed))}",
        )
        for key in obj
        if key not in allowed
    ]


def _enum(
    obj: dict[object, object], key: str, allowed: tuple[str, ...], path: str
) -> Problem | None:
    value = obj.get(key)
    if key not in obj or (isinstance(value, str) and value in allowed):
        return None
    where = f"{path}/{key}"
    return _cph(where, f"{where[1:].replace('/', '.')} must be one of: {', '.join(allowed)}")


def _sub_object(
    cph: dict[object, object], key: str, allowed: frozenset[str], out: list[Problem]
) -> dict[object, object] | None:
    """The sub-object `key` if it is an object (its unknown keys reported), else None."""
    if key not in cph:
        return None
    value = cph[key]
    path = f"{_CPH}/{key}"
    if not isinstance(value, dict):
        out.append(
            _cph(path, f"custom_password_hash.{key} is {_json_type(value)}; it must be an object")
        )
        return None
    out.extend(_unknown_keys(value, allowed, path))
    return value


def _required_string(
    obj: dict[object, object], key: str, path: str, what: str, out: list[Problem]
) -> str | None:
    where = f"{path}/{key}"
    dotted = where[1:].replace("/", ".")
    if key not in obj:
        out.append(_cph(where, f"{dotted} is required ({what})"))
        return None
    value = obj[key]
    if not isinstance(value, str):
        out.append(_cph(where, f"{dotted} is {_json_type(value)}; it must be a string"))
        return None
    if not value:
        out.append(_cph(where, f"{dotted} is empty; give the {what}"))
        return None
    return value


def _check_encoded(value: str, encoding: object, where: str, what: str, out: list[Problem]) -> None:
    """A hex/base64 value must look like it (the value itself is never shown)."""
    if encoding == "hex" and _HEX.fullmatch(value) is None:
        out.append(
            _cph(where, f"the {what} is declared hex but is not an even number of hex digits")
        )
    elif encoding == "base64" and _BASE64.fullmatch(value) is None:
        out.append(_cph(where, f"the {what} is declared base64 but has characters outside base64"))


def _diagnose_custom_password_hash(value: object, out: list[Problem]) -> None:
    if not isinstance(value, dict):
        out.append(_wrong_type(_CPH, "custom_password_hash", value, "an object"))
        return
    out.extend(_unknown_keys(value, CPH_KEYS, _CPH))
    algorithm = _algorithm(value, out)
    hash_ = _sub_object(value, "hash", HASH_KEYS, out)
    if "hash" not in value:
        out.append(
            _cph(
                f"{_CPH}/hash",
                "custom_password_hash.hash is required (an object with the hash value)",
            )
        )
    salt = _sub_object(value, "salt", SALT_KEYS, out)
    password = _sub_object(value, "password", _PASSWORD_KEYS, out)
    if password is not None:
        _append(out, _enum(password, "encoding", PASSWORD_ENCODINGS, f"{_CPH}/password"))
    if salt is not None:
        _diagnose_salt(salt, algorithm, out)
    _diagnose_scrypt_numbers(value, algorithm, out)
    if hash_ is not None:
        _diagnose_hash(hash_, algorithm, out)


def _append(out: list[Problem], problem: Problem | None) -> None:
    if problem is not None:
        out.append(problem)


def _algorithm(cph: dict[object, object], out: list[Problem]) -> str | None:
    where = f"{_CPH}/algorithm"
    if "algorithm" not in cph:
        out.append(
            _cph(
                where,
                f"custom_password_hash.algorithm is required: one of {', '.join(ALGORITHMS)}",
            )
        )
        return None
    algorithm = cph["algorithm"]
    if isinstance(algorithm, str) and algorithm in ALGORITHMS:
        return algorithm
    out.append(
        _cph(where, f"custom_password_hash.algorithm must be one of: {', '.join(ALGORITHMS)}")
    )
    return None


def _diagnose_salt(salt: dict[object, object], algorithm: str | None, out: list[Problem]) -> None:
    path = f"{_CPH}/salt"
    if algorithm in _NO_SALT_ALGORITHMS:
        out.append(
            _cph(path, f"{algorithm} does not allow a salt object; the salt belongs in hash.value")
        )
    value = _required_string(salt, "value", path, "salt value", out)
    bad_encoding = _enum(salt, "encoding", ENCODINGS, path)
    _append(out, bad_encoding)
    _append(out, _enum(salt, "position", SALT_POSITIONS, path))
    if value is not None and bad_encoding is None:
        _check_encoded(value, salt.get("encoding"), f"{path}/value", "salt value", out)


_SCRYPT_NUMBERS: Final[tuple[tuple[str, Callable[[int], bool], str], ...]] = (
    ("keylen", lambda n: n > 0, "an integer greater than zero"),
    ("cost", lambda n: n > 1 and n & (n - 1) == 0, "a power of two greater than one"),
    ("blockSize", lambda n: n > 0, "a positive integer"),
    ("parallelization", lambda n: n > 0, "a positive integer"),
)


def _diagnose_scrypt_numbers(
    cph: dict[object, object], algorithm: str | None, out: list[Problem]
) -> None:
    for key, rule, wanted in _SCRYPT_NUMBERS:
        if key not in cph:
            continue
        number = _as_integer(cph[key])
        if number is None or not rule(number):
            out.append(_cph(f"{_CPH}/{key}", f"custom_password_hash.{key} must be {wanted}"))
    if algorithm == "scrypt" and "keylen" not in cph:
        out.append(_cph(f"{_CPH}/keylen", "scrypt needs keylen (the derived key length in bytes)"))


def _as_integer(value: object) -> int | None:
    """JSON-schema integer: a number without a fraction (Auth0 checks in JavaScript: 32.0 is 32)."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def _diagnose_hash(hash_: dict[object, object], algorithm: str | None, out: list[Problem]) -> None:
    path = f"{_CPH}/hash"
    value = _required_string(hash_, "value", path, "the password hash", out)
    bad_encoding = _enum(hash_, "encoding", ENCODINGS, path)
    _append(out, bad_encoding)
    _append(out, _enum(hash_, "digest", HMAC_DIGESTS, path))
    key = hash_.get("key")
    if "key" in hash_:
        if isinstance(key, dict):
            out.extend(_unknown_keys(key, KEY_KEYS, f"{path}/key"))
            key_value = _required_string(key, "value", f"{path}/key", "the HMAC key", out)
            bad_key_encoding = _enum(key, "encoding", ENCODINGS, f"{path}/key")
            _append(out, bad_key_encoding)
            if key_value is not None and bad_key_encoding is None:
                _check_encoded(
                    key_value, key.get("encoding"), f"{path}/key/value", "key value", out
                )
        else:
            out.append(
                _cph(
                    f"{path}/key",
                    f"custom_password_hash.hash.key is {_json_type(key)}; it must be an object",
                )
            )
    if algorithm is None or bad_encoding is not None:
        return
    encoding = hash_.get("encoding")
    if algorithm in _UTF8_ALGORITHMS:
        if encoding not in (None, "utf8"):
            out.append(_cph(f"{path}/encoding", f"{algorithm} hashes must use hash.encoding utf8"))
    elif encoding not in ("hex", "base64"):
        out.append(_cph(f"{path}/encoding", f"{algorithm} hashes need hash.encoding hex or base64"))
    elif value is not None:
        _check_encoded(value, encoding, f"{path}/value", "hash value", out)
    if algorithm == "hmac":
        if "digest" not in hash_:
            out.append(
                _cph(f"{path}/digest", f"hmac needs hash.digest: one of {', '.join(HMAC_DIGESTS)}")
            )
        if "key" not in hash_:
            out.append(_cph(f"{path}/key", "hmac needs hash.key with the key's value"))
    if value is not None:
        fault = _hash_format_fault(algorithm, value)
        if fault:
            out.append(_cph(f"{path}/value", fault))


def _hash_format_fault(algorithm: str, value: str) -> str:
    """Why a utf8-encoded hash value has the wrong shape ("" if fine); never quotes the value."""
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
    if algorithm == "ldap":
        match = _LDAP.fullmatch(value)
        if match is None:
            return "the hash value is not an RFC 2307 LDAP hash: {SCHEME}<base64>"
        if _LDAP_SCHEME.fullmatch(match.group(1)) is None:
            return (
                f"the LDAP scheme {{{match.group(1)}}} is not supported: "
                "use MD5, SMD5, SHA* or SSHA* (CRYPT is not supported)"
            )
    return ""


# --- mfa_factors ----------------------------------------------------------------------------------


def _diagnose_mfa_factors(value: object, out: list[Problem]) -> None:
    if not isinstance(value, list):
        out.append(_wrong_type("/mfa_factors", "mfa_factors", value, "an array"))
        return
    if not 1 <= len(value) <= MFA_MAX:
        out.append(
            Problem(
                _MFA_REASON,
                "/mfa_factors",
                f"mfa_factors has {len(value)} items; give 1 to {MFA_MAX} (or remove the field)",
            )
        )
    for index, factor in enumerate(value):
        _diagnose_factor(index, factor, out)


def _diagnose_factor(index: int, factor: object, out: list[Problem]) -> None:
    path = f"/mfa_factors/{index}"
    if not isinstance(factor, dict):
        out.append(
            Problem(
                _MFA_REASON,
                path,
                f"MFA factor {index} is {_json_type(factor)}; it must be an object",
            )
        )
        return
    if len(factor) != 1:
        out.append(
            Problem(
                _MFA_REASON,
                path,
                f"MFA factor {index} must have exactly one of totp, phone, email "
                f"(it has {len(factor)} properties)",
            )
        )
    for kind, inner in factor.items():
        field = _MFA_KINDS.get(kind) if isinstance(kind, str) else None
        if field is None:
            out.append(
                Problem(
                    _MFA_REASON,
                    _pointer("mfa_factors", index, str(kind)),
                    f"{_show_key(kind)} is not an MFA factor type; use totp, phone or email",
                )
            )
            continue
        _diagnose_factor_body(f"{path}/{kind}", kind, field, inner, out)


def _diagnose_factor_body(
    path: str, kind: str, field: str, inner: object, out: list[Problem]
) -> None:
    if not isinstance(inner, dict):
        out.append(
            Problem(
                _MFA_REASON,
                path,
                f"the {kind} factor is {_json_type(inner)}; it must be an object with {field}",
            )
        )
        return
    for key in inner:
        if key != field:
            out.append(
                Problem(
                    _MFA_REASON,
                    path + _pointer(str(key)),
                    f"{_show_key(key)} is not allowed in a {kind} factor; only {field}",
                )
            )
    where = f"{path}/{field}"
    if field not in inner:
        out.append(Problem(_MFA_REASON, where, f"the {kind} factor needs {field}"))
        return
    value = inner[field]
    if not isinstance(value, str):
        out.append(
            Problem(
                _MFA_REASON,
                where,
                f"the {kind} {field} is {_json_type(value)}; it must be a string",
            )
        )
    elif kind == "totp" and _TOTP_SECRET.fullmatch(value) is None:
        out.append(
            Problem(
                _MFA_REASON, where, "the TOTP secret must be unpadded base32 (A-Z and 2-7 only)"
            )
        )
    elif kind == "phone" and _PHONE.fullmatch(value) is None:
        out.append(Problem(_MFA_REASON, where, "the MFA phone must be E.164: '+' then 1-15 digits"))
    elif kind == "email" and not _is_email(value):
        faults = _email_faults(value) or ["it is not a plausible address"]
        out.append(Problem(_MFA_REASON, where, f"the MFA email is not valid: {'; '.join(faults)}"))


_DIAGNOSE: Final[dict[str, Callable[[object, list[Problem]], None]]] = {
    "email": _diagnose_email,
    "user_id": _diagnose_user_id,
    "picture": _diagnose_picture,
    "password_hash": _diagnose_password_hash,
    "app_metadata": _diagnose_metadata("app_metadata"),
    "user_metadata": _diagnose_metadata("user_metadata"),
    "phone_number": _diagnose_phone,
    "username": _diagnose_username,
    "custom_password_hash": _diagnose_custom_password_hash,
    "mfa_factors": _diagnose_mfa_factors,
    **{name: _diagnose_bounded(name, limit) for name, limit in STRING_LIMITS.items()},
    **{name: _diagnose_bool(name) for name in BOOL_FIELDS},
}
assert _DIAGNOSE.keys() == ALLOWED_FIELDS
