"""The C fast path (`_fastcheck.c`): it accepts the usual valid user, never one the rules refuse."""

from __future__ import annotations

import copy
from collections import UserDict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import validation
from orchestrator.validation import NormaliseOptions, UserValidator
from sample_data.generate import iter_users
from tests.test_json_schema import (
    _FACTORS,
    _FIELDS,
    _HASH_VALUES,
    _STRING_FIELDS,
    FIELD_SETTINGS,
    _near,
    custom_password_hashes,
    field_strings,
    near_valid_users,
)

fastcheck = pytest.importorskip("orchestrator._fastcheck", reason="the C extension is not built")

User = dict[str, Any]


def _refusals(user: User) -> list[validation.Problem]:
    return UserValidator(NormaliseOptions(keep_user_id_prefix=True))._diagnose(user)


def test_its_tables_are_the_rules() -> None:
    assert fastcheck.FIELDS.keys() == validation.ALLOWED_FIELDS
    assert {k: v for k, v in fastcheck.FIELDS.items() if v} == validation.STRING_LIMITS
    assert set(fastcheck.FORBIDDEN_APP_METADATA_KEYS) == validation.FORBIDDEN_APP_METADATA_KEYS
    assert set(fastcheck.DIGEST_ALGORITHMS) == validation.DIGEST_ALGORITHMS
    assert fastcheck.HMAC_DIGESTS == validation.HMAC_DIGESTS
    assert set(fastcheck.PBKDF2_DIGESTS) == validation.PBKDF2_DIGESTS
    assert fastcheck.EMAIL_ASCII_MAX == validation.EMAIL_ASCII_MAX
    assert fastcheck.MAX_USER_ID == validation.MAX_USER_ID
    assert fastcheck.MAX_USERNAME == validation.MAX_USERNAME
    assert fastcheck.MFA_MAX == validation.MFA_MAX
    assert fastcheck.USER_ID_PREFIX == validation._USER_ID_PREFIX


@pytest.mark.parametrize("field", sorted(_STRING_FIELDS))
@FIELD_SETTINGS
@given(data=st.data())
def test_each_string_field_accepts_only_what_its_rule_accepts(
    field: str, data: st.DataObject
) -> None:
    text = data.draw(field_strings(field))
    if fastcheck.certain({"email": "a@b.co", field: text}):
        assert _STRING_FIELDS[field](text), text


@pytest.mark.parametrize("algorithm", sorted(_HASH_VALUES))
@FIELD_SETTINGS
@given(data=st.data())
def test_each_hash_format_accepts_only_what_its_rule_accepts(
    algorithm: str, data: st.DataObject
) -> None:
    value = data.draw(_near(_HASH_VALUES[algorithm]))
    user = {
        "email": "a@b.co",
        "custom_password_hash": {"algorithm": algorithm, "hash": {"value": value}},
    }
    if fastcheck.certain(user):
        assert _refusals(user) == [], value


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(custom_password_hashes())
def test_a_custom_password_hash_is_accepted_only_if_the_rules_accept_it(cph: User) -> None:
    user = {"email": "a@b.co", "custom_password_hash": cph}
    if fastcheck.certain(copy.deepcopy(user)):
        assert _refusals(user) == []


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {"email": st.just("a@b.co")},
        optional={
            "app_metadata": _FIELDS["app_metadata"],
            "user_metadata": _FIELDS["user_metadata"],
            "mfa_factors": _FACTORS,
        },
    )
)
def test_metadata_and_factors_are_accepted_only_if_the_rules_accept_them(user: User) -> None:
    if fastcheck.certain(copy.deepcopy(user)):
        assert _refusals(user) == []


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_users())
def test_it_never_accepts_a_user_the_rules_refuse(user: User) -> None:
    if fastcheck.certain(copy.deepcopy(user)):
        assert _refusals(user) == []


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(near_valid_users() | st.integers() | st.none(), max_size=8))
def test_uncertain_lists_the_users_certain_refuses(users: list[Any]) -> None:
    assert fastcheck.uncertain(users) == [
        index for index, user in enumerate(users) if not fastcheck.certain(user)
    ]


def test_every_usual_user_takes_the_fast_path() -> None:
    users: list[object] = list(iter_users(3_000, seed=5, flavour="auth0-export"))
    UserValidator(NormaliseOptions(drop_unknown_fields=True))._normalise(users)
    assert fastcheck.uncertain(users) == []


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": [value]}
    return value


@pytest.mark.parametrize(
    "user",
    [
        {"email": "a@b.co", "name": "\ud800"},  # a lone surrogate
        {"email": "a@b.co", "app_metadata": {1: 2}},  # a key that is no string
        {"email": "a@b.co", "user_metadata": {"a": object()}},  # no JSON value at all
        {"email": "a@b.co", "user_metadata": {"a": 2**70}},  # beyond what orjson encodes
        {"email": "a@b.co", "user_metadata": _nested(200)},  # deeper than the C check goes
        {"email": "a@b.co", "user_metadata": UserDict({"a": 1})},  # not a dict
        {"email": "a@b.co", "blocked": 1},
        {"email": "a@b.co", "custom_password_hash": {"algorithm": "scrypt", "keylen": True}},
        {"email": "a@b.co", "mfa_factors": [{"phone": {"value": "+1"}, "x": {}}]},
        {"email": "a@b.co", "password_hash": "$2b$10$" + "a" * 53, "custom_password_hash": {}},
        {"email": "a@b.co", "user_id": "a b"},
        {"email": "a@-b.co"},
        {"email": "a@b"},
        {"email": "@b.co"},
        {"email": "a@b..co"},
        {},
    ],
)
def test_odd_values_are_never_certain_wrongly_and_never_raise(user: User) -> None:
    if fastcheck.certain(user):
        assert _refusals(user) == []
    assert fastcheck.uncertain([user]) == ([] if fastcheck.certain(user) else [0])


def test_the_usual_shapes_of_every_algorithm_are_certain() -> None:
    users = [
        {"email": f"u{i}@example.com", "custom_password_hash": cph}
        for i, cph in enumerate(
            {"algorithm": name, **made}
            for name, made in (
                ("md5", {"hash": {"value": "ab" * 16, "encoding": "hex"}}),
                ("sha256", {"hash": {"value": "q83vEjRWeJA=", "encoding": "base64"}}),
                (
                    "sha512",
                    {
                        "hash": {"value": "AB" * 64, "encoding": "hex"},
                        "salt": {"value": "ab" * 8, "encoding": "hex", "position": "suffix"},
                    },
                ),
                ("pbkdf2", {"hash": {"value": "$pbkdf2-sha512$i=100000,l=64$c2FsdA$aGFzaA"}}),
                ("argon2", {"hash": {"value": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"}}),
                ("ldap", {"hash": {"value": "{SSHA}aGFzaGhhc2g=", "encoding": "utf8"}}),
                ("bcrypt", {"hash": {"value": "$2y$12$" + "a" * 53, "encoding": "utf8"}}),
                (
                    "hmac",
                    {
                        "hash": {
                            "value": "ab" * 32,
                            "encoding": "hex",
                            "digest": "sha256",
                            "key": {"value": "a2V5", "encoding": "base64"},
                        }
                    },
                ),
                (
                    "scrypt",
                    {
                        "hash": {"value": "q83vEjRWeJA=", "encoding": "base64"},
                        "salt": {"value": "c2FsdA==", "encoding": "base64"},
                        "keylen": 64,
                        "cost": 16384,
                        "blockSize": 8,
                        "parallelization": 1,
                    },
                ),
            )
        )
    ]
    assert all(_refusals(copy.deepcopy(user)) == [] for user in users)
    assert fastcheck.uncertain(users) == []


def test_without_the_extension_the_schema_check_gives_the_same_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users: list[object] = [
        *iter_users(300, seed=9, flavour="auth0-export"),
        {"email": "nope"},
        "not an object",
        {"email": "a@b.co", "app_metadata": {"a.b": 1}},
        {"email": "jürgen@exämple.de", "name": "x" * 200},  # valid, refused by both fast paths
    ]
    with_c = UserValidator(NormaliseOptions(drop_unknown_fields=True)).problems(
        copy.deepcopy(users)
    )
    monkeypatch.setattr(validation, "_fastcheck", None)
    without = UserValidator(NormaliseOptions(drop_unknown_fields=True)).problems(users)
    assert with_c == without
    assert sorted(without) == [300, 301, 302]


class _Text(str):
    pass


_USER_IDS = st.sampled_from(
    ["auth0|abc", "auth0|", "Auth0|abc", "xauth0|abc", "auth0", "auth0|auth0|x", "", "é"]
) | st.text(max_size=8).map(lambda text: "auth0|" + text)


@settings(max_examples=200)
@given(
    st.lists(
        st.fixed_dictionaries({}, optional={"user_id": _USER_IDS | st.integers() | st.none()})
        | st.builds(lambda text: {"user_id": _Text(text)}, _USER_IDS)
        | st.builds(lambda text: UserDict({"user_id": text}), _USER_IDS)
        | st.none(),
        max_size=6,
    ),
    st.booleans(),
)
def test_the_prefix_is_stripped_exactly_as_in_python(users: list[Any], keep: bool) -> None:
    options = NormaliseOptions(keep_user_id_prefix=keep)
    in_c = copy.deepcopy(users)
    UserValidator(options)._normalise(in_c)
    native, validation._fastcheck = validation._fastcheck, None
    try:
        UserValidator(options)._normalise(users)
    finally:
        validation._fastcheck = native
    assert in_c == users
    assert [type(user.get("user_id")) for user in in_c if isinstance(user, dict | UserDict)] == [
        type(user.get("user_id")) for user in users if isinstance(user, dict | UserDict)
    ]
