"""The native fast path: it accepts the usual valid user, and never a user the Python rules refuse."""

from __future__ import annotations

import copy
import re
from typing import Any, Final

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import validation
from orchestrator.json_schema import certainly_valid, import_schema
from orchestrator.validation import NormaliseOptions, UserValidator
from sample_data.generate import iter_users

User = dict[str, Any]

# Characters where regex engines and the rules tend to disagree: separators, anchors' neighbours,
# case-folding oddities (dotted I, long s, Kelvin sign), control and non-ASCII letters.
_TRICKY = list("aZz09.-_@+$/=:!#?&%{}|~^`'\" \n\t\r\x00\x7f\u00e9\u0130\u017f\u212a\u0660")
_TEXT = st.text(alphabet=st.sampled_from(_TRICKY), max_size=80)


def _near(pattern: re.Pattern[str]) -> st.SearchStrategy[str]:
    """Strings matching `pattern`, and the same with one tricky character put anywhere."""
    matching = st.from_regex(pattern, fullmatch=True)

    @st.composite
    def mutated(draw: st.DrawFn) -> str:
        text = draw(matching)
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(_TRICKY)) + text[at + draw(st.integers(0, 1)) :]

    return matching | mutated() | _TEXT


_STRING_FIELDS = {
    "email": validation._is_email,
    "password_hash": validation._is_password_hash,
    "phone_number": validation._is_phone,
    "user_id": validation._is_user_id,
    "username": validation._is_username,
    "picture": validation._is_picture,
}


#: Hypothesis settings of the per-field and per-format property tests (here and test_fastcheck).
FIELD_SETTINGS: Final = settings(
    max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None
)


def field_strings(field: str) -> st.SearchStrategy[str]:
    """Strings near the schema's own pattern for `field` (one of _STRING_FIELDS)."""
    pattern = import_schema()["properties"][field]["pattern"]  # type: ignore[index]
    return _near(re.compile(pattern.removeprefix("^").removesuffix("$")))


@pytest.mark.parametrize("field", sorted(_STRING_FIELDS))
@FIELD_SETTINGS
@given(data=st.data())
def test_each_string_field_accepts_only_what_its_rule_accepts(
    field: str, data: st.DataObject
) -> None:
    native = jsonschema_rs.validator_for(import_schema()["properties"][field])  # type: ignore[index]
    text = data.draw(field_strings(field))
    if native.is_valid(text):
        assert _STRING_FIELDS[field](text), text


_HASH_VALUES = {
    "bcrypt": validation._BCRYPT,
    "argon2": validation._ARGON2,
    "pbkdf2": validation._PBKDF2,
    "ldap": validation._LDAP,
}


@st.composite
def custom_password_hashes(draw: st.DrawFn) -> dict[str, Any]:
    algorithm = draw(st.sampled_from([*validation.ALGORITHMS, "sha3"]))
    encoding = draw(st.sampled_from([None, *validation.ENCODINGS, "latin1"]))
    pattern = _HASH_VALUES.get(
        algorithm, validation._HEX if encoding == "hex" else validation._BASE64
    )
    hash_: dict[str, Any] = {"value": draw(_near(pattern))}
    if encoding is not None:
        hash_["encoding"] = encoding
    if draw(st.booleans()):
        hash_["digest"] = draw(st.sampled_from([*validation.HMAC_DIGESTS, "sha3"]))
    if draw(st.booleans()):
        hash_["key"] = {"value": draw(_near(validation._HEX)), "encoding": "hex"}
    cph: dict[str, Any] = {"algorithm": algorithm, "hash": hash_}
    if draw(st.booleans()):
        salt_encoding = draw(st.sampled_from(["hex", "base64", "utf8", "x"]))
        salt_pattern = validation._HEX if salt_encoding == "hex" else validation._BASE64
        cph["salt"] = {"value": draw(_near(salt_pattern)), "encoding": salt_encoding}
        if draw(st.booleans()):
            cph["salt"]["position"] = draw(st.sampled_from(["prefix", "suffix", "middle"]))
    for key in ("keylen", "cost", "blockSize", "parallelization"):
        if draw(st.booleans()):
            cph[key] = draw(st.sampled_from([0, 1, 3, 16, 32.0, 32.5, -1, True, "8"]))
    if draw(st.booleans()):
        cph["password"] = {"encoding": draw(st.sampled_from(["utf8", "utf16le", "ebcdic"]))}
    return cph


_KEYS = st.text(alphabet=st.sampled_from(list("ab.$_-é")), max_size=4)
_METADATA = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)
_FACTORS = st.lists(
    st.sampled_from(["totp", "phone", "email", "sms"]).flatmap(
        lambda kind: st.fixed_dictionaries(
            {
                kind: st.fixed_dictionaries(
                    {"secret" if kind == "totp" else "value": _near(validation._TOTP_SECRET)}
                    if kind == "totp"
                    else {"value": _near(validation._PHONE) | _near(validation._EMAIL_ASCII)}
                )
            }
        )
    ),
    max_size=11,
)
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "email_verified": st.booleans() | st.sampled_from([0, "true", None]),
    "user_id": _near(re.compile(r"[!-~]{1,20}")),
    "username": _near(validation._USERNAME),
    "given_name": _TEXT | st.text(min_size=70, max_size=160),
    "name": _TEXT | st.text(min_size=140, max_size=310),
    "picture": _near(re.compile(r"https?://[a-z.]{1,12}(/[a-z]{0,5})?")),
    "phone_number": _near(validation._PHONE),
    "password_hash": _near(validation._BCRYPT),
    "custom_password_hash": custom_password_hashes(),
    "mfa_factors": _FACTORS,
    "app_metadata": st.dictionaries(
        _KEYS | st.sampled_from(sorted(validation.FORBIDDEN_APP_METADATA_KEYS)),
        _METADATA,
        max_size=4,
    ),
    "user_metadata": st.dictionaries(_KEYS, _METADATA, max_size=4) | _METADATA,
    "extra": _TEXT,
}


@st.composite
def near_valid_users(draw: st.DrawFn) -> User:
    user: User = {}
    if draw(st.integers(0, 9)):
        user["email"] = draw(_near(validation._EMAIL_ASCII))
    for key, strategy in _FIELDS.items():
        if draw(st.integers(0, 3)) == 0:
            user[key] = draw(strategy)
    return user


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_users())
def test_the_schema_never_accepts_a_user_the_rules_refuse(user: User) -> None:
    if certainly_valid(copy.deepcopy(user)):
        assert UserValidator(NormaliseOptions(keep_user_id_prefix=True))._diagnose(user) == []


def test_the_usual_users_take_the_native_path() -> None:
    users = list(iter_users(2_000, seed=3, flavour="auth0-export"))
    validator = UserValidator(NormaliseOptions(drop_unknown_fields=True))
    assert not any(map(validator.check, users))  # all valid, and normalised in place
    certain = sum(map(certainly_valid, users))
    assert certain >= 0.98 * len(users)


@pytest.mark.parametrize(
    "user",
    [
        {"email": "a@b.co", "name": "\ud800"},  # a lone surrogate
        {"email": "a@b.co", "app_metadata": {1: 2}},  # a key that is no string
        {"email": "a@b.co", "user_metadata": {"a": object()}},  # no JSON value at all
        {"email": "a@b.co", "user_metadata": {"a": 2**70}},
    ],
)
def test_odd_python_values_never_raise_and_agree_with_the_rules(user: User) -> None:
    if certainly_valid(user):
        assert UserValidator(NormaliseOptions())._diagnose(user) == []


def test_the_schema_is_a_valid_json_schema() -> None:
    assert jsonschema_rs.meta.is_valid(import_schema())
