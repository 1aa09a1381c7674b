"""Tests of the compact seen-key set and the per-user duplicate check."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.plan.dedupe import (
    DUPLICATE_EMAIL,
    DUPLICATE_USER_ID,
    DuplicateFinder,
    SeenKeys,
    fingerprint,
)
from orchestrator.plan.schema import REASONS


def test_add_reports_repeats_only() -> None:
    seen = SeenKeys()
    assert seen.add(fingerprint("a@example.com")) is False
    assert seen.add(fingerprint("b@example.com")) is False
    assert seen.add(fingerprint("a@example.com")) is True
    assert len(seen) == 2
    assert "a@example.com" in seen
    assert "c@example.com" not in seen
    assert 5 not in seen


def test_a_lookup_without_storing_stores_nothing() -> None:
    seen = SeenKeys()
    assert seen.add(fingerprint("a"), store=False) is False
    assert len(seen) == 0
    assert "a" not in seen


def test_fingerprint_is_never_zero() -> None:
    keys = ["", *(f"k{i}" for i in range(999)), "\ud800"]
    assert all(-(2**63) <= fingerprint(key) < 2**63 and fingerprint(key) for key in keys)
    assert fingerprint("jane@example.com") == fingerprint("jane@example.com")


def test_growth_keeps_every_key_and_memory_stays_compact() -> None:
    seen = SeenKeys(expected=16)
    keys = [fingerprint(f"user{i}@example.com") for i in range(20_000)]
    assert not any(seen.add(key) for key in keys)
    assert all(seen.add(key) for key in keys)
    assert len(seen) == len(keys)
    # 8 bytes per slot at 40-80% load: well under a set of str (~100 bytes per key).
    assert 8 <= seen.memory_bytes / len(seen) <= 24


def test_expected_size_avoids_growth() -> None:
    seen = SeenKeys(expected=1000)
    before = seen.memory_bytes
    for i in range(1000):
        seen.add(fingerprint(str(i)))
    assert seen.memory_bytes == before


@settings(max_examples=50, deadline=None)
@given(keys=st.lists(st.text(max_size=8), max_size=300), expected=st.integers(1, 64))
def test_seen_keys_agrees_with_a_set(keys: list[str], expected: int) -> None:
    seen, reference = SeenKeys(expected), set()
    for key in keys:
        assert seen.add(fingerprint(key)) is (key in reference)
        reference.add(key)
    assert len(seen) == len(reference)


def test_duplicate_email_is_case_insensitive() -> None:
    finder = DuplicateFinder()
    assert finder.add("Jane@Example.com", "u1") is None
    assert finder.add("jane@example.COM", "u2") is DUPLICATE_EMAIL


def test_duplicate_user_id_is_exact() -> None:
    finder = DuplicateFinder()
    assert finder.add("a@example.com", "u1") is None
    assert finder.add("b@example.com", "U1") is None
    assert finder.add("c@example.com", "u1") is DUPLICATE_USER_ID


def test_email_is_reported_before_user_id() -> None:
    finder = DuplicateFinder()
    assert finder.add("a@example.com", "u1") is None
    assert finder.add("a@example.com", "u1") is DUPLICATE_EMAIL


def test_users_without_user_id_only_compare_emails() -> None:
    finder = DuplicateFinder()
    assert finder.add("a@example.com", None) is None
    assert finder.add("b@example.com", None) is None
    assert finder.add("c@example.com", "") is None


def test_a_user_not_kept_blocks_nothing() -> None:
    finder = DuplicateFinder()
    assert finder.add("a@example.com", "u1", keep=False) is None
    assert finder.add("a@example.com", "u1") is None  # the first was refused for another reason
    assert finder.add("a@example.com", "u2") is DUPLICATE_EMAIL


def test_a_duplicate_user_id_does_not_take_the_email() -> None:
    finder = DuplicateFinder()
    assert finder.add("a@example.com", "u1") is None
    assert finder.add("b@example.com", "u1") is DUPLICATE_USER_ID
    assert finder.add("b@example.com", "u2") is None


def test_memory_bytes_counts_both_tables() -> None:
    finder = DuplicateFinder(expected=100)
    assert finder.memory_bytes == finder.emails.memory_bytes + finder.user_ids.memory_bytes


def test_the_problems_are_documented_reasons() -> None:
    for problem in (DUPLICATE_EMAIL, DUPLICATE_USER_ID):
        assert problem.reason in REASONS
        assert problem.path in ("/email", "/user_id")
