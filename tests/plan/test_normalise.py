"""Normalisation before judgement: the `auth0|` prefix, unknown fields, and the user as read kept."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.plan.normalise import Normaliser
from orchestrator.plan.schema import ALLOWED_FIELDS, AUTH0_EXPORT_FIELDS, check_user
from orchestrator.settings import PlanSettings

User = dict[str, Any]


def normalise(user: object, **settings: bool) -> Any:
    return Normaliser(PlanSettings(**settings))(user)  # type: ignore[arg-type]


def test_the_auth0_prefix_is_stripped_in_a_copy() -> None:
    user = {"email": "x@example.com", "user_id": "auth0|63d16b60c55b3650a5c9fff9"}
    normalised = normalise(user)
    assert normalised["user_id"] == "63d16b60c55b3650a5c9fff9"
    assert user["user_id"] == "auth0|63d16b60c55b3650a5c9fff9"  # the user as read is kept


def test_a_user_that_needs_no_change_is_not_copied() -> None:
    user = {"email": "x@example.com", "user_id": "abc"}
    assert normalise(user, drop_unknown_fields=True) is user


def test_the_auth0_prefix_is_stripped_once_and_only_as_a_prefix() -> None:
    twice = {"email": "x@example.com", "user_id": "auth0|auth0|abc"}
    inside = {"email": "x@example.com", "user_id": "x-auth0|abc"}
    other = {"email": "x@example.com", "user_id": "google-oauth2|123"}
    assert [normalise(u)["user_id"] for u in (twice, inside, other)] == [
        "auth0|abc",
        "x-auth0|abc",
        "google-oauth2|123",
    ]


def test_keep_user_id_prefix() -> None:
    user = {"email": "x@example.com", "user_id": "auth0|abc"}
    assert normalise(user, keep_user_id_prefix=True)["user_id"] == "auth0|abc"


@pytest.mark.parametrize("value", [[1, 2], "text", None, 3])
def test_anything_but_an_object_passes_unchanged(value: object) -> None:
    assert normalise(value, drop_unknown_fields=True) is value


def _auth0_export_user(i: int) -> User:
    return {
        "user_id": f"auth0|{i:024x}",
        "email": f"user{i}@example.com",
        "email_verified": True,
        "name": f"user{i}@example.com",
        "nickname": f"user{i}",
        "picture": "https://s.gravatar.com/avatar/x.png",
        "created_at": "2023-01-25T17:48:16.647Z",
        "updated_at": "2023-01-25T17:48:16.647Z",
        "identities": [{"provider": "auth0", "user_id": f"{i:024x}", "isSocial": False}],
        "logins_count": i,
        **({"last_login": "2024-01-01T00:00:00Z", "last_ip": "192.0.2.1"} if i % 2 else {}),
    }


def test_drop_unknown_fields_drops_and_counts_per_field() -> None:
    normaliser = Normaliser(PlanSettings(drop_unknown_fields=True))
    users = [_auth0_export_user(i) for i in range(4)]
    users.append({**_auth0_export_user(4), "email": "broken", "custom_thing": 1})
    normalised = [normaliser(user) for user in users]
    assert [check_user(user) for user in normalised[:4]] == [[], [], [], []]
    assert [p.reason for p in check_user(normalised[4])] == ["invalid_email"]
    assert normaliser.dropped_fields == {
        "created_at": 5,
        "updated_at": 5,
        "identities": 5,
        "logins_count": 5,
        "last_login": 2,
        "last_ip": 2,
        "custom_thing": 1,
    }
    for user in normalised:
        assert isinstance(user, dict)
        assert user.keys() <= ALLOWED_FIELDS
        assert not user["user_id"].startswith("auth0|")
    assert all("created_at" in user for user in users)  # the users as read are untouched


def test_without_the_option_nothing_is_dropped() -> None:
    normaliser = Normaliser(PlanSettings())
    user = _auth0_export_user(1)
    normalised = normaliser(user)
    assert isinstance(normalised, dict)
    assert "created_at" in normalised
    assert not normaliser.dropped_fields
    problems = check_user(normaliser(user))
    assert {p.path for p in problems} == {
        "/created_at",
        "/updated_at",
        "/identities",
        "/logins_count",
        "/last_login",
        "/last_ip",
    }
    assert all("--drop-unknown-fields" in p.message for p in problems)


def test_export_field_list_holds_no_importable_field() -> None:
    assert not AUTH0_EXPORT_FIELDS & ALLOWED_FIELDS


def test_dropped_field_counts_survive_many_distinct_field_sets() -> None:
    normaliser = Normaliser(PlanSettings(drop_unknown_fields=True))
    for i in range(5_000):
        assert normaliser({"email": "x@example.com", "created_at": 1, f"extra{i}": 1}) == {
            "email": "x@example.com"
        }
    dropped = normaliser.dropped_fields
    assert dropped["created_at"] == 5_000
    assert dropped["extra0"] == dropped["extra4999"] == 1
    assert len(dropped) == 5_001


def test_code_like_keys_are_dropped_and_counted() -> None:
    normaliser = Normaliser(PlanSettings(drop_unknown_fields=True))
    hostile = "x'):\n    raise SystemExit  # "
    user = {"email": "x@example.com", hostile: 1, "name": "Ann", "__import__('os')": 2}
    assert normaliser(user) == {"email": "x@example.com", "name": "Ann"}
    assert normaliser.dropped_fields[hostile] == 1
