"""The one planning loop: every user read once, in order, normalised, judged, and packed or refused.

Serves `validate` (nothing stored), `chunk` and `run` (chunk files), and the nightly sync's diff (a
consumer of its own instead of the packer). It never touches the network; what it produces goes
through the sinks it is given.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Protocol

import orjson

from orchestrator.auth0.multipart import body_overhead
from orchestrator.limits import ENTERPRISE_USERS_PER_HOUR, FREE_TIER_USERS_PER_HOUR
from orchestrator.plan.dedupe import DuplicateFinder
from orchestrator.plan.mapping import Mapper, mapper_for
from orchestrator.plan.normalise import Normaliser
from orchestrator.plan.pack import ChunkPacker, PackedChunk
from orchestrator.plan.passwords import USABLE_KINDS, PasswordPolicy, kind_of, missing, rejection
from orchestrator.plan.schema import Problem, check_user
from orchestrator.settings import PlanSettings
from orchestrator.sources.formats.base import Converted, Mapped, Skipped, Unmapped
from orchestrator.sources.records import SourceRecord

#: How a valid user is written into its chunk: compact JSON, integers refused beyond ±(2**53 - 1),
#: the safe integers of JavaScript (what the service keeps exactly).
ENCODE_OPTIONS: Final = orjson.OPT_STRICT_INTEGER


@dataclass(frozen=True, slots=True)
class ChunkLayout:
    """How chunks are named and sized: the request limit and the external_id prefix of a plan."""

    max_request_bytes: int
    external_id_prefix: str

    def external_id(self, index: int) -> str:
        return f"{self.external_id_prefix}-{index:06d}"

    def users_budget(self, index: int) -> int:
        """Largest users file that keeps chunk `index`'s whole request within the limit."""
        return self.max_request_bytes - body_overhead(self.external_id(index))

    @property
    def users_alone(self) -> int:
        """Largest user (its JSON) that fits a request of its own, whatever chunk it lands in."""
        return min(self.users_budget(0), self.users_budget(1)) - 2  # "[" user "]"


@dataclass(frozen=True, slots=True)
class WrittenChunk:
    """A chunk as stored: what the manifest records about it, but its digest (the sink's to give)."""

    index: int
    file: str
    bytes: int
    users: int
    first_position: int
    last_position: int
    external_id: str
    request_bytes: int


@dataclass(slots=True)
class PlanStats:
    """Counts of one planning pass; `validate` prints them, `chunk` also records them."""

    users_read: int = 0
    users_accepted: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    users_rejected: int = 0
    #: Accepted users by credential kind (`bcrypt`, `pbkdf2`, ..., `none`, `unsupported:<kind>`).
    credentials: Counter[str] = field(default_factory=Counter)
    #: Records not imported on purpose (another connection, a service account): by reason.
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    dropped_fields: Counter[str] = field(default_factory=Counter)
    chunks: list[WrittenChunk] = field(default_factory=list)
    #: How the export was read (format, fields moved and dropped); None for the import format.
    source: dict[str, object] | None = None
    #: Seconds planning waited for chunk files to reach the disk (0 when none are written).
    disk_wait_s: float = 0.0

    @property
    def users_skipped(self) -> int:
        return self.skipped_by_reason.total()

    @property
    def chunk_bytes(self) -> int:
        return sum(chunk.bytes for chunk in self.chunks)

    def mean_fill(self, max_request_bytes: int, *, include_last: bool = True) -> float:
        """Mean request size over the limit; the last chunk is usually partial, hence the option."""
        chunks = self.chunks if include_last or len(self.chunks) < 2 else self.chunks[:-1]
        if not chunks:
            return 0.0
        return sum(chunk.request_bytes for chunk in chunks) / (len(chunks) * max_request_bytes)

    def as_json(self, max_request_bytes: int, *, chunks_written: bool) -> dict[str, object]:
        """The plan's summary: what `validate` and `chunk` print and the `plan` event carries."""
        disk = {"disk_wait_s": round(self.disk_wait_s, 2)} if chunks_written else {}
        source = {"source": self.source} if self.source is not None else {}
        return {
            **source,
            "users_read": self.users_read,
            "accepted": self.users_accepted,
            "rejected": self.users_rejected,
            "skipped": self.users_skipped,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "skipped_by_reason": dict(self.skipped_by_reason),
            "credentials": dict(self.credentials),
            "without_password": missing(self.credentials),
            "dropped_fields": dict(self.dropped_fields),
            "chunks": len(self.chunks),
            "chunks_written": chunks_written,
            "import_requests": len(self.chunks),
            "mean_fill": round(self.mean_fill(max_request_bytes), 4),
            "mean_fill_full_chunks": round(
                self.mean_fill(max_request_bytes, include_last=False), 4
            ),
            "estimated_hours": {
                "enterprise_tier": round(self.users_accepted / ENTERPRISE_USERS_PER_HOUR, 3),
                "free_tier": round(self.users_accepted / FREE_TIER_USERS_PER_HOUR, 3),
            },
            **disk,
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    """A user refused before upload, with every reason found; `user` is the user as read."""

    position: int
    where: str
    problems: list[Problem]
    user: object

    def to_json(self) -> bytes:
        """One line of rejects.ndjson: position, where, reasons, and the user as read."""
        return orjson.dumps(
            {
                "position": self.position,
                "where": self.where,
                "reasons": [
                    {"reason": p.reason, "path": p.path, "message": p.message}
                    for p in self.problems
                ],
                "user": self.user,
            }
        )


ChunkSink = Callable[[PackedChunk], WrittenChunk]
"""Stores a packed chunk and says where and under which external_id (`chunk` writes files)."""


def describe_chunk(chunk: PackedChunk, layout: ChunkLayout, file: str) -> WrittenChunk:
    """What the manifest records of a chunk stored at `file` ("" when not stored), but its digest."""
    external_id = layout.external_id(chunk.index)
    return WrittenChunk(
        index=chunk.index,
        file=file,
        bytes=len(chunk.body),
        users=chunk.users,
        first_position=chunk.first_position,
        last_position=chunk.last_position,
        external_id=external_id,
        request_bytes=len(chunk.body) + body_overhead(external_id),
    )


def count_only(layout: ChunkLayout) -> ChunkSink:
    """A sink that stores nothing: `validate` still reports how the users would be chunked."""

    def describe(chunk: PackedChunk) -> WrittenChunk:
        return describe_chunk(chunk, layout, "")

    return describe


class Accepted(Protocol):
    """Where the users that pass every check go, in input order: the packer, or a sync's diff."""

    def take(self, position: int, user: dict[str, object], encoded: bytes) -> None: ...

    def refused(self, user: object) -> None:
        """A user the planner rejected (normalised as far as it got)."""

    def finish(self) -> None:
        """Every user was taken."""


class Packing:
    """Packs accepted users into chunks and hands each closed chunk to `store`.

    Attributes:
        chunks: what `store` said of each chunk, in order.
    """

    def __init__(self, layout: ChunkLayout, store: ChunkSink) -> None:
        self._packer = ChunkPacker(layout.users_budget)
        self._store = store
        self.chunks: list[WrittenChunk] = []

    def refused(self, user: object) -> None:
        pass  # a refused user takes no room

    def take(self, position: int, user: dict[str, object], encoded: bytes) -> None:
        closed = self._packer.add(encoded, position)
        if closed is not None:
            self.chunks.append(self._store(closed))

    def finish(self) -> None:
        closed = self._packer.finish()
        if closed is not None:
            self.chunks.append(self._store(closed))


class Planner:
    """The planning state of one pass: normalisation, judgement, duplicates, rejects and stats.

    Args:
        settings: how records become users (the source format and mapping), the normalisation
            switches (and the request limit, through `layout`).
        layout: names and sizes of the chunks: a user too large for a request alone is refused.
        accepted: where valid users go, in input order, with their encoding.
        rejects: where refused users go, one JSON object per line (None: count only).
        where: names a position for people (``index 12``, ``line 13``).
        expected_users: sizes the duplicate tables up front, when known.
        encode_options: orjson options of the encoding (a sync fingerprints sorted keys).
        check_passwords: refuse, when the pass ends, a plan whose users would arrive without a
            usable password against the settings' policy (`validate` only reports them).
        unmatched_hashes: where to list the rows of `--password-hashes` no user matched (None:
            count them only).
    """

    def __init__(
        self,
        settings: PlanSettings,
        layout: ChunkLayout,
        accepted: Accepted,
        *,
        rejects: IO[bytes] | None,
        where: Callable[[int], str],
        expected_users: int | None = None,
        encode_options: int = ENCODE_OPTIONS,
        check_passwords: bool = True,
        unmatched_hashes: Path | None = None,
    ) -> None:
        self.stats = PlanStats()
        self._unmatched_hashes = unmatched_hashes
        self.passwords = PasswordPolicy(settings)
        self._check_passwords = check_passwords
        self.mapper: Mapper | None = mapper_for(settings.source)
        #: Records converted before they reach `take` (a sync's screen), by position.
        self.converted: dict[int, Converted] = {}
        self.normalise = Normaliser(settings)
        self.duplicates = DuplicateFinder(expected_users or 1 << 16)
        self._accepted = accepted
        self._rejects = rejects
        self._where = where
        self._alone = layout.users_alone
        self._layout = layout
        self._options = encode_options | ENCODE_OPTIONS

    def take(self, batch: Iterable[SourceRecord]) -> None:
        """Plan some records, in input order."""
        stats, normalise, dumps, options = self.stats, self.normalise, orjson.dumps, self._options
        add_keys, take, alone = self.duplicates.add, self._accepted.take, self._alone
        mapper, require, credentials = self.mapper, self.passwords.require, stats.credentials
        for record in batch:
            stats.users_read += 1
            value = record.value
            credential = None
            if mapper is not None:
                converted = self.converted.pop(record.position, None) or mapper(value)
                if not isinstance(converted, Mapped):
                    self.set_aside(record, converted)
                    continue
                value, credential = converted
            user: Any = normalise(value)
            problems = check_user(user)
            if problems:
                self.reject(record, problems, user)
                continue
            kind = credential or kind_of(user)
            if require and kind not in USABLE_KINDS:
                self.reject(record, [rejection(kind)], user)
                continue
            # A valid user is an object with a string email.
            try:
                encoded = dumps(user, option=options)
            except orjson.JSONEncodeError:
                self.reject(record, [UNSAFE_INTEGER], user)
                continue
            if b"e+" in encoded and altered_integer(record.text):
                self.reject(record, [UNSAFE_INTEGER], user)
                continue
            fits = len(encoded) <= alone
            duplicate = add_keys(user["email"], user.get("user_id"), keep=fits)
            if duplicate is not None:
                self.reject(record, [duplicate], user)
            elif not fits:
                self.reject(record, [self.too_large(len(encoded))], user)
            else:
                stats.users_accepted += 1
                credentials[kind] += 1
                take(record.position, user, encoded)

    def set_aside(self, record: SourceRecord, outcome: Unmapped | Skipped) -> None:
        """Count a record skipped on purpose, or reject one that cannot become a user."""
        if type(outcome) is Skipped:
            self.stats.skipped_by_reason[outcome.reason] += 1
        else:
            self.reject(record, [Problem(*outcome)], None)

    def reject(self, record: SourceRecord, problems: list[Problem], user: object) -> None:
        """Count a refused user by its first reason, and write it (as read) with all of them."""
        self._accepted.refused(user)
        stats = self.stats
        stats.users_rejected += 1
        stats.rejected_by_reason[problems[0].reason] += 1
        if self._rejects is not None:
            position = record.position
            rejection = Rejection(position, self._where(position), problems, record.value)
            self._rejects.write(rejection.to_json() + b"\n")

    def too_large(self, size: int) -> Problem:
        """The problem of a user whose JSON alone exceeds what one request can carry."""
        return Problem(
            reason="too_large",
            path="",
            message=(
                f"this user is {size:,} bytes of JSON, more than one request can carry "
                f"({self._alone + 2:,} bytes within --max-request-bytes "
                f"{self._layout.max_request_bytes:,}); shrink its metadata"
            ),
        )

    def finish(self) -> PlanStats:
        """Close the last chunk and return the stats."""
        if self.mapper is not None:
            self.mapper.finish(self._unmatched_hashes)
            self.stats.source = self.mapper.summary()
        stats = self.stats
        stats.dropped_fields.update(self.normalise.dropped_fields)
        source_dropped = self.mapper.stats.dropped if self.mapper is not None else {}
        self.passwords.check_dropped([*stats.dropped_fields, *source_dropped])
        if self._check_passwords:
            self.passwords.check(stats.credentials, stats.users_accepted)
        self._accepted.finish()
        return stats


#: An integer literal of 20 digits or more where a JSON number stands (after ':', '[' or ',').
_LONG_INTEGER: Final = re.compile(rb"[:\[,]\s*-?[0-9]{20,}\s*[,\]}]")


def altered_integer(text: bytes) -> bool:
    """Whether a record's text holds an integer beyond 64 bits, which the JSON decoder reads as a
    float (altered, as JavaScript would alter it). Asked only when the user's encoding shows a
    large float (`e+`): the integers the decoder keeps exactly, the strict encoding refuses."""
    return _LONG_INTEGER.search(text) is not None


UNSAFE_INTEGER: Final = Problem(
    "unsafe_number",
    "",
    "a number of this user is an integer beyond ±9007199254740991 (2^53 - 1), which Auth0 "
    "(JavaScript) cannot keep exactly: write it as a string",
)


def plan_chunks(
    batches: Iterable[list[SourceRecord]],
    settings: PlanSettings,
    layout: ChunkLayout,
    store: ChunkSink,
    *,
    rejects: IO[bytes] | None,
    where: Callable[[int], str],
    expected_users: int | None = None,
    check_passwords: bool = True,
    unmatched_hashes: Path | None = None,
) -> PlanStats:
    """Plan every user into chunks handed to `store` (and refused ones to `rejects`)."""
    packing = Packing(layout, store)
    planner = Planner(
        settings,
        layout,
        packing,
        rejects=rejects,
        where=where,
        expected_users=expected_users,
        check_passwords=check_passwords,
        unmatched_hashes=unmatched_hashes,
    )
    stats = plan_records(batches, planner)
    stats.chunks = packing.chunks
    return stats


def plan_records(batches: Iterable[list[SourceRecord]], planner: Planner) -> PlanStats:
    """Run every batch through `planner` with the cycle collector paused; returns its stats."""
    with cycle_collector_paused():
        try:
            for batch in batches:
                planner.take(batch)
            return planner.finish()
        finally:
            if planner.mapper is not None:
                planner.mapper.close()


@contextlib.contextmanager
def cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector (`gc`) while planning.

    Planning makes no reference cycles (test_planning_makes_no_reference_cycles checks): reference
    counting frees every decoded user as soon as it is encoded, so memory stays flat. The
    collector would still walk each batch's thousands of young objects, ~10% of decoding's cost.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
