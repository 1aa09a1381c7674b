"""Unknown outcomes resolved from the tenant: which users of a chunk a job we never saw imported.

When a job's outcome cannot be read (its POST was cut off after the body went out, its record was
deleted after 24 hours, the process died during the POST), sending the chunk again blindly would
import its users twice, or with upsert apply old data again. Instead its users are looked up
(`GET users-by-email`, within the request budget): a user present in the target connection and
created (with upsert: created or updated) at or after the chunk's first submission was imported by
the unseen job; only the others are sent again. A few users are looked up first, evenly spread over
the chunk: when none of them is there, no job imported the chunk (or one has not yet: the duplicates
of the job sent again are checked the same way) and it is sent again whole; otherwise every user is
looked up, because a job that ran may have failed some of them, and a user counted imported without
being seen would never be sent again (a nightly sync would mark it synced).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import anyio

from orchestrator.auth0.client import ApiClient
from orchestrator.errors import ApiError, AuthError

Verdict = Literal["inserted", "updated", "missing"]
User = dict[str, object]

#: The earliest instant there is, for a chunk whose first submission time cannot be read.
_DAWN = datetime.min.replace(tzinfo=UTC)


class LookupUnavailable(Exception):
    """The tenant cannot be asked about users (the token lacks read:users): what it says why."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the tenant says of the users one attempt sent.

    Attributes:
        looked_up: users looked up.
        inserted, updated: users found imported by us (created, or with upsert updated, since).
        missing: positions (in the users given) of the users to send again.
        since: the earliest creation (or update) time, on the service's clock, counted as ours.
    """

    looked_up: int
    inserted: int
    updated: int
    missing: list[int]
    since: datetime

    @property
    def found(self) -> int:
        return self.inserted + self.updated


class Resolver:
    """Asks the tenant which users of a chunk are already imported.

    Args:
        client: the run's API client (its request budget paces the lookups).
        connection_id: the target connection; only users of that connection count.
        upsert: the run updates existing users, so an update at or after the first submission
            counts as ours too.
        sample: users looked up first.
        concurrency: lookups in flight at once.
        tolerance: seconds before the first submission that still count, for clocks that drift.
    """

    def __init__(
        self,
        client: ApiClient,
        connection_id: str,
        *,
        upsert: bool,
        sample: int,
        concurrency: int,
        tolerance: float,
    ) -> None:
        self._client = client
        self._connection_id = connection_id
        self._upsert = upsert
        self._sample = sample
        self._concurrency = concurrency
        self._tolerance = tolerance
        self._connection_name: str | None = None
        self._named = False

    def since(self, first_submission: str | None) -> datetime:
        """The earliest time, on the service's clock, that counts as the chunk's.

        `first_submission` is when the chunk was first submitted, on our clock (ISO 8601). It is
        carried over to the service's clock by the least offset every answer so far allows (its
        Date headers), so the bound is never later than the submission really was there.
        """
        started = parse_time(first_submission)
        if started is None:
            return _DAWN
        floor = self._client.server_clock_floor
        if floor is None:  # no answer yet (cannot happen after a lookup): a second of doubt
            floor = (self._client.server_clock_offset or 0.0) - 1.0
        return started + timedelta(seconds=floor - self._tolerance)

    async def settle(self, users: Sequence[User], first_submission: str | None) -> Settlement:
        """Which of `users` (the users one attempt sent) are imported: a sample first, and every
        user unless none of the sample is there.

        Raises:
            LookupUnavailable: the token may not read users.
            ApiError: the service could not be asked (after the client's retries).
        """
        picked = spread(len(users), self._sample)
        found = dict(zip(picked, await self._profiles([users[i] for i in picked]), strict=True))
        name = self._connection_name
        since = self.since(first_submission)  # after the lookups: their answers sharpen it
        if all(verdict(found[i], name, since, upsert=self._upsert) == "missing" for i in picked):
            return Settlement(len(picked), 0, 0, list(range(len(users))), since)
        rest = [i for i in range(len(users)) if i not in found]
        found.update(zip(rest, await self._profiles([users[i] for i in rest]), strict=True))
        since = self.since(first_submission)
        every = [verdict(found[i], name, since, upsert=self._upsert) for i in range(len(users))]
        return Settlement(
            looked_up=len(users),
            inserted=every.count("inserted"),
            updated=every.count("updated"),
            missing=[i for i, answer in enumerate(every) if answer == "missing"],
            since=since,
        )

    async def look_up(
        self, users: Sequence[User], first_submission: str | None
    ) -> tuple[list[Verdict], datetime]:
        """The verdict on each of `users`, in order, and the bound it was judged against.

        Raises:
            LookupUnavailable: the token may not read users.
            ApiError: the service could not be asked.
        """
        profiles = await self._profiles(users)
        since = self.since(first_submission)
        name = self._connection_name
        return [verdict(found, name, since, upsert=self._upsert) for found in profiles], since

    async def _profiles(self, users: Sequence[User]) -> list[list[User]]:
        """users-by-email's answer for each of `users`; `concurrency` lookups at a time."""
        await self._connection()
        answers: list[list[User]] = [[] for _ in users]
        positions = iter(range(len(users)))
        failures: list[LookupUnavailable | ApiError] = []

        async def worker() -> None:
            for position in positions:
                if failures:
                    return  # one failure settles it: the others stop asking
                try:
                    answers[position] = await self._by_email(users[position])
                except (LookupUnavailable, ApiError) as exc:
                    failures.append(exc)

        async with anyio.create_task_group() as tasks:
            for _ in range(min(self._concurrency, len(users))):
                tasks.start_soon(worker)
        if failures:
            raise failures[0]
        return answers

    async def _by_email(self, user: User) -> list[User]:
        email = user.get("email")
        if not isinstance(email, str) or not email:
            return []
        try:
            return await self._client.users_by_email(email)
        except AuthError as exc:
            if exc.status == 403:
                raise LookupUnavailable(
                    "the token may not read users (read:users is not granted)"
                ) from exc
            raise

    async def _connection(self) -> None:
        """Learn the connection's name (identities name it); unknown without read:connections."""
        if self._named:
            return
        self._named = True
        try:
            found = await self._client.get_connection(self._connection_id)
        except ApiError:
            found = {}  # any database identity counts then
        name = found.get("name")
        self._connection_name = name if isinstance(name, str) else None


def verdict(
    profiles: Sequence[User], connection: str | None, since: datetime, *, upsert: bool
) -> Verdict:
    """What users-by-email's answer says of one user: imported by us (inserted or updated) or not.

    Only a profile with an identity in `connection` counts (any database identity when the name is
    not known); it is ours when created at or after `since`, or, with upsert, updated then.
    """
    for profile in profiles:
        if not in_connection(profile, connection):
            continue
        created = parse_time(profile.get("created_at"))
        if created is not None and created >= since:
            return "inserted"
        updated = parse_time(profile.get("updated_at"))
        if upsert and updated is not None and updated >= since:
            return "updated"
    return "missing"


def in_connection(profile: User, connection: str | None) -> bool:
    identities = profile.get("identities")
    if not isinstance(identities, list):
        return False
    for identity in identities:
        if not isinstance(identity, dict):
            continue
        if connection is not None and identity.get("connection") == connection:
            return True
        if connection is None and identity.get("provider") == "auth0":
            return True
    return False


def spread(count: int, sample: int) -> list[int]:
    """`sample` positions evenly spread over `count` (the first and the last included)."""
    if count <= sample:
        return list(range(count))
    if sample <= 1:
        return [0]
    return sorted({round(i * (count - 1) / (sample - 1)) for i in range(sample)})


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time (the service's `created_at`, our `started_at`), aware; None if not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
