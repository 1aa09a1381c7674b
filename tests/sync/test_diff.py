"""Tonight's classification and the promotion of a night's results, offline (no API).

A night is diffed, planned with the normal planner, its chunks driven to `completed` through the
tracker by hand (with stored job errors), then promoted: exactly the users Auth0 took become synced.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.plan.schema import check_user
from orchestrator.rundir.claim import claim_new
from orchestrator.rundir.create import create_plan
from orchestrator.rundir.tracker import Tracker
from orchestrator.settings import PlanSettings, SourceSettings, UploadSettings
from orchestrator.sources.formats import Export
from orchestrator.sync.diff import DiffResult, diff_export, user_fingerprint, user_key
from orchestrator.sync.promote import night_outcome
from orchestrator.sync.state import SyncState

OPTIONS = PlanSettings(max_request_bytes=4_000, external_id_prefix="synctest")


def make_users(count: int, *, prefix: str = "user") -> list[dict[str, object]]:
    return [
        {
            "email": f"{prefix}{i}@Example.com",
            "user_id": f"{prefix}-{i:04d}",
            "name": f"User {i}",
            "user_metadata": {"n": i, "note": "x" * (i % 7)},
        }
        for i in range(count)
    ]


def write(path: Path, users: Sequence[object]) -> str:
    path.write_bytes(b"\n".join(orjson.dumps(u) for u in users) + b"\n")
    return str(path)


def diff(
    state: SyncState, source: str, *, record: bool = True, options: PlanSettings = OPTIONS
) -> tuple[DiffResult, list[dict[str, Any]], list[dict[str, Any]]]:
    send, rejects = io.BytesIO(), io.BytesIO()
    result = diff_export(
        Export(source, options.source),
        state,
        options,
        send=send,
        rejects=rejects,
        record_pending=record,
    )
    sent = [orjson.loads(line) for line in send.getvalue().splitlines()]
    rejected = [orjson.loads(line) for line in rejects.getvalue().splitlines()]
    return result, sent, rejected


def run_night(
    state: SyncState,
    tmp_path: Path,
    name: str,
    source: str,
    *,
    failed: dict[str, str] | None = None,
    incomplete: frozenset[int] = frozenset(),
    options: PlanSettings = OPTIONS,
) -> tuple[DiffResult, int]:
    """Diff, plan and "upload" a night by hand; `failed` maps an email to its job error code."""
    night_dir = tmp_path / name
    journal = claim_new(night_dir)
    night = state.begin_night(night_dir)
    send_path = night_dir / "sync-input.ndjson"
    with send_path.open("wb") as send:
        result = diff_export(
            Export(source, options.source),
            state,
            options,
            send=send,
            rejects=None,
            record_pending=True,
        )
    state.finish_diff(night, result.next_slot, result.counts.as_json())
    if not result.counts.to_send:
        journal.close()
        state.close_night(night, {})
        return result, 0
    night_options = PlanSettings(
        max_request_bytes=OPTIONS.max_request_bytes,
        keep_user_id_prefix=True,
        external_id_prefix=OPTIONS.external_id_prefix,
    )
    tracker, _ = create_plan(str(send_path), night_dir, night_options, _settings(), claimed=journal)
    night = state.mark_uploading(night, tracker.manifest.run_id)
    complete_by_hand(tracker, night_dir, failed or {}, incomplete)
    tracker.close()
    outcome = night_outcome(night_dir, tracker.manifest)
    return result, state.promote(night, outcome.chunks, {}).synced


def _settings() -> UploadSettings:
    return UploadSettings(connection_id="con_AAAAAAAAAAAAAAAA", upsert=True)


def complete_by_hand(
    tracker: Tracker, run_dir: Path, failed: dict[str, str], incomplete: frozenset[int]
) -> None:
    """Every chunk (but `incomplete`) completes; users whose email is in `failed` fail."""
    for record in tracker.manifest.chunks:
        if record.index in incomplete:
            continue
        users = orjson.loads((run_dir / record.file).read_bytes())
        errors = [
            {"user": u, "errors": [{"code": failed[u["email"]], "message": "no"}]}
            for u in users
            if u["email"] in failed
        ]
        tracker.submitting(record.index)
        tracker.submitted(record.index, f"job_{record.index:016d}")
        summary = {"total": len(users), "inserted": len(users) - len(errors), "updated": 0}
        tracker.completed(record.index, {**summary, "failed": len(errors)})
        if errors:
            lines = b"".join(orjson.dumps({"chunk": record.index, **e}) + b"\n" for e in errors)
            (run_dir / "errors").mkdir(exist_ok=True)
            (run_dir / "errors" / f"{record.index:06d}.ndjson").write_bytes(lines)
            tracker.errors_saved(record.index)


def test_key_is_user_id_else_lower_cased_email() -> None:
    assert user_key({"email": "A@B.com", "user_id": "id-1"}) == "id-1"
    assert user_key({"email": "A@B.com"}) == "a@b.com"
    assert user_key({"email": "A@B.com", "user_id": ""}) == "a@b.com"
    assert user_key({"name": "no keys"}) is None


def test_fingerprint_ignores_key_order_and_sees_every_value() -> None:
    a = {"email": "a@b.com", "user_metadata": {"x": 1, "y": [1, 2]}}
    b = {"user_metadata": {"y": [1, 2], "x": 1}, "email": "a@b.com"}
    assert user_fingerprint(a) == user_fingerprint(b)
    assert len(user_fingerprint(a)) == 16
    assert user_fingerprint(a) != user_fingerprint({**a, "user_metadata": {"x": 1, "y": [2, 1]}})
    assert user_fingerprint(a) != user_fingerprint({**a, "email_verified": False})


def test_first_night_everything_is_new_and_sent_normalised(tmp_path: Path) -> None:
    users = make_users(5)
    users[0]["user_id"] = "auth0|user-0000"
    with SyncState.in_memory() as state:
        result, sent, rejected = diff(state, write(tmp_path / "u.ndjson", users))
        assert (result.counts.new, result.counts.changed, result.counts.unchanged) == (5, 0, 0)
        assert rejected == []
        assert sent[0]["user_id"] == "user-0000"  # normalised as `run` does
        assert [u["email"] for u in sent] == [u["email"] for u in users]
        assert state.pending_count() == 5
        assert result.next_slot == 5


def test_a_dry_diff_touches_nothing(tmp_path: Path) -> None:
    with SyncState.in_memory() as state:
        result, _, _ = diff(state, write(tmp_path / "u.ndjson", make_users(5)), record=False)
        assert result.counts.new == 5
        assert state.pending_count() == 0
        assert state.next_slot == 0


def test_nights_classify_new_changed_unchanged_missing_and_rejected(tmp_path: Path) -> None:
    users = make_users(40)
    with SyncState.in_memory() as state:
        _, synced = run_night(state, tmp_path, "n1", write(tmp_path / "n1.ndjson", users))
        assert synced == 40
        tonight: list[object] = [dict(u) for u in users[3:]]  # users 0-2 left the source
        tonight[0] = {**users[3], "name": "Renamed"}  # changed
        reordered = dict(reversed(list(users[4].items())))  # same content, other key order
        tonight[1] = reordered
        tonight[2] = {
            **users[5],
            "user_id": "auth0|" + str(users[5]["user_id"]),
        }  # normalised: same
        tonight[3] = {**users[6], "email": "not an email"}  # rejected, but present: not missing
        tonight.extend(make_users(2, prefix="fresh"))  # new
        tonight.append({**users[10]})  # repeats user 10: rejected as a duplicate
        result, sent, rejected = diff(state, write(tmp_path / "n2.ndjson", tonight))
        counts = result.counts
        assert (counts.new, counts.changed, counts.rejected) == (2, 1, 2)
        assert counts.unchanged == 37 - 1 - 1  # 37 present, one changed, one rejected
        assert [u["email"] for u in sent] == [
            "user3@Example.com",
            "fresh0@Example.com",
            "fresh1@Example.com",
        ]
        assert [r["reasons"][0]["reason"] for r in rejected] == [
            "invalid_email",
            "duplicate_email",
        ]
        missing = sorted(state.missing(result.seen))
        assert missing == ["user-0000", "user-0001", "user-0002"]


def test_only_users_their_job_took_become_synced(tmp_path: Path) -> None:
    users = make_users(60)
    with SyncState.in_memory() as state:
        source = write(tmp_path / "n1.ndjson", users)
        failed = {"user7@Example.com": "CONFLICT", "user30@Example.com": "MFA_FACTORS_FAILED"}
        result, synced = run_night(state, tmp_path, "n1", source, failed=failed)
        assert result.counts.new == 60
        assert synced == 58
        assert state.lookup(["user-0007", "user-0030"]) == {}
        # Next night the same export: exactly the two failed users are sent again.
        result, sent, _ = diff(state, source, record=False)
        assert (result.counts.new, result.counts.unchanged) == (2, 58)
        assert sorted(u["email"] for u in sent) == sorted(failed)


def test_users_of_an_unfinished_chunk_stay_unsynced(tmp_path: Path) -> None:
    users = make_users(60)
    with SyncState.in_memory() as state:
        source = write(tmp_path / "n1.ndjson", users)
        _, synced = run_night(state, tmp_path, "n1", source, incomplete=frozenset({1}))
        assert 0 < synced < 60
        result, sent, _ = diff(state, source, record=False)
        assert result.counts.new == 60 - synced
        assert len(sent) == 60 - synced


def test_a_failure_that_names_no_user_keeps_the_whole_chunk_unsynced(tmp_path: Path) -> None:
    users = make_users(10)
    with SyncState.in_memory() as state:
        night_dir = tmp_path / "n1"
        journal = claim_new(night_dir)
        night = state.begin_night(night_dir)
        send_path = night_dir / "sync-input.ndjson"
        with send_path.open("wb") as send:
            result = diff_export(
                Export(write(tmp_path / "u.ndjson", users), SourceSettings()),
                state,
                PlanSettings(external_id_prefix="synctest"),
                send=send,
                rejects=None,
                record_pending=True,
            )
        state.finish_diff(night, result.next_slot, {})
        options = PlanSettings(keep_user_id_prefix=True, external_id_prefix="synctest")
        tracker, _ = create_plan(str(send_path), night_dir, options, _settings(), claimed=journal)
        tracker.submitting(0)
        tracker.submitted(0, "job_0000000000000000")
        tracker.completed(0, {"total": 10, "inserted": 9, "updated": 0, "failed": 1})
        (night_dir / "errors").mkdir()
        (night_dir / "errors" / "000000.ndjson").write_bytes(
            orjson.dumps({"chunk": 0, "user": None, "errors": []}) + b"\n"
        )
        tracker.errors_saved(0)
        tracker.close()
        outcome = night_outcome(night_dir, tracker.manifest)
        assert outcome.untraceable_chunks == [0]
        assert state.promote(night, outcome.chunks, {}).synced == 0


@pytest.mark.parametrize("keep_prefix", [False, True])
def test_the_sent_file_plans_to_exactly_the_pending_users(
    tmp_path: Path, keep_prefix: bool
) -> None:
    users = make_users(30)
    for user in users[::3]:
        user["user_id"] = "auth0|" + str(user["user_id"])
    options = PlanSettings(
        max_request_bytes=3_000, keep_user_id_prefix=keep_prefix, external_id_prefix="t"
    )
    with SyncState.in_memory() as state:
        _, sent, _ = diff(state, write(tmp_path / "u.ndjson", users), options=options)
        for user in sent:
            assert check_user(user) == []


def test_an_unchanged_text_is_told_without_judging_it_again(tmp_path: Path) -> None:
    users = make_users(30)
    with SyncState.in_memory() as state:
        source = write(tmp_path / "n1.ndjson", users)
        run_night(state, tmp_path, "n1", source)
        again, _, _ = diff(state, source, record=False)
        assert again.counts.unchanged == again.unchanged_by_text == 30
        # Same content in another key order: unchanged by content, not by text; its text is
        # recorded, so the next night tells it by its text.
        reordered = write(tmp_path / "n3.ndjson", [dict(reversed(list(u.items()))) for u in users])
        night = state.begin_night(tmp_path / "n3")
        result, sent, _ = diff(state, reordered)
        assert (result.counts.unchanged, result.unchanged_by_text, sent) == (30, 0, [])
        state.finish_diff(night, result.next_slot, {})
        result, _, _ = diff(state, reordered, record=False)
        assert result.unchanged_by_text == 30


def test_other_switches_never_pass_a_text_for_unchanged(tmp_path: Path) -> None:
    users = make_users(10)
    with SyncState.in_memory() as state:
        source = write(tmp_path / "n1.ndjson", users)
        run_night(state, tmp_path, "n1", source)
        result, _, _ = diff(
            state, source, record=False, options=PlanSettings(drop_unknown_fields=True)
        )
        assert result.unchanged_by_text == 0
        assert result.counts.unchanged == 10  # judged again: the same users


def test_a_repeated_unchanged_user_is_still_a_duplicate(tmp_path: Path) -> None:
    users = make_users(5)
    with SyncState.in_memory() as state:
        run_night(state, tmp_path, "n1", write(tmp_path / "n1.ndjson", users))
        repeated = write(tmp_path / "n2.ndjson", [*users, users[2]])
        result, _, rejected = diff(state, repeated, record=False)
        assert result.unchanged_by_text == 5
        assert [r["reasons"][0]["reason"] for r in rejected] == ["duplicate_email"]


def test_a_source_format_is_read_the_same_way_on_the_fast_path(tmp_path: Path) -> None:
    rows = [
        {"id": f"id-{i}", "email": f"u{i}@example.com", "phone": f"1555555{i:04d}", "aud": "x"}
        for i in range(6)
    ]
    rows.append({"id": "gone", "email": "gone@example.com", "deleted_at": "2024-01-01"})
    options = PlanSettings(
        max_request_bytes=4_000,
        external_id_prefix="synctest",
        source=SourceSettings(format="supabase"),
        passwords="allow",
    )
    with SyncState.in_memory() as state:
        first, synced = run_night(
            state, tmp_path, "n1", write(tmp_path / "n1.ndjson", rows), options=options
        )
        assert (first.counts.new, synced) == (6, 6)
        repeated = write(tmp_path / "n2.ndjson", [*rows, rows[2]])
        result, sent, rejected = diff(state, repeated, record=False, options=options)
        assert (result.unchanged_by_text, result.counts.unchanged, sent) == (6, 6, [])
        assert [r["reasons"][0]["reason"] for r in rejected] == ["duplicate_email"]
        assert rejected[0]["user"] == rows[2]  # as read, not as mapped
        counts: dict[str, Any] = result.counts.as_json()
        # Every record converted once: the duplicate's fields are not counted twice.
        assert counts["source"]["dropped"] == {"aud": 7}
        assert counts["skipped_by_reason"] == {"deleted": 1}
        assert counts["users_read"] == 8


def test_another_mapping_never_passes_a_text_for_unchanged(tmp_path: Path) -> None:
    rows = [{"id": f"id-{i}", "email": f"u{i}@example.com"} for i in range(4)]
    supabase = PlanSettings(source=SourceSettings(format="supabase"), passwords="allow")
    mapped = PlanSettings(
        source=SourceSettings(format="supabase", constants=(("app_metadata.wave", 2),)),
        passwords="allow",
    )
    with SyncState.in_memory() as state:
        source = write(tmp_path / "n1.ndjson", rows)
        run_night(state, tmp_path, "n1", source, options=supabase)
        result, sent, _ = diff(state, source, record=False, options=mapped)
        assert result.unchanged_by_text == 0
        assert result.counts.changed == 4
        assert len(sent) == 4


def test_a_changed_user_is_sent_without_its_password_a_new_one_with_it(tmp_path: Path) -> None:
    bcrypt = "$2b$10$" + "D" * 53
    users = [{**user, "password_hash": bcrypt} for user in make_users(3)]
    with SyncState.in_memory() as state:
        run_night(state, tmp_path, "n1", write(tmp_path / "n1.ndjson", users))
        changed = [
            {**users[0], "name": "Renamed"},
            *users[1:],
            {**make_users(4)[3], "password_hash": bcrypt},
        ]
        result, sent, _ = diff(state, write(tmp_path / "n2.ndjson", changed), record=False)
        assert (result.counts.changed, result.counts.new) == (1, 1)
        by_email = {user["email"]: user for user in sent}
        # Auth0 sets a hash on a user's first import only: an upsert carrying one fails.
        assert "password_hash" not in by_email["user0@Example.com"]
        assert by_email["user3@Example.com"]["password_hash"] == bcrypt
