"""Tests of the compact seen-key set and the per-user duplicate check."""

from __future__ import annotations

import hashlib
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import dedupe
from orchestrator.dedupe import DuplicateFinder, SeenKeys, fingerprint, key_fingerprints
from orchestrator.validation import REASONS, Problem


def test_add_reports_repeats_only() -> None:
    seen = SeenKeys()
    assert seen.add("a@example.com") is False
    assert seen.add("b@example.com") is False
    assert seen.add("a@example.com") is True
    assert len(seen) == 2
    assert "a@example.com" in seen
    assert "c@example.com" not in seen
    assert 5 not in seen


def test_fingerprint_is_deterministic_signed_blake2b_and_never_zero() -> None:
    digest = hashlib.blake2b(b"key", digest_size=8).digest()
    assert fingerprint("key") == int.from_bytes(digest, "little", signed=True)
    # A fixed value: the same in every process, unlike hash() (PYTHONHASHSEED).
    assert fingerprint("jane@example.com") == fingerprint("jane@example.com")
    keys = ["", *(f"k{i}" for i in range(999))]
    assert all(-(2**63) <= fingerprint(key) < 2**63 and fingerprint(key) for key in keys)
    assert fingerprint("\ud800") != fingerprint("\ud801")  # lone surrogates do not crash


def test_zero_fingerprint_is_folded_onto_one_not_lost() -> None:
    seen = SeenKeys()
    assert seen.add_fingerprint(1) is False
    assert seen.contains_fingerprint(1)
    assert not seen.contains_fingerprint(2)


def test_growth_keeps_every_key_and_memory_stays_compact() -> None:
    seen = SeenKeys(expected=16)
    keys = [f"user{i}@example.com" for i in range(20_000)]
    assert not any(seen.add(key) for key in keys)
    assert all(seen.add(key) for key in keys)
    assert len(seen) == len(keys)
    # 8 bytes per slot at 35-70% load: well under a set of str (~100 bytes per key).
    assert 8 <= seen.memory_bytes / len(seen) <= 24


def test_expected_size_avoids_growth() -> None:
    seen = SeenKeys(expected=1000)
    before = seen.memory_bytes
    for i in range(1000):
        seen.add(str(i))
    assert seen.memory_bytes == before


@settings(max_examples=200)
@given(st.lists(st.text(max_size=8), max_size=300), st.integers(1, 64))
def test_seen_keys_agrees_with_a_set(keys: list[str], expected: int) -> None:
    seen = SeenKeys(expected=expected)
    reference: set[str] = set()
    for key in keys:
        assert seen.add(key) == (key in reference)
        reference.add(key)
    assert len(seen) == len(reference)
    assert all(key in seen for key in reference)


def test_duplicate_email_is_case_insensitive() -> None:
    finder = DuplicateFinder()
    assert finder.add({"email": "Jane@Example.com", "user_id": "1"}) is None
    problem = finder.add({"email": "jane@example.COM", "user_id": "2"})
    assert problem is not None
    assert (problem.reason, problem.path) == ("duplicate_email", "/email")
    assert "email" in problem.message


def test_duplicate_user_id_is_exact() -> None:
    finder = DuplicateFinder()
    assert finder.add({"email": "a@example.com", "user_id": "abc"}) is None
    assert finder.add({"email": "b@example.com", "user_id": "ABC"}) is None
    problem = finder.add({"email": "c@example.com", "user_id": "abc"})
    assert problem is not None
    assert (problem.reason, problem.path) == ("duplicate_user_id", "/user_id")
    assert problem.reason in REASONS


def test_email_is_reported_before_user_id() -> None:
    finder = DuplicateFinder()
    finder.add({"email": "a@example.com", "user_id": "abc"})
    problem = finder.check({"email": "a@example.com", "user_id": "abc"})
    assert problem is not None
    assert problem.reason == "duplicate_email"


def test_users_without_user_id_only_compare_emails() -> None:
    finder = DuplicateFinder()
    assert finder.add({"email": "a@example.com"}) is None
    assert finder.add({"email": "b@example.com"}) is None
    assert len(finder.user_ids) == 0


def test_check_does_not_remember_so_a_rejected_user_blocks_nothing() -> None:
    finder = DuplicateFinder()
    first = {"email": "a@example.com", "user_id": "1"}
    assert finder.check(first) is None
    assert finder.check(first) is None  # not remembered: a later reject would not count
    finder.remember(first)
    assert finder.check(first) is not None


def test_remember_uses_the_current_keys_not_a_stale_cache() -> None:
    finder = DuplicateFinder()
    user = {"email": "a@example.com", "user_id": "1"}
    assert finder.check(user) is None
    user["email"] = "changed@example.com"
    finder.remember(user)
    assert finder.check({"email": "a@example.com"}) is None
    assert finder.check({"email": "changed@example.com"}) is not None


def test_memory_bytes_counts_both_tables() -> None:
    finder = DuplicateFinder(expected=100)
    assert finder.memory_bytes == finder.emails.memory_bytes + finder.user_ids.memory_bytes > 0


def test_remember_twice_stores_once() -> None:
    finder = DuplicateFinder()
    user = {"email": "a@example.com", "user_id": "1"}
    assert finder.check(user) is None
    finder.remember(user)
    finder.remember(user)
    assert (len(finder.emails), len(finder.user_ids)) == (1, 1)


def test_interleaved_checks_and_remembers_stay_correct() -> None:
    finder = DuplicateFinder(expected=1)  # tiny tables: stores in between force growth
    users = [{"email": f"u{i}@example.com", "user_id": str(i)} for i in range(200)]
    for first, second in zip(users[::2], users[1::2], strict=True):
        assert finder.check(first) is None
        assert finder.check(second) is None
        finder.remember(first)  # the cached slots belong to `second`: must not be reused
        finder.remember(second)
    assert (len(finder.emails), len(finder.user_ids)) == (200, 200)
    assert all(finder.check(user) is not None for user in users)
    assert finder.check({"email": "new@example.com", "user_id": "new"}) is None


def test_a_store_between_check_and_remember_invalidates_the_cached_slot() -> None:
    finder = DuplicateFinder(expected=1)
    a = {"email": "a@example.com"}
    b = {"email": "b@example.com"}
    assert finder.check(a) is None
    finder.remember(b)  # no check of b: stores, so a's cached slot may now be taken
    finder.remember(a)
    assert finder.check(a) is not None
    assert finder.check(b) is not None
    assert len(finder.emails) == 2


def test_fingerprinted_adds_match_adds_of_users_through_growth() -> None:
    by_user, by_fingerprints = DuplicateFinder(expected=4), DuplicateFinder(expected=4)
    users: list[dict[str, object]] = []
    for i in range(3_000):
        user: dict[str, object] = {"email": f"U{i % 1_700}@Example.com"}
        if i % 3:
            user["user_id"] = f"id{i % 2_300}"
        users.append(user)
    for user in users:
        found = by_fingerprints.add_fingerprints(*key_fingerprints(user))
        assert found == by_user.add(user)
    assert len(by_user.emails) == len(by_fingerprints.emails)
    assert len(by_user.user_ids) == len(by_fingerprints.user_ids)
    checked = DuplicateFinder()
    fps = key_fingerprints(users[1])  # email and user_id
    assert checked.add_fingerprints(*fps, store=False) is None
    assert checked.add_fingerprints(*fps, store=False) is None  # a check stores nothing
    assert checked.add_fingerprints(*fps) is None
    problem = checked.add_fingerprints(*fps, store=False)
    assert problem is not None
    assert problem.reason == "duplicate_email"
    assert checked.add_fingerprints(0, fps[1]) is not None  # the user_id alone repeats


# Fingerprints drawn from a small pool, so batches repeat keys (within and across batches), with
# 0 for "no such key" and negative values (slots are Python's modulo of them).
_FPS = st.sampled_from([0, 1, -1, 7, -7, 2**63 - 1, -(2**63), *range(-40, 40, 3)])
_BATCHES = st.lists(
    st.lists(st.tuples(_FPS, _FPS), max_size=40).map(
        lambda users: (array("q", [e for e, _ in users]), array("q", [u for _, u in users]))
    ),
    max_size=8,
)


@pytest.mark.skipif(dedupe._native is None, reason="the C accelerator is not built here")
@settings(max_examples=300)
@given(_BATCHES, st.integers(1, 30))
def test_the_c_accelerator_matches_the_python_loop(
    batches: list[tuple[array[int], array[int]]], expected: int
) -> None:
    native, python = DuplicateFinder(expected), DuplicateFinder(expected)
    for emails, user_ids in batches:
        assert native.add_batch(emails, user_ids) == _python_add_batch(python, emails, user_ids)
        for mine, theirs in ((native.emails, python.emails), (native.user_ids, python.user_ids)):
            assert mine._table == theirs._table  # the same slots: the two may share a table
            assert len(mine) == len(theirs)


def _python_add_batch(
    finder: DuplicateFinder, emails: array[int], user_ids: array[int]
) -> list[tuple[int, Problem]]:
    native, dedupe._native = dedupe._native, None
    try:
        return finder.add_batch(emails, user_ids)
    finally:
        dedupe._native = native


def test_the_c_accelerator_refuses_what_is_not_an_int64_array() -> None:
    if dedupe._native is None:
        pytest.skip("the C accelerator is not built here")
    table = array("q", [0]) * 16
    with pytest.raises(TypeError, match="array\\('q'\\)"):
        dedupe._native.add_batch(table, table, array("i", [1]), array("i", [2]))
    with pytest.raises(ValueError, match="differ in length"):
        dedupe._native.add_batch(table, table, array("q", [1]), array("q", []))
