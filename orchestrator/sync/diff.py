"""Tonight's classification: each user of the export is new, changed, unchanged or rejected.

The fast path first: a user whose text is exactly what the state saw last time (`raw_fingerprint`)
is unchanged, at the cost of decoding it, fingerprinting its text and one indexed lookup; it is
not judged or encoded again. Every other user goes through the one planner (the same normalisation,
rules, duplicates and size limit as `run`); instead of being packed, each accepted user is
fingerprinted (its canonical JSON, keys sorted) and compared with the state. New and changed users
are written as NDJSON for the night's run, with a pending row each in the state. Users of the state
the export no longer has ("missing") are left unmarked in the `seen` bitmap. Never talks to the API.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import IO, Any, Final

import orjson

from orchestrator.plan import mapping, normalise, passwords, planner, schema
from orchestrator.plan.normalise import PASSWORD_FIELDS
from orchestrator.plan.planner import ChunkLayout, Planner, plan_records
from orchestrator.settings import PlanSettings
from orchestrator.sources.formats import FORMATS, Export
from orchestrator.sources.formats.base import Mapped
from orchestrator.sources.reader import estimate_users
from orchestrator.sources.records import SourceRecord
from orchestrator.sync.state import SyncState
from orchestrator.sync.texts import TextIndex
from orchestrator.version import __version__

#: Users classified per round of lookups: enough to amortise each statement, small in memory.
ROUND_USERS: Final = 2_000
FINGERPRINT_BYTES: Final = 16
#: The planner's encoding for a sync: keys sorted, so key order makes no difference.
CANONICAL: Final = orjson.OPT_SORT_KEYS


@dataclass(slots=True)
class DiffCounts:
    """Tonight's classification."""

    users_read: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    missing: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    dropped_fields: Counter[str] = field(default_factory=Counter)
    #: Records not imported on purpose, by reason (a source format's service accounts, ...).
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    #: How the export was read (`PlanStats.source`); None for the import format.
    source: dict[str, object] | None = None

    @property
    def to_send(self) -> int:
        return self.new + self.changed

    def as_json(self) -> dict[str, object]:
        return {
            "users_read": self.users_read,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "rejected_locally": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "skipped_by_reason": dict(self.skipped_by_reason),
            "dropped_fields": dict(self.dropped_fields),
            **({"source": self.source} if self.source is not None else {}),
        }


@dataclass(slots=True)
class DiffResult:
    """The classification, the slots of state users seen tonight, and the next free slot.

    `unchanged_by_text` counts the unchanged users told by their text alone (the fast path).
    """

    counts: DiffCounts
    seen: bytearray
    next_slot: int
    unchanged_by_text: int = 0


def user_key(user: Mapping[str, object]) -> str | None:
    """The state's key of a normalised user: its user_id, else its lower-cased email.

    The same function reads the users echoed by the job errors endpoint, so a failed user is
    matched to the pending row it came from.
    """
    user_id = user.get("user_id")
    if isinstance(user_id, str) and user_id:
        return user_id
    email = user.get("email")
    if isinstance(email, str) and email:
        return email.lower()
    return None


def canonical_json(user: Mapping[str, object]) -> bytes:
    """The user's canonical JSON: compact, keys sorted at every level. It is also what is sent."""
    return orjson.dumps(user, option=CANONICAL)


def fingerprint_of(canonical: bytes) -> bytes:
    """BLAKE2b-128 of a canonical JSON text."""
    hasher = _BLAKE2B_16.copy()
    hasher.update(canonical)
    return hasher.digest()


def user_fingerprint(user: Mapping[str, object]) -> bytes:
    """BLAKE2b-128 of the user's canonical JSON: equal content, equal fingerprint."""
    return fingerprint_of(canonical_json(user))


def without_password(encoded: bytes) -> bytes:
    """A changed user's canonical JSON as it is sent: without its password fields.

    The user exists in Auth0 already, and a hash can only be set by a user's first import: an
    upsert that carries one fails for that user ("the user already has password hash defined"),
    and its profile changes with it.
    """
    if b'password_hash"' not in encoded:  # also matches "custom_password_hash"
        return encoded
    user = orjson.loads(encoded)
    for name in PASSWORD_FIELDS:
        user.pop(name, None)
    return canonical_json(user)


# Copying a configured hasher costs about half of constructing one (keyword parsing dominates).
_BLAKE2B_16: Final = hashlib.blake2b(digest_size=FINGERPRINT_BYTES)


def raw_key(settings: PlanSettings) -> bytes:
    """What a user's text is read with: the normalisation switches and the code that judges it.

    A user's text fingerprint (`raw_fingerprint`) is keyed with this, so a text seen under other
    switches, or by other rules, never passes for unchanged: it is judged again.
    """
    hasher = hashlib.blake2b(digest_size=32)
    switches = (settings.keep_user_id_prefix, settings.drop_unknown_fields, settings.passwords)
    hasher.update(repr(switches).encode())
    hasher.update(orjson.dumps(settings.source.as_json(), default=repr))
    code: list[ModuleType] = [normalise, schema, planner, mapping, passwords]
    converter = FORMATS[settings.source.format].convert
    if converter is not None:
        code.append(sys.modules[converter.__module__])
    for module in code:
        try:
            hasher.update(inspect.getsource(module).encode())
        except (OSError, TypeError):  # installed without sources: the release stands for them
            hasher.update(__version__.encode())
    return hasher.digest()


#: A text fingerprint only ever shortcuts the content's own (FINGERPRINT_BYTES): 8 bytes suffice.
TEXT_FINGERPRINT_BYTES: Final = 8


def raw_fingerprint(text: bytes, key: bytes) -> bytes:
    """BLAKE2b-64 of a user's text as read, keyed by `raw_key`."""
    return hashlib.blake2b(text, digest_size=TEXT_FINGERPRINT_BYTES, key=key).digest()


class _Screen:
    """The fast path: users whose text the state saw last time are unchanged, without a judgement.

    Sits between the reader and the planner: of each batch, the users whose text fingerprint the
    state holds are counted unchanged (their slots marked seen, their keys taken for the duplicate
    check); the others go on to the planner, in input order, with their text fingerprints left for
    the classifier.
    """

    def __init__(
        self, planner: Planner, classifier: _Classifier, key: bytes, texts: TextIndex
    ) -> None:
        self._planner = planner
        self._classifier = classifier
        # Copying a keyed hasher is cheaper than keying a new one for every user.
        self._hasher = hashlib.blake2b(digest_size=TEXT_FINGERPRINT_BYTES, key=key)
        self._texts = texts
        self.users = 0

    def __call__(self, batches: Iterator[list[SourceRecord]]) -> Iterator[list[SourceRecord]]:
        for batch in batches:
            yield self._screen(batch)

    def _screen(self, batch: list[SourceRecord]) -> list[SourceRecord]:
        # Once per user of the export, the steady state of a nightly sync: written out flat.
        classifier = self._classifier
        seen, raw_of = classifier.seen, classifier.raw_of
        raw_of.clear()  # left by users the planner refused in the batch before
        normalise, mapper = self._planner.normalise, self._planner.mapper
        add_keys, converted_of = self._planner.duplicates.add, self._planner.converted
        user_id_of, count_unknown = normalise.user_id, normalise.count_unknown
        hasher, slot_of = self._hasher, self._texts.slot_of
        rest: list[SourceRecord] = []
        unchanged = 0
        for record in batch:
            text_hash = hasher.copy()
            text_hash.update(record.text)
            raw = text_hash.digest()
            slot = slot_of(raw)
            # A text seen twice tonight is judged the second time: it repeats the first.
            if slot >= 0 and not seen[slot]:
                user: Any = record.value  # the text of a user synced before: a valid user
                converted = None
                if mapper is not None:  # converted once: the planner takes it if passed on
                    converted = mapper(user)
                    user = converted.user if type(converted) is Mapped else None
                if (
                    user is not None
                    and add_keys(user["email"], user_id_of(user.get("user_id"))) is None
                ):
                    seen[slot] = 1
                    unchanged += 1
                    count_unknown(user)
                    continue
                if converted is not None:
                    converted_of[record.position] = converted
            raw_of[record.position] = raw
            rest.append(record)
        classifier.counts.unchanged += unchanged
        self.users += unchanged
        return rest


#: An accepted user on its way to classification: (key, fingerprint, canonical JSON). A plain
#: tuple, not a dataclass: one is built per user of a 10-million-user export.
_Accepted = tuple[str, bytes, bytes]


class _Classifier:
    """Takes the planner's accepted users and classifies them against the state, a round at a time.

    It is the planner's consumer (in place of the packer): `take` gets each accepted user, and
    `refused` each user the planner rejected, whose key still counts as present in the export.
    """

    def __init__(
        self,
        state: SyncState,
        send: IO[bytes] | None,
        record: bool,
        counts: DiffCounts,
        progress: Callable[[DiffCounts], None] | None,
    ) -> None:
        self._state = state
        self._send = send
        self._record = record
        self._progress = progress
        self.counts = counts
        self.next_slot = state.next_slot
        self.seen = bytearray(self.next_slot)
        self._line = 0  # the night's input is NDJSON: a user's position is its 1-based line
        self._accepted: list[_Accepted] = []
        self._rejected_keys: list[str] = []
        #: Text fingerprints of the users the screen passed on, by position (see `_Screen`).
        self.raw_of: dict[int, bytes] = {}
        self._raw: list[bytes | None] = []

    def take(self, position: int, user: dict[str, object], encoded: bytes) -> None:
        key = user_key(user)
        assert key is not None  # a valid user has an email
        self._accepted.append((key, fingerprint_of(encoded), encoded))
        self._raw.append(self.raw_of.pop(position, None))
        if len(self._accepted) >= ROUND_USERS:
            self._classify()

    def refused(self, user: object) -> None:
        # Its text fingerprint is not needed (a refused user is never stored): the screen drops
        # the entry with its batch.
        if isinstance(user, dict):
            key = user_key(user)
            if key is not None:
                self._rejected_keys.append(key)

    def finish(self) -> None:
        self._classify()

    def _classify(self) -> None:
        accepted, rejected_keys, raws = self._accepted, self._rejected_keys, self._raw
        self._accepted, self._rejected_keys, self._raw = [], [], []
        found = self._state.lookup([*(a[0] for a in accepted), *rejected_keys])
        seen = self.seen
        counts = self.counts
        pending: list[tuple[int, str, bytes, int, bytes | None]] = []
        refreshed: list[tuple[bytes, str]] = []
        out: list[bytes] = []
        for (key, fingerprint, encoded), raw in zip(accepted, raws, strict=True):
            known = found.get(key)
            if known is None:
                counts.new += 1
                slot = self.next_slot
                self.next_slot += 1
            else:
                seen[known.slot] = 1
                if known.fingerprint == fingerprint:
                    counts.unchanged += 1
                    if raw is not None and known.raw != raw:
                        refreshed.append((raw, key))
                    continue
                counts.changed += 1
                slot = known.slot
                encoded = without_password(encoded)
            self._line += 1
            pending.append((self._line, key, fingerprint, slot, raw))
            out.append(encoded)
        if self._record and refreshed:
            self._state.refresh_raw(refreshed)
        for key in rejected_keys:
            # Present in the export (if not importable tonight): not "missing".
            known = found.get(key)
            if known is not None:
                seen[known.slot] = 1
        if self._send is not None and out:
            self._send.write(b"\n".join(out) + b"\n")
        if self._record and pending:
            self._state.add_pending(pending)
        if self._progress is not None:
            self._progress(counts)


def diff_export(
    export: Export,
    state: SyncState,
    settings: PlanSettings,
    *,
    send: IO[bytes] | None,
    rejects: IO[bytes] | None,
    record_pending: bool,
    progress: Callable[[DiffCounts], None] | None = None,
) -> DiffResult:
    """Classify every user of the export against the state.

    Args:
        export: the export (its InputError propagates: a malformed export stops the diff).
        state: the sync state; read, and given pending rows when `record_pending`.
        settings: the normalisation switches and request limit, as for `run`.
        send: where the new and changed users go, one compact JSON object per line (None: count only).
        rejects: where users refused locally go, as in `run`'s rejects.ndjson (None: count only).
        record_pending: store a pending row per user to send (False for a dry run: the state is not
            touched).
        progress: called with the counts so far after each round of lookups.

    Returns:
        The counts (missing not yet counted), the bitmap of state slots seen and the next free slot.
    """
    counts = DiffCounts()
    classifier = _Classifier(state, send, record_pending, counts, progress)
    # Chunks are planned later from the night's input: only the size limit matters here.
    layout = ChunkLayout(settings.max_request_bytes, settings.external_id_prefix or "sync")
    planner = Planner(
        settings,
        layout,
        classifier,
        rejects=rejects,
        where=export.reader.where,
        expected_users=estimate_users(export.reader.path),
        encode_options=CANONICAL,
        # Users told unchanged by their text passed the policy before; a dry run only reports.
        check_passwords=record_pending,
    )
    texts = TextIndex(state.text_fingerprints(), expected=state.next_slot)
    screen = _Screen(planner, classifier, raw_key(settings), texts)
    stats = plan_records(screen(export.batches()), planner)
    counts.users_read = stats.users_read + screen.users
    counts.rejected = stats.users_rejected
    counts.rejected_by_reason.update(stats.rejected_by_reason)
    counts.dropped_fields.update(stats.dropped_fields)
    counts.skipped_by_reason.update(stats.skipped_by_reason)
    counts.source = stats.source
    return DiffResult(counts, classifier.seen, classifier.next_slot, screen.users)
