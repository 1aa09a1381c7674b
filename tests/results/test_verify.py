"""Post-import verification: the sample (only imported users, few chunk files read, no password
material), the comparison, and `verify` / `run --verify` end to end against the sandbox.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from orchestrator.auth0.credentials import Credentials
from orchestrator.errors import SettingsError
from orchestrator.outcomes import Outcome
from orchestrator.results.verify import (
    PROFILE_FIELDS,
    SampledUser,
    compare_profile,
    draw_sample,
    judge_user,
    same_json,
    verify_run,
)
from orchestrator.rundir.manifest import (
    MANIFEST_VERSION,
    ChunkRecord,
    InputInfo,
    Manifest,
    PlanTotals,
)
from orchestrator.rundir.tracker import load_manifest
from orchestrator.sandbox import (
    DATABASE_CONNECTION_ID,
    DATABASE_CONNECTION_NAME,
    FaultPlan,
    SandboxServer,
    SandboxSettings,
    SandboxThread,
)
from orchestrator.settings import ClientSettings, RetryPolicy, VerifySettings
from tests.run_helpers import FAST, client_env, run_args, run_cli, sandbox
from tests.rundir.test_manifest import run_settings

HASH = "$2b$10$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"
LOOKUPS = "/api/v2/users-by-email"


def rich_users(count: int, *, prefix: str = "user") -> list[dict[str, object]]:
    """Users with every compared field, mixed-case emails/usernames and a password hash."""
    return [
        {
            "email": f"{prefix.title()}{i}@Example.com"
            if i % 5 == 0
            else f"{prefix}{i}@example.com",
            "email_verified": i % 2 == 0,
            "user_id": f"{prefix}-{i:05d}",
            "username": f"{prefix.title()}_{i}",
            "given_name": f"Given{i}",
            "family_name": "Family",
            "name": f"Given{i} Family",
            "phone_number": f"+1212555{i:04d}",
            "blocked": i % 7 == 0,
            "app_metadata": {"plan": "gold", "tier": i % 3},
            "user_metadata": {"langs": ["en", "fr"], "score": 1.5},
            "password_hash": HASH,
        }
        for i in range(count)
    ]


def write_export(path: Path, users: list[dict[str, object]]) -> Path:
    path.write_bytes(orjson.dumps(users))
    return path


def verify_file(run_dir: Path) -> dict[str, object]:
    data = orjson.loads((run_dir / "verify.json").read_bytes())
    assert isinstance(data, dict)
    return data


def emails(items: object) -> set[str]:
    assert isinstance(items, list)
    return {str(item["email"]).lower() for item in items}


def lookups(server: SandboxThread | SandboxServer) -> int:
    return sum(1 for r in server.state.requests if r.path == LOOKUPS)


# -- end to end -------------------------------------------------------------------------------


def test_run_with_verify_finds_every_sampled_user_and_writes_no_password(tmp_path: Path) -> None:
    with sandbox(FAST) as server:
        source = write_export(tmp_path / "users.json", rich_users(200))
        run_dir = tmp_path / "run"
        done = run_cli(run_args(source, run_dir, "--verify", "40"), client_env(server))
        assert done.returncode == 0, done.stderr
        result = verify_file(run_dir)
        assert (result["population"], result["sampled"], result["found"]) == (200, 40, 40)
        assert (result["missing"], result["differing"], result["unchecked"]) == (0, 0, 0)
        assert result["found_ratio"] == 1.0
        assert lookups(server) == 40
        assert (run_dir / "verify.json").stat().st_mode & 0o777 == 0o600
        raw = (run_dir / "verify.json").read_bytes() + done.stdout.encode() + done.stderr.encode()
        assert b"$2b$" not in raw
        assert b"password_hash" not in raw  # the plan's counts of credential kinds are no secret
        events = [orjson.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        assert events[-1]["event"] == "verify"
        assert any(e["event"] == "summary" and e["inserted"] == 200 for e in events)

        # `verify` alone, with a sample larger than the run: every user is looked up.
        again = run_cli(
            ["verify", "--run-dir", run_dir, "--sample", "1000", "--max-rps", "200"],
            client_env(server),
        )
        assert again.returncode == 0, again.stderr
        result = verify_file(run_dir)
        assert (result["sampled"], result["found"]) == (200, 200)


def test_verify_reports_the_users_the_sandbox_lost(tmp_path: Path) -> None:
    users = rich_users(120)
    lost = {str(users[i]["email"]).lower() for i in (0, 3, 44, 45, 119)}
    with sandbox(FAST, faults=FaultPlan(lose_users=frozenset(lost))) as server:
        source = write_export(tmp_path / "users.json", users)
        run_dir = tmp_path / "run"
        done = run_cli(run_args(source, run_dir, "--verify", "1000"), client_env(server))
        # Every job said "inserted": only verification can tell that some users are not there.
        assert done.returncode == 1, done.stderr
        assert all((c.summary or {}).get("failed") == 0 for c in load_manifest(run_dir).chunks)
        result = verify_file(run_dir)
        assert (result["sampled"], result["missing"], result["found"]) == (120, 5, 115)
        assert emails(result["missing_users"]) == lost
        missing = result["missing_users"]
        assert isinstance(missing, list)
        assert all({"chunk", "position", "email", "user_id"} <= item.keys() for item in missing)

        alone = run_cli(
            ["verify", "--run-dir", run_dir, "--sample", "1000", "--max-rps", "200",
             "--log-format", "text"],
            client_env(server),
        )  # fmt: skip
        assert alone.returncode == 1
        assert re.search(r"^  missing +5$", alone.stdout, re.MULTILINE), alone.stdout
        assert emails(verify_file(run_dir)["missing_users"]) == lost


def test_users_the_job_failed_are_never_sampled(tmp_path: Path) -> None:
    users = rich_users(90)
    poisoned = {str(users[i]["email"]).lower(): "CONFLICT_EMAIL" for i in (2, 50, 51)}
    with sandbox(FAST, faults=FaultPlan(poisoned_users=poisoned)) as server:
        source = write_export(tmp_path / "users.json", users)
        run_dir = tmp_path / "run"
        assert run_cli(run_args(source, run_dir), client_env(server)).returncode == 1
        done = run_cli(
            ["verify", "--run-dir", run_dir, "--sample", "1000", "--max-rps", "200"],
            client_env(server),
        )
        assert done.returncode == 0, done.stdout + done.stderr
        result = verify_file(run_dir)
        assert (result["population"], result["sampled"], result["found"]) == (87, 87, 87)
        assert lookups(server) == 87


def test_fields_changed_after_the_import_are_reported_as_differing(tmp_path: Path) -> None:
    users = rich_users(60)
    with sandbox(FAST) as server:
        run_dir = tmp_path / "run"
        source = write_export(tmp_path / "users.json", users)
        assert run_cli(run_args(source, run_dir), client_env(server)).returncode == 0
        # Someone else's upsert changes two users after our run.
        changed = [
            {**users[7], "given_name": "Changed"},
            {**users[30], "user_metadata": {"langs": ["en"], "score": 1.5}},
        ]
        for user in changed:  # an upsert may not carry a password hash the user already has
            user.pop("password_hash", None)
        changed_source = write_export(tmp_path / "changed.json", changed)
        upsert = run_cli(
            run_args(changed_source, tmp_path / "other", "--upsert"), client_env(server)
        )
        assert upsert.returncode == 0, upsert.stderr
        done = run_cli(
            ["verify", "--run-dir", run_dir, "--sample", "1000", "--max-rps", "200"],
            client_env(server),
        )
        assert done.returncode == 1
        result = verify_file(run_dir)
        assert (result["found"], result["missing"], result["differing"]) == (60, 0, 2)
        differing = {item["email"]: item["fields"] for item in result["differing_users"]}  # type: ignore[attr-defined]
        assert differing[users[7]["email"]] == [
            {"field": "given_name", "expected": "Given7", "actual": "Changed"}
        ]
        assert [f["field"] for f in differing[users[30]["email"]]] == ["user_metadata"]


def test_verify_without_read_users_exits_2_at_once(tmp_path: Path) -> None:
    with sandbox(FAST, scopes=("create:users", "read:connections")) as server:
        run_dir = tmp_path / "run"
        source = write_export(tmp_path / "users.json", rich_users(20))
        assert run_cli(run_args(source, run_dir), client_env(server)).returncode == 0
        started = time.monotonic()
        done = run_cli(["verify", "--run-dir", run_dir], client_env(server))
        assert done.returncode == 2
        assert time.monotonic() - started < 5.0
        assert "read:users" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not (run_dir / "verify.json").exists()
        assert lookups(server) == 0


def test_an_opaque_token_refused_on_lookup_also_exits_2(tmp_path: Path) -> None:
    token = "opaque-token-without-read-users"
    scopes = ("create:users", "read:connections")
    with sandbox(FAST, scopes=scopes, static_token=token) as server:
        run_dir = tmp_path / "run"
        env = client_env(server, static_token=token)
        source = write_export(tmp_path / "users.json", rich_users(20))
        assert run_cli(run_args(source, run_dir), env).returncode == 0
        done = run_cli(["verify", "--run-dir", run_dir, "--max-rps", "200"], env)
        assert done.returncode == 2, done.stderr
        assert "read:users" in done.stderr
        assert token not in done.stderr
        assert not (run_dir / "verify.json").exists()


def test_verify_needs_a_run_directory(tmp_path: Path) -> None:
    with sandbox(FAST) as server:
        done = run_cli(["verify", "--run-dir", tmp_path / "nothing"], client_env(server))
        assert done.returncode == 2
        assert "no manifest.json" in done.stderr


async def test_lookups_stay_within_the_request_budget(tmp_path: Path) -> None:
    rps, sample = 20.0, 50
    run_dir, manifest, _ = synthetic_run(tmp_path, [30, 30])
    async with SandboxServer(SandboxSettings()) as server:
        credentials = Credentials(
            base_url=server.base_url,
            audience=f"https://{server.settings.domain}/api/v2/",
            client_id=server.settings.client_id,
            client_secret=server.settings.client_secret,
        )
        started = time.monotonic()
        result = await verify_run(
            run_dir,
            manifest,
            credentials,
            ClientSettings(max_rps=rps),
            VerifySettings(sample=sample, concurrency=8, seed=1),
        )
        elapsed = time.monotonic() - started
    # Nobody was imported into this sandbox: every sampled user is missing.
    assert result.count("missing") == sample
    requests = server.state.requests
    assert sum(1 for r in requests if r.path == LOOKUPS) == sample
    # AsyncLimiter(20, 1): a burst of 20, then 20 per second, every request counted.
    assert elapsed >= (len(requests) - rps) / rps * 0.9
    for first in requests:
        window = [r for r in requests if first.t <= r.t < first.t + 1.0]
        assert len(window) <= 2 * rps + 1


async def test_a_lookup_that_keeps_failing_is_unchecked_not_missing(tmp_path: Path) -> None:
    run_dir, manifest, _ = synthetic_run(tmp_path, [6])
    async with SandboxServer(SandboxSettings()) as server:
        server.state.faults.fail_requests(4, status=503, path_prefix=LOOKUPS)
        credentials = Credentials(
            base_url=server.base_url,
            audience=f"https://{server.settings.domain}/api/v2/",
            client_id=server.settings.client_id,
            client_secret=server.settings.client_secret,
        )
        retry = RetryPolicy(attempts=2, wait_initial=0.01, wait_max=0.02)
        result = await verify_run(
            run_dir,
            manifest,
            credentials,
            ClientSettings(max_rps=100, retry=retry),
            VerifySettings(sample=6, concurrency=1, seed=0),
        )
    unchecked = [c for c in result.checks if c.outcome == "unchecked"]
    assert len(unchecked) == 2
    assert all("503" in (c.error or "") for c in unchecked)
    assert result.count("missing") == 4  # nobody was imported into this sandbox
    assert result.outcome is Outcome.USERS_FAILED
    only_unchecked = replace(result, checks=unchecked)
    assert only_unchecked.outcome is Outcome.UNFINISHED
    assert only_unchecked.summary()["found_ratio"] is None


# -- the sample -------------------------------------------------------------------------------


def synthetic_run(
    tmp_path: Path,
    sizes: list[int],
    *,
    failed: dict[int, list[int]] | None = None,
    statuses: dict[int, str] | None = None,
) -> tuple[Path, Manifest, list[list[dict[str, object]]]]:
    """A run directory as a finished run leaves it: chunk files, errors files, the manifest."""
    run_dir = tmp_path / "run"
    (run_dir / "chunks").mkdir(parents=True)
    (run_dir / "errors").mkdir()
    failed = failed or {}
    statuses = statuses or {}
    chunks: list[ChunkRecord] = []
    all_users: list[list[dict[str, object]]] = []
    for index, size in enumerate(sizes):
        users: list[dict[str, object]] = [
            {"email": f"C{index}U{i}@example.com", "user_id": f"c{index}-{i}",
             "given_name": "G", "password_hash": HASH}
            for i in range(size)
        ]  # fmt: skip
        data = orjson.dumps(users)
        (run_dir / f"chunks/{index:06d}.json").write_bytes(data)
        bad = failed.get(index, [])
        lines = [
            orjson.dumps(
                {"chunk": index, "job_id": "job_x", "external_id": "x",
                 "user": {"email": str(users[i]["email"]).lower(), "password_hash": "*****"},
                 "errors": [{"code": "CONFLICT_EMAIL", "message": "exists"}]}
            )
            for i in bad
        ]  # fmt: skip
        if bad:
            (run_dir / f"errors/{index:06d}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
        chunks.append(
            ChunkRecord(
                index=index,
                file=f"chunks/{index:06d}.json",
                sha256=hashlib.sha256(data).hexdigest(),
                bytes=len(data),
                users=size,
                first_position=0,
                last_position=max(size - 1, 0),
                external_id=f"t-{index:06d}",
                status=statuses.get(index, "completed"),
                summary={
                    "total": size,
                    "inserted": size - len(bad),
                    "updated": 0,
                    "failed": len(bad),
                },
                errors_saved=True,
            )
        )
        all_users.append(users)
    manifest = Manifest(
        version=MANIFEST_VERSION,
        run_id="test-run",
        created_at="2026-01-01T00:00:00.000Z",
        input=InputInfo(path="users.json", bytes=0, sha256="0" * 64, format="json"),
        settings=run_settings(DATABASE_CONNECTION_ID),
        totals=PlanTotals(),
        chunks=chunks,
    )
    return run_dir, manifest, all_users


def test_the_sample_is_every_eligible_user_when_asked_for_more(tmp_path: Path) -> None:
    run_dir, manifest, users = synthetic_run(
        tmp_path, [5, 50, 1, 30, 8], failed={1: [0, 49]}, statuses={4: "failed"}
    )
    sample = draw_sample(run_dir, manifest, 1000, random.Random(1))
    assert sample.population == 5 + 48 + 1 + 30
    assert len(sample.users) == sample.population
    drawn = {u.email.lower() for u in sample.users}
    assert str(users[1][0]["email"]).lower() not in drawn  # failed by its job
    assert not any(e.startswith("c4u") for e in drawn)  # its chunk never completed
    assert all("password_hash" not in u.fields for u in sample.users)
    assert all(users[u.chunk][u.position]["email"] == u.email for u in sample.users)


def test_a_small_sample_reads_few_chunk_files_and_is_reproducible(tmp_path: Path) -> None:
    run_dir, manifest, _ = synthetic_run(tmp_path, [10] * 300)
    sample = draw_sample(run_dir, manifest, 5, random.Random(7))
    assert len(sample.users) == 5
    assert sample.chunks_read <= 5
    again = draw_sample(run_dir, manifest, 5, random.Random(7))
    assert [(u.chunk, u.position) for u in again.users] == [
        (u.chunk, u.position) for u in sample.users
    ]


def test_every_imported_user_is_equally_likely(tmp_path: Path) -> None:
    run_dir, manifest, _ = synthetic_run(tmp_path, [1, 9])
    rng = random.Random(3)
    counts = Counter(draw_sample(run_dir, manifest, 1, rng).users[0].chunk for _ in range(2000))
    assert 0.07 < counts[0] / 2000 < 0.13  # 1 user in 10


def test_chunks_that_cannot_be_trusted_are_skipped_with_a_reason(tmp_path: Path) -> None:
    run_dir, manifest, _ = synthetic_run(tmp_path, [4, 4, 4, 4], failed={1: [0], 2: [0]})
    manifest.chunks[1].errors_saved = False  # errors never fetched
    (run_dir / "errors/000002.ndjson").write_bytes(  # a failed job without per-user detail
        orjson.dumps({"chunk": 2, "user": None, "errors": [], "detail": "failed"}) + b"\n"
    )
    (run_dir / "chunks/000003.json").write_bytes(b"[]")  # changed after it was sent
    sample = draw_sample(run_dir, manifest, 100, random.Random(0))
    reasons = {item["chunk"]: str(item["reason"]) for item in sample.skipped_chunks}
    assert set(reasons) == {1, 2, 3}
    assert "orchestrator report" in reasons[1]
    assert "without naming" in reasons[2]
    assert "changed" in reasons[3]
    assert {u.chunk for u in sample.users} == {0}


# -- the comparison ---------------------------------------------------------------------------


def profile(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "email": "ada@example.com",
        "user_id": "auth0|ada-1",
        "identities": [{"provider": "auth0", "connection": DATABASE_CONNECTION_NAME}],
        "name": "ada@example.com",
        "nickname": "ada",
        "email_verified": False,
    }
    base.update(fields)
    return base


def test_only_fields_the_import_sent_are_compared() -> None:
    sent = {"email": "Ada@example.com", "given_name": "Ada", "username": "Ada_L"}
    assert compare_profile(sent, profile(given_name="Ada", username="ada_l"), PROFILE_FIELDS) == []
    differences = compare_profile(sent, profile(username="ada_l"), PROFILE_FIELDS)
    assert [(d.field, d.expected, d.actual) for d in differences] == [("given_name", "Ada", None)]


def test_json_equality_is_strict_about_booleans_and_deep_in_metadata() -> None:
    assert same_json({"a": [1, {"b": True}]}, {"a": [1, {"b": True}]})
    assert not same_json({"a": [1, {"b": True}]}, {"a": [1, {"b": 1}]})
    assert not same_json(True, 1)
    assert same_json(1, 1.0)
    assert not same_json({"a": 1}, {"a": 1, "b": 2})
    assert not same_json([1, 2], [1])


def test_the_user_of_the_target_connection_with_the_imported_id_is_judged() -> None:
    user = SampledUser(0, 0, {"email": "ada@example.com", "user_id": "ada-1", "given_name": "Ada"})
    other_connection = profile(
        user_id="auth0|zzz",
        given_name="Ada",
        identities=[{"provider": "auth0", "connection": "Other-DB"}],
    )
    social = profile(user_id="google-oauth2|1", identities=[{"provider": "google-oauth2"}])
    assert (
        judge_user(
            user, [other_connection, social], PROFILE_FIELDS, DATABASE_CONNECTION_NAME
        ).outcome
        == "missing"
    )
    mine, twin = profile(given_name="Ada"), profile(user_id="auth0|ada-2", given_name="Eve")
    verdict = judge_user(user, [twin, mine], PROFILE_FIELDS, DATABASE_CONNECTION_NAME)
    assert (verdict.outcome, verdict.auth0_user_id) == ("found", "auth0|ada-1")
    verdict = judge_user(user, [twin], PROFILE_FIELDS, None)
    assert verdict.outcome == "differing"
    assert verdict.to_json()["fields"] == [
        {"field": "given_name", "expected": "Ada", "actual": "Eve"}
    ]


def test_settings_refuse_an_empty_sample() -> None:
    with pytest.raises(SettingsError, match="sample 0") as caught:
        VerifySettings(sample=0)
    assert caught.value.field == "sample"
