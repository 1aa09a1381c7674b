"""Planning: stream the export, normalise and validate each user, pack the accepted ones into chunks.

This is the whole offline half of a run (the `validate` and `chunk` commands, and the first step of
`run`). It never touches the network; it writes chunk files and rejects through the sinks it is given.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

import orjson

from orchestrator.chunker import ChunkPacker, PackedChunk
from orchestrator.constants import MAX_REQUEST_BYTES
from orchestrator.dedupe import DuplicateFinder
from orchestrator.errors import ConfigError
from orchestrator.multipart import EXTERNAL_ID_PATTERN, body_overhead
from orchestrator.reader import ExportReader
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
    """A chunk as stored: what the manifest records about it."""

    index: int
    file: str
    sha256: str
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


def count_only_sink(options: PlanOptions) -> ChunkSink:
    """A sink that stores nothing: `validate` still reports how the users would be chunked."""

    def sink(chunk: PackedChunk, external_id: str) -> WrittenChunk:
        return WrittenChunk(
            index=chunk.index,
            file="",
            sha256=hashlib.sha256(chunk.body).hexdigest(),
            bytes=len(chunk.body),
            users=chunk.users,
            first_position=chunk.first_position,
            last_position=chunk.last_position,
            external_id=external_id,
            request_bytes=len(chunk.body) + body_overhead(external_id),
        )

    return sink


def plan_export(
    reader: ExportReader,
    options: PlanOptions,
    *,
    store_chunk: ChunkSink,
    rejects: IO[bytes] | None = None,
) -> PlanStats:
    """Read every user once, in order: reject, or pack into a chunk handed to `store_chunk`.

    Args:
        reader: the export (its InputError propagates: malformed input stops planning).
        options: request limit, normalisation switches and external_id prefix.
        store_chunk: called with each closed chunk, in index order.
        rejects: where rejected users go, one JSON object per line (None: count only).
    """
    stats = PlanStats()
    validator = UserValidator(
        NormaliseOptions(
            keep_user_id_prefix=options.keep_user_id_prefix,
            drop_unknown_fields=options.drop_unknown_fields,
        )
    )
    duplicates = DuplicateFinder()
    packer = ChunkPacker(options.users_budget)
    dumps = orjson.dumps

    def reject(position: int, problems: list[Problem], user: object) -> None:
        stats.users_rejected += 1
        stats.rejected_by_reason[problems[0].reason] += 1
        if rejects is not None:
            rejects.write(Rejection(position, reader.where(position), problems, user).to_json())
            rejects.write(b"\n")

    def store(chunk: PackedChunk | None) -> None:
        if chunk is not None:
            stats.chunks.append(store_chunk(chunk, options.external_id(chunk.index)))

    for batch in reader.batches():
        stats.users_read += len(batch)
        for record in batch:
            user = record.value
            problems = validator.check(user)
            if problems:
                reject(record.position, problems, user)
                continue
            assert isinstance(user, dict)  # a valid user is an object
            duplicate = duplicates.check(user)
            if duplicate is not None:
                reject(record.position, [duplicate], user)
                continue
            encoded = dumps(user)
            if not packer.fits_alone(encoded):
                reject(record.position, [_too_large(len(encoded), options)], user)
                continue
            duplicates.remember(user)
            stats.users_accepted += 1
            store(packer.add(encoded, record.position))
    store(packer.finish())
    stats.dropped_fields.update(validator.dropped_fields)
    return stats


def _too_large(size: int, options: PlanOptions) -> Problem:
    return Problem(
        reason="too_large",
        path="",
        message=(
            f"this user is {size:,} bytes of JSON, more than one request can carry "
            f"({options.users_budget(0):,} bytes within --max-request-bytes "
            f"{options.max_request_bytes:,}); shrink its metadata"
        ),
    )
