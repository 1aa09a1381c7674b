"""Post-import verification: look a random sample of imported users up in Auth0, compare profiles.

Owns the sample (users of completed chunks that no job error lists, drawn from the manifest's counts
so only the chunks it lands in are read), the field comparison, DIR/verify.json and `orchestrator
verify`. Password material is never read into the sample, compared, logged or written.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import anyio
import orjson

from orchestrator.auth0.client import ApiClient
from orchestrator.auth0.credentials import Credentials
from orchestrator.auth0.token import TokenInfo
from orchestrator.errors import ApiError, AuthError, ConfigError
from orchestrator.events import EventSink, discard
from orchestrator.fsutil import utc_now_iso, write_private_atomic
from orchestrator.outcomes import Outcome
from orchestrator.rundir.layout import VERIFY, errors_file
from orchestrator.rundir.manifest import ChunkRecord, Manifest
from orchestrator.settings import ClientSettings, VerifySettings

#: Profile fields compared (never password_hash, custom_password_hash or mfa_factors).
PROFILE_FIELDS: Final = (
    "email_verified", "given_name", "family_name", "name", "nickname", "picture", "username",
    "phone_number", "blocked", "app_metadata", "user_metadata",
)  # fmt: skip
#: What an upsert can change on an existing user (reference §7, §11); an upsert run compares only
#: these, because the others keep the values of users that existed before.
UPSERTABLE_FIELDS: Final = (
    "email_verified", "given_name", "family_name", "name", "nickname", "picture", "app_metadata",
    "user_metadata",
)  # fmt: skip
_KEPT_FIELDS: Final = ("email", "user_id", *PROFILE_FIELDS)
#: Users listed per category in the text summary (verify.json lists them all).
_SHOWN: Final = 10

Verdict = Literal["found", "differing", "missing", "unchecked"]


@dataclass(frozen=True, slots=True)
class SampledUser:
    """One user drawn from a chunk file: its place and the fields verification may look at."""

    chunk: int
    position: int
    fields: dict[str, object]

    @property
    def email(self) -> str:
        return str(self.fields.get("email", ""))


@dataclass(frozen=True, slots=True)
class Sample:
    """The drawn users and what the draw could not use.

    Attributes:
        users: The sample, by chunk then position.
        population: Users eligible by the manifest: in completed chunks, minus those that failed.
        chunks_read: Chunk files read to draw it.
        skipped_chunks: Completed chunks left out, each {chunk, reason}.
    """

    users: list[SampledUser]
    population: int
    chunks_read: int
    skipped_chunks: list[dict[str, object]]


@dataclass(frozen=True, slots=True)
class FieldDifference:
    """A profile field whose value in Auth0 is not the one imported (None: absent in Auth0)."""

    field: str
    expected: object
    actual: object


@dataclass(frozen=True, slots=True)
class UserCheck:
    """The verdict on one sampled user."""

    user: SampledUser
    outcome: Verdict
    auth0_user_id: str | None = None
    differences: tuple[FieldDifference, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "chunk": self.user.chunk,
            "position": self.user.position,
            "email": self.user.email,
        }
        if "user_id" in self.user.fields:
            data["user_id"] = self.user.fields["user_id"]
        if self.auth0_user_id is not None:
            data["auth0_user_id"] = self.auth0_user_id
        if self.differences:
            data["fields"] = [
                {"field": d.field, "expected": d.expected, "actual": d.actual}
                for d in self.differences
            ]
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of one verification, as written to DIR/verify.json."""

    run_id: str
    connection_id: str | None
    checked_at: str
    compared_fields: tuple[str, ...]
    sample: Sample
    checks: list[UserCheck]
    seconds: float

    def count(self, outcome: Verdict) -> int:
        return sum(1 for check in self.checks if check.outcome == outcome)

    @property
    def outcome(self) -> Outcome:
        """OK every sampled user found and equal; USERS_FAILED some missing or differing;
        UNFINISHED some lookups failed."""
        if self.count("missing") or self.count("differing"):
            return Outcome.USERS_FAILED
        if self.count("unchecked"):
            return Outcome.UNFINISHED
        return Outcome.OK

    def summary(self) -> dict[str, object]:
        """The counts (no user data): the JSON summary event and the head of verify.json."""
        looked_up = len(self.checks) - self.count("unchecked")
        found = self.count("found") + self.count("differing")
        return {
            "run_id": self.run_id,
            "connection_id": self.connection_id,
            "checked_at": self.checked_at,
            "population": self.sample.population,
            "sampled": len(self.checks),
            "found": found,
            "missing": self.count("missing"),
            "differing": self.count("differing"),
            "unchecked": self.count("unchecked"),
            "found_ratio": round(found / looked_up, 4) if looked_up else None,
            "chunks_read": self.sample.chunks_read,
            "skipped_chunks": self.sample.skipped_chunks,
            "compared_fields": list(self.compared_fields),
            "seconds": round(self.seconds, 3),
        }

    def to_json(self) -> dict[str, object]:
        def listed(outcome: Verdict) -> list[dict[str, object]]:
            return [c.to_json() for c in self.checks if c.outcome == outcome]

        return {
            **self.summary(),
            "missing_users": listed("missing"),
            "differing_users": listed("differing"),
            "unchecked_users": listed("unchecked"),
        }


# -- the sample -------------------------------------------------------------------------------


def draw_sample(run_dir: Path, manifest: Manifest, size: int, rng: random.Random) -> Sample:
    """Draw up to `size` users uniformly from those the run imported.

    Eligible users are those of completed chunks that the job's errors do not list. Each chunk's
    eligible count comes from the manifest (users minus summary.failed), so positions are drawn
    without reading anything; only the chunk files the draw lands in are then read, one at a time:
    memory holds one chunk plus the sample, whatever the size of the run.
    """
    skipped: list[dict[str, object]] = []
    eligible: list[tuple[ChunkRecord, int]] = []
    for chunk in manifest.chunks:
        if chunk.status != "completed":
            continue
        failed = (chunk.summary or {}).get("failed", 0)
        if failed and not chunk.errors_saved:
            reason = "its failed users are not known yet: run `orchestrator report` to fetch them"
            skipped.append({"chunk": chunk.index, "reason": reason})
        elif chunk.users - failed > 0:
            eligible.append((chunk, chunk.users - failed))
    bounds = list(itertools.accumulate(weight for _, weight in eligible))
    population = bounds[-1] if bounds else 0
    # random.sample over a range draws k distinct numbers in O(k), not O(population).
    draws = rng.sample(range(population), min(size, population))
    per_chunk = Counter(bisect.bisect_right(bounds, draw) for draw in draws)
    users: list[SampledUser] = []
    for slot in sorted(per_chunk):
        chunk = eligible[slot][0]
        try:
            candidates = _eligible_users(run_dir, chunk)
        except _Unusable as exc:
            skipped.append({"chunk": chunk.index, "reason": str(exc)})
            continue
        picked = rng.sample(candidates, min(per_chunk[slot], len(candidates)))
        users += [
            SampledUser(chunk.index, position, _kept(user)) for position, user in sorted(picked)
        ]
    return Sample(users, population, len(per_chunk), skipped)


class _Unusable(Exception):
    """A chunk's files cannot be trusted for the sample; the message says why."""


def _eligible_users(run_dir: Path, chunk: ChunkRecord) -> list[tuple[int, Mapping[str, object]]]:
    """(position, user) of the chunk's users that its job did not fail."""
    path = run_dir / chunk.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _Unusable(f"cannot read {path}: {exc.strerror or exc}") from exc
    if hashlib.sha256(data).hexdigest() != chunk.sha256:
        raise _Unusable(f"{path} has changed since it was sent")
    users = orjson.loads(data)
    if not isinstance(users, list):
        raise _Unusable(f"{path} is not a JSON array")
    failed = _failed_emails(run_dir, chunk)
    return [
        (position, user)
        for position, user in enumerate(users)
        if isinstance(user, dict)
        and isinstance(user.get("email"), str)
        and user["email"].lower() not in failed
    ]


def _failed_emails(run_dir: Path, chunk: ChunkRecord) -> frozenset[str]:
    """Lower-cased emails of the users the chunk's job failed (DIR/errors/NNNNNN.ndjson)."""
    if not (chunk.summary or {}).get("failed", 0):
        return frozenset()
    path = errors_file(run_dir, chunk.index)
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise _Unusable(f"cannot read {path}: {exc.strerror or exc}") from exc
    emails: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        user = orjson.loads(line).get("user")
        if not isinstance(user, dict) or not isinstance(user.get("email"), str):
            raise _Unusable("the job failed users without naming them, so none can be sampled")
        emails.add(user["email"].lower())
    return frozenset(emails)


def _kept(user: Mapping[str, object]) -> dict[str, object]:
    """The fields verification may look at; password material is dropped here, at the source."""
    return {key: user[key] for key in _KEPT_FIELDS if key in user}


# -- the comparison ---------------------------------------------------------------------------


def compare_profile(
    expected: Mapping[str, object], actual: Mapping[str, object], fields: Sequence[str]
) -> list[FieldDifference]:
    """The `fields` the import sent (present in `expected`) whose value in Auth0 differs.

    Fields the import did not send are not compared (Auth0 fills name, nickname and picture
    itself). Usernames are compared case-insensitively: Auth0 stores them lower-cased.
    """
    differences: list[FieldDifference] = []
    for name in fields:
        if name not in expected:
            continue
        want, got = expected[name], actual.get(name)
        if name == "username" and isinstance(want, str) and isinstance(got, str):
            want, got = want.lower(), got.lower()
        if not same_json(want, got):
            differences.append(FieldDifference(name, expected[name], actual.get(name)))
    return differences


def same_json(a: object, b: object) -> bool:
    """JSON equality: like ==, but true/false never equal 1/0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def judge_user(
    user: SampledUser,
    profiles: Sequence[Mapping[str, object]],
    fields: Sequence[str],
    connection_name: str | None,
) -> UserCheck:
    """The verdict on `user` given what users-by-email returned for its email.

    Only database identities count, of the target connection when its name is known. The profile
    whose user_id is the imported one (``auth0|ID``) is preferred; otherwise the closest one.
    """
    candidates = [p for p in profiles if _in_connection(p, connection_name)]
    if not candidates:
        return UserCheck(user, "missing")
    user_id = user.fields.get("user_id")
    exact = [
        p for p in candidates if isinstance(user_id, str) and p.get("user_id") == f"auth0|{user_id}"
    ]
    ranked = sorted(
        ((compare_profile(user.fields, p, fields), p) for p in (exact or candidates)),
        key=lambda pair: len(pair[0]),
    )
    differences, profile = ranked[0]
    auth0_id = profile.get("user_id")
    return UserCheck(
        user,
        "differing" if differences else "found",
        auth0_user_id=auth0_id if isinstance(auth0_id, str) else None,
        differences=tuple(differences),
    )


def _in_connection(profile: Mapping[str, object], connection_name: str | None) -> bool:
    identities = profile.get("identities")
    if not isinstance(identities, list):
        return True  # nothing to tell connections apart with
    return any(
        isinstance(identity, dict)
        and identity.get("provider") == "auth0"
        and (connection_name is None or identity.get("connection") == connection_name)
        for identity in identities
    )


# -- talking to the API -----------------------------------------------------------------------


async def check_users(
    client: ApiClient,
    users: Sequence[SampledUser],
    fields: Sequence[str],
    *,
    connection_name: str | None = None,
    concurrency: int = 4,
) -> list[UserCheck]:
    """Look every sampled user up (GET users-by-email) and judge it; results in sample order.

    A lookup that fails after the client's retries is recorded ``unchecked``.

    Raises:
        AuthError: the token was refused or lacks read:users: no lookup can work.
    """
    results: list[UserCheck | None] = [None] * len(users)
    queue = iter(range(len(users)))
    refused: list[AuthError] = []

    async def worker() -> None:
        for index in queue:  # the iterator is shared: each index goes to one worker
            user = users[index]
            try:
                profiles = await client.users_by_email(user.email.lower())
            except AuthError as exc:
                # Kept aside rather than raised: the task group would wrap it in a group.
                refused.append(exc)
                tasks.cancel_scope.cancel()
                return
            except ApiError as exc:
                results[index] = UserCheck(user, "unchecked", error=str(exc))
                continue
            results[index] = judge_user(user, profiles, fields, connection_name)

    async with anyio.create_task_group() as tasks:
        for _ in range(min(concurrency, len(users))):
            tasks.start_soon(worker)
    if refused:
        raise refused[0]
    return [result for result in results if result is not None]


async def verify_run(
    run_dir: Path,
    manifest: Manifest,
    credentials: Credentials,
    client_settings: ClientSettings,
    settings: VerifySettings,
    *,
    events: EventSink = discard,
) -> VerifyResult:
    """Draw the sample, look it up within the request budget and judge every user.

    Raises:
        ConfigError: the token lacks read:users or was refused (nothing can be verified).
    """
    started = time.monotonic()
    rng = random.Random(settings.seed)
    sample = await anyio.to_thread.run_sync(draw_sample, run_dir, manifest, settings.sample, rng)
    fields = UPSERTABLE_FIELDS if manifest.settings.upsert else PROFILE_FIELDS
    async with ApiClient(credentials, client_settings, events=events) as client:
        try:
            info = await client.token_info()
            if info.scopes_known and "read:users" not in info.scopes:
                raise ConfigError(
                    "the token lacks read:users, which verification needs to look users up: grant "
                    "it to the application (Applications > APIs > Auth0 Management API > Machine "
                    "to Machine Applications), then use a new token"
                )
            name = await _connection_name(client, manifest.settings.connection_id, info)
            checks = await check_users(
                client,
                sample.users,
                fields,
                connection_name=name,
                concurrency=settings.concurrency,
            )
        except AuthError as exc:
            raise ConfigError(str(exc)) from exc
    return VerifyResult(
        run_id=manifest.run_id,
        connection_id=manifest.settings.connection_id,
        checked_at=utc_now_iso(),
        compared_fields=fields,
        sample=sample,
        checks=checks,
        seconds=time.monotonic() - started,
    )


async def _connection_name(
    client: ApiClient, connection_id: str | None, info: TokenInfo
) -> str | None:
    """The target connection's name (identities name connections, not ids), when it can be read."""
    if connection_id is None or (info.scopes_known and "read:connections" not in info.scopes):
        return None
    try:
        body = await client.get_connection(connection_id)
    except ApiError:
        return None  # without it, any database identity with the email counts
    name = body.get("name")
    return name if isinstance(name, str) else None


def write_verify(run_dir: Path, result: VerifyResult) -> Path:
    """Write DIR/verify.json (0600, atomically); returns its path."""
    path = run_dir / VERIFY
    write_private_atomic(path, orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2))
    return path
