"""Planning: stream the export, normalise and validate each user, pack the accepted ones into chunks.

This is the whole offline half of a run (the `validate` and `chunk` commands, and the first step of
`run`). It never touches the network; it writes chunk files and rejects through the sinks it is given.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import operator
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Final, cast

import orjson

from orchestrator.chunker import ChunkPacker, PackedChunk
from orchestrator.constants import MAX_REQUEST_BYTES
from orchestrator.dedupe import DuplicateFinder, process_fingerprint
from orchestrator.errors import ConfigError
from orchestrator.multipart import EXTERNAL_ID_PATTERN, body_overhead
from orchestrator.reader import ExportReader, SourceRecord, estimate_users
from orchestrator.validation import NormaliseOptions, Problem, UserValidator

#: The smallest request limit that still leaves room for a useful users file.
MIN_REQUEST_BYTES = 2_048


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """Everything that decides the content of the chunk files (recorded in the manifest)."""

    max_request_bytes: int = MAX_REQUEST_BYTES
    keep_user_id_prefix: bool = False
    drop_unknown_fields: bool = False
    external_id_prefix: str = "orchestrator"

    def __post_init__(self) -> None:
        if self.max_request_bytes < MIN_REQUEST_BYTES:
            raise ConfigError(
                f"--max-request-bytes {self.max_request_bytes} is too small; "
                f"use at least {MIN_REQUEST_BYTES} (the service allows {MAX_REQUEST_BYTES})"
            )
        if not EXTERNAL_ID_PATTERN.match(self.external_id_prefix):
            raise ConfigError(
                f"--external-id-prefix {self.external_id_prefix!r} is not allowed; "
                "use 1-64 letters, digits, '.', '_' or '-'"
            )

    def external_id(self, index: int) -> str:
        return f"{self.external_id_prefix}-{index:06d}"

    def users_budget(self, index: int) -> int:
        """Largest users file that keeps chunk `index`'s whole request within the limit."""
        return self.max_request_bytes - body_overhead(self.external_id(index))


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
    dropped_fields: Counter[str] = field(default_factory=Counter)
    chunks: list[WrittenChunk] = field(default_factory=list)
    #: Seconds planning waited for chunk files to reach the disk (0 when none are written).
    disk_wait_s: float = 0.0

    @property
    def chunk_bytes(self) -> int:
        return sum(chunk.bytes for chunk in self.chunks)

    def mean_fill(self, max_request_bytes: int, *, include_last: bool = True) -> float:
        """Mean request size over the limit; the last chunk is usually partial, hence the option."""
        chunks = self.chunks if include_last or len(self.chunks) < 2 else self.chunks[:-1]
        if not chunks:
            return 0.0
        return sum(chunk.request_bytes for chunk in chunks) / (len(chunks) * max_request_bytes)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A user refused before upload, with every reason found."""

    position: int
    where: str
    problems: list[Problem]
    user: object

    def to_json(self) -> bytes:
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


ChunkSink = Callable[[PackedChunk, str], WrittenChunk]
"""Stores a packed chunk under its external_id and says where (the `chunk` command writes files)."""


def describe_chunk(chunk: PackedChunk, external_id: str, file: str) -> WrittenChunk:
    """What the manifest records of a chunk stored at `file` ("" when not stored), but its digest."""
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


def count_only_sink(options: PlanOptions) -> ChunkSink:
    """A sink that stores nothing: `validate` still reports how the users would be chunked."""

    def sink(chunk: PackedChunk, external_id: str) -> WrittenChunk:
        return describe_chunk(chunk, external_id, "")

    return sink


def plan_export(
    reader: ExportReader,
    options: PlanOptions,
    *,
    store_chunk: ChunkSink,
    rejects: IO[bytes] | None = None,
    workers: int | None = None,
) -> PlanStats:
    """Read every user once, in order: reject, or pack into a chunk handed to `store_chunk`.

    Args:
        reader: the export (its InputError propagates: malformed input stops planning).
        options: request limit, normalisation switches and external_id prefix.
        store_chunk: called with each closed chunk, in index order.
        rejects: where rejected users go, one JSON object per line (None: count only).
        workers: processes that decode and validate NDJSON beside this one (0: none, all in this
            process; None: one per core but one for a large NDJSON file, else 0). The
            output is the same whatever the number.
    """
    from orchestrator import parallel  # here: it imports this module

    if workers is None:
        workers = parallel.auto_workers(reader)
    planner = Planner(
        options, store_chunk, rejects, reader.where, expected_users=estimate_users(reader.path)
    )
    validator = planner.validator
    with cycle_collector_paused():
        if workers > 0:
            dropped = parallel.plan_in_workers(reader, planner, workers)
        else:
            for batch in reader.batches():
                planner.take_records(batch)
            dropped = validator.dropped_fields
        return planner.finish(dropped)


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


class Planner:
    """The planning state of one pass: validation, duplicates, packing, rejects and stats.

    Users arrive in input order either decoded (`take_records`: everything is done here) or already
    validated and encoded by a worker process (`take_encoded`: only duplicates and packing remain).
    """

    def __init__(
        self,
        options: PlanOptions,
        store_chunk: ChunkSink,
        rejects: IO[bytes] | None,
        where: Callable[[int], str],
        *,
        expected_users: int | None = None,
    ) -> None:
        self.options = options
        self._expected_users = expected_users
        self.stats = PlanStats()
        self.validator = UserValidator(normalise_options(options))
        self.packer = ChunkPacker(options.users_budget)
        self._store_chunk = store_chunk
        self._rejects = rejects
        self._where = where

    @cached_property
    def duplicates(self) -> DuplicateFinder:
        """Made on first use: after worker processes fork, which must not inherit its tables.

        Sized for the expected users when known: ~10 bytes per key, without rehashing.
        """
        if self._expected_users is None:
            return DuplicateFinder()
        return DuplicateFinder(self._expected_users)

    @property
    def keeps_rejects(self) -> bool:
        """Whether rejected users are written (else only counted)."""
        return self._rejects is not None

    def take_records(self, batch: list[SourceRecord]) -> None:
        """Plan a batch of decoded records (normalised in place), as a worker would encode it."""
        where = self._where if self._rejects is not None else None
        encoder = BatchEncoder(self.validator, process_fingerprint, where)
        encoder.add([record.value for record in batch], [record.position for record in batch])
        self.take_encoded(encoder.finish())

    def take_encoded(self, batch: EncodedBatch) -> None:
        """Plan a batch a worker validated and encoded; its rejects are written in input order."""
        self.stats.users_read += batch.users
        if self.packer.all_fit_alone(batch.longest, len(batch.positions)):
            refused = self._take_runs(batch)
        else:  # rare: some user may be too large, and must not count for duplicates
            refused = self._take_one_by_one(batch)
        for reject in (
            heapq.merge(batch.rejects, refused, key=_position) if refused else batch.rejects
        ):
            self._write_reject(*reject)

    def _take_runs(self, batch: EncodedBatch) -> list[tuple[int, str, bytes]]:
        """Pack a batch whose every user fits alone: the runs between duplicates go in whole."""
        packer, joined, ends, positions = self.packer, batch.joined, batch.ends, batch.positions
        duplicates = self.duplicates.add_batch(batch.email_fps, batch.user_id_fps)
        refused: list[tuple[int, str, bytes]] = []
        run_start = 0
        for index, problem in duplicates:
            self._store_all(packer.add_run(joined, ends, run_start, index, positions))
            encoded = joined[ends[index - 1] + 1 if index else 0 : ends[index]]
            position = positions[index]
            refused.append((position, problem.reason, self._spliced(position, problem, encoded)))
            run_start = index + 1
        self._store_all(packer.add_run(joined, ends, run_start, len(positions), positions))
        self.stats.users_accepted += len(positions) - len(duplicates)
        return refused

    def _take_one_by_one(self, batch: EncodedBatch) -> list[tuple[int, str, bytes]]:
        """Pack a batch user by user, refusing duplicates and users too large for a request."""
        stats, packer = self.stats, self.packer
        add_fingerprints = self.duplicates.add_fingerprints
        refused: list[tuple[int, str, bytes]] = []
        start = 0
        for position, end, email_fp, user_id_fp in zip(
            batch.positions, batch.ends, batch.email_fps, batch.user_id_fps, strict=True
        ):
            encoded, start = batch.joined[start:end], end + 1
            if packer.fits_alone(encoded):
                problem = add_fingerprints(email_fp, user_id_fp)
                if problem is None:
                    stats.users_accepted += 1
                    self._store(packer.add(encoded, position))
                    continue
            else:
                problem = add_fingerprints(email_fp, user_id_fp, store=False)
                problem = problem or self._too_large(len(encoded))
            refused.append((position, problem.reason, self._spliced(position, problem, encoded)))
        return refused

    def finish(self, dropped_fields: Counter[str]) -> PlanStats:
        """Close the last chunk and return the stats (`dropped_fields` from every validator)."""
        self._store(self.packer.finish())
        self.stats.dropped_fields.update(dropped_fields)
        return self.stats

    def _write_reject(self, position: int, reason: str, line: bytes) -> None:
        del position  # the caller keeps input order
        stats = self.stats
        stats.users_rejected += 1
        stats.rejected_by_reason[reason] += 1
        if self._rejects is not None:
            self._rejects.write(line)
            self._rejects.write(b"\n")

    def _spliced(self, position: int, problem: Problem, encoded: bytes) -> bytes:
        """`Rejection.to_json()` of a user known only as its encoding (the same bytes)."""
        if self._rejects is None:
            return b""
        head = Rejection(position, self._where(position), [problem], None).to_json()
        assert head.endswith(b',"user":null}')
        return head[: -len(b"null}")] + encoded + b"}"

    def _store_all(self, chunks: list[PackedChunk]) -> None:
        for chunk in chunks:
            self._store(chunk)

    def _store(self, chunk: PackedChunk | None) -> None:
        if chunk is not None:
            external_id = self.options.external_id(chunk.index)
            self.stats.chunks.append(self._store_chunk(chunk, external_id))

    def _too_large(self, size: int) -> Problem:
        return too_large(size, self.options)


def normalise_options(options: PlanOptions) -> NormaliseOptions:
    """The validator's switches within the plan options."""
    return NormaliseOptions(
        keep_user_id_prefix=options.keep_user_id_prefix,
        drop_unknown_fields=options.drop_unknown_fields,
    )


def _position(reject: tuple[int, str, bytes]) -> int:
    return reject[0]


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A batch of users validated and encoded by a worker, as `Planner.take_encoded` needs it.

    Attributes:
        users: records in the batch (accepted or not).
        positions, ends, email_fps, user_id_fps: one entry per valid user, in input order: its
            position, where its compact JSON ends in `joined`, and its duplicate-detection
            fingerprints (email, user_id; 0: no such key).
        joined: the valid users' compact JSON joined by ","; user i starts at `ends[i - 1] + 1`.
        longest: the size of the largest valid user's JSON (0 if none).
        rejects: (position, first reason, `Rejection.to_json()` or b"" if rejects are not kept)
            of each invalid user, in input order.
    """

    users: int
    positions: Sequence[int]
    ends: Sequence[int]
    email_fps: Sequence[int]
    user_id_fps: Sequence[int]
    joined: bytes
    longest: int
    rejects: list[tuple[int, str, bytes]]


class BatchEncoder:
    """Validates, normalises and encodes batches of decoded users into one `EncodedBatch`.

    Users are handled column by column, each column in one C-level loop (`map`): the per-user
    steps are too small to afford the interpreter's overhead one user at a time.

    Args:
        validator: normalises and checks the users.
        fingerprint: the duplicate-detection fingerprint of a key (0 for "": no such key); one
            function for every batch a planner takes.
        where: names a position in a reject; None: rejects are counted, not written.
    """

    def __init__(
        self,
        validator: UserValidator,
        fingerprint: Callable[[str], int],
        where: Callable[[int], str] | None,
    ) -> None:
        self._validator = validator
        self._fingerprint = fingerprint
        self._where = where
        self._users = 0
        self._positions = array("q")
        self._encoded: list[bytes] = []
        self._email_fps = array("q")
        self._user_id_fps = array("q")
        self._rejects: list[tuple[int, str, bytes]] = []

    def add(self, values: list[object], positions: Sequence[int]) -> None:
        """Take decoded users (normalised in place) and their input positions, in order."""
        self._users += len(values)
        invalid = self._validator.problems(values)
        if invalid:
            for index, problems in invalid.items():
                position = positions[index]
                line = b""
                if self._where is not None:
                    rejection = Rejection(position, self._where(position), problems, values[index])
                    line = rejection.to_json()
                self._rejects.append((position, problems[0].reason, line))
            kept = [index for index in range(len(values)) if index not in invalid]
            values = [values[index] for index in kept]
            positions = [positions[index] for index in kept]
        # Every user left is valid: an object with a string email, and a string user_id or none.
        users = cast(list[dict[str, str]], values)
        fingerprint = self._fingerprint
        self._positions.extend(positions)
        self._encoded.extend(map(orjson.dumps, users))
        self._email_fps.extend(map(fingerprint, map(str.lower, map(_EMAIL, users))))
        self._user_id_fps.extend(map(fingerprint, map(_USER_ID, users)))

    def finish(self) -> EncodedBatch:
        """Everything taken, as one batch."""
        encoded = self._encoded
        sizes = list(map(len, encoded))
        # User i ends after its own and every earlier user's bytes, plus the i commas before it.
        ends = array("Q", map(operator.add, itertools.accumulate(sizes), range(len(sizes))))
        return EncodedBatch(
            self._users,
            self._positions,
            ends,
            self._email_fps,
            self._user_id_fps,
            b",".join(encoded),
            max(sizes, default=0),
            self._rejects,
        )


_EMAIL: Final = operator.itemgetter("email")
_USER_ID: Final = operator.methodcaller("get", "user_id", "")  # "": fingerprint 0, no key


def too_large(size: int, options: PlanOptions) -> Problem:
    """The reject of a user whose JSON alone exceeds what one request can carry."""
    return Problem(
        reason="too_large",
        path="",
        message=(
            f"this user is {size:,} bytes of JSON, more than one request can carry "
            f"({options.users_budget(0):,} bytes within --max-request-bytes "
            f"{options.max_request_bytes:,}); shrink its metadata"
        ),
    )
