"""Planning on several cores: worker processes decode, validate and encode NDJSON batches.

Owns the worker processes and their pipes. The calling process reads the raw lines, hands them
out in turns (encoding a batch itself when every worker is busy), and takes the results back in
the same turns, so input order is kept; duplicates, packing and writing stay with it
(`Planner.take_encoded`). A JSON array is planned in-process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gc
import mmap
import os
import signal
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Final, cast

import orjson

from orchestrator import dedupe
from orchestrator.dedupe import process_fingerprint
from orchestrator.errors import InputError, OrchestratorError
from orchestrator.planner import BatchEncoder, EncodedBatch, Planner
from orchestrator.reader import ExportReader, NdjsonText, SourceRecord
from orchestrator.validation import NormaliseOptions, UserValidator

#: Smaller inputs are planned in-process: starting workers costs more than it saves.
PARALLEL_MIN_BYTES: Final = 16 << 20
#: Most worker processes started by default: one per core but the planning process's own (it
#: packs and writes, and encodes too when the workers are busy), at most this many.
MAX_AUTO_WORKERS: Final = 3
#: Raw NDJSON bytes per task: large enough that the cost of a message is small per user.
TASK_BYTES: Final = 128 << 10
#: Buffer asked for each pipe: room for every task (and result) in flight, so no write waits.
PIPE_BYTES: Final = 1 << 20
#: Tasks queued per worker; bounds memory (and keeps workers busy while results are taken).
TASKS_IN_FLIGHT: Final = 3
#: How often a waiting process checks that its counterpart is still alive, in seconds.
_POLL_S: Final = 1.0

#: Bytes of each shared-memory slot (one per task in flight, each way): a task's texts, or its
#: result's encoded users, larger than this travel through the pipe instead.
SLOT_BYTES: Final = 2 * TASK_BYTES

#: NDJSON texts as (label, lines_before, text).
_Texts = tuple[tuple[str, int, bytes], ...]
#: The same texts stored in a task slot, as (label, lines_before, size), back to back.
_TextsInSlot = tuple[tuple[str, int, int], ...]
#: What a worker is sent: its slot and the texts (or where they are in the slot); None: stop.
_Task = tuple[int, _Texts | _TextsInSlot] | None
_Result = tuple[str, object]


#: Overrides the automatic choice: the number of worker processes (0: plan in-process).
WORKERS_ENV: Final = "ORCHESTRATOR_PLAN_WORKERS"


def auto_workers(reader: ExportReader) -> int:
    """Workers worth starting for `reader`: one per core but one (at most MAX_AUTO_WORKERS) for a
    large file on 2+ cores, else 0.

    $ORCHESTRATOR_PLAN_WORKERS, when set to a number, is used instead (e.g. 0 on a machine whose
    other cores are busy).
    """
    setting = os.environ.get(WORKERS_ENV, "").strip()
    if setting.isdigit():
        return int(setting)
    cpus = usable_cpus()
    if reader.path == "-" or cpus < 2:
        return 0
    try:
        size = os.stat(reader.path).st_size
    except OSError:
        return 0  # the reader reports it
    return min(cpus - 1, MAX_AUTO_WORKERS) if size >= PARALLEL_MIN_BYTES else 0


def usable_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):  # Linux: honours taskset and container CPU sets
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def plan_in_workers(reader: ExportReader, planner: Planner, workers: int) -> Counter[str]:
    """Plan every user of `reader` into `planner`, NDJSON decoded by `workers` processes.

    Returns:
        Fields dropped by normalisation (over all validators), for `Planner.finish`.

    Raises:
        InputError: the input is malformed (raised here with the worker's message).
    """
    pieces = reader.pieces()
    pool: _Pool | None = None
    try:
        for piece in _tasks(pieces):
            if isinstance(piece, list):  # a JSON array: decoded by the reader, here
                planner.take_records(piece)
                continue
            if pool is None:
                pool = _Pool(workers, planner)
            pool.submit(piece, planner)
    except InputError:
        if pool is not None:  # an earlier line's error must win, as it does in-process
            pool.take_pending(planner)
        raise
    else:
        if pool is None:
            return planner.validator.dropped_fields
        return pool.drain(planner) + planner.validator.dropped_fields
    finally:
        pieces.close()
        if pool is not None:
            pool.close()


def _tasks(
    pieces: Iterator[list[SourceRecord] | NdjsonText],
) -> Iterator[list[SourceRecord] | _Texts]:
    """Group consecutive NDJSON texts into tasks of about TASK_BYTES; records pass through."""
    task: list[tuple[str, int, bytes]] = []
    size = 0
    try:
        for piece in pieces:
            if isinstance(piece, NdjsonText):
                task.append((piece.label, piece.lines_before, piece.text))
                size += len(piece.text)
                if size >= TASK_BYTES:
                    yield tuple(task)
                    task, size = [], 0
            else:
                yield piece
    except InputError:
        if task:  # lines before the error: any error of theirs comes first
            yield tuple(task)
        raise
    if task:
        yield tuple(task)


class _Pool:
    """Worker processes fed in turns, and this process as one more; results in input order.

    A task goes to the next worker while the workers have fewer than TASKS_IN_FLIGHT tasks each;
    when they are all that busy, this process encodes the task itself rather than wait. So it
    shares the encoding exactly as far as its own work (duplicates, packing, writing) leaves it
    time, and one worker is enough to use two cores.

    Plain pipes, no feeder threads: each is widened to PIPE_BYTES, and a worker never has more
    than TASKS_IN_FLIGHT tasks of about TASK_BYTES, so neither side blocks writing in the usual
    case. A larger task (a long line) is sent only to an idle worker (`submit`), so a write that
    does block always has a reader that will drain it: the two sides never wait on each other.

    The bytes themselves (texts one way, encoded users the other) go through memory shared with
    each forked worker (`_Slots`): written into a slot and copied out once, instead of pickled,
    written to a pipe, read back and unpickled. What does not fit a slot takes the pipe. On the
    1.1 GB benchmark export this took ~1 s of the planning process's ~10.9 s of CPU.
    """

    def __init__(self, workers: int, planner: Planner) -> None:
        options, keep_rejects = planner.validator.options, planner.keeps_rejects
        # fork starts a worker in milliseconds; it is unsafe only if other threads may hold locks.
        forked = threading.active_count() == 1
        context: ForkContext | SpawnContext = (
            get_context("fork") if forked else get_context("spawn")
        )
        self._tasks: list[Connection] = []
        self._results: list[Connection] = []
        self._processes: list[BaseProcess] = []
        # Per worker: its shared slots for task texts and for results (None: spawned, pipes
        # only), and how many tasks it was sent (which slot the next one uses).
        self._task_slots: list[_Slots | None] = []
        self._result_slots: list[_Slots | None] = []
        self._sent: list[int] = []
        # A worker has at most TASKS_IN_FLIGHT tasks, or one (a large task, to an idle one).
        self._slots_per_worker = max(TASKS_IN_FLIGHT, 1)
        # In input order: a worker's number, or a task this process encoded (or failed on).
        self._pending: deque[int | EncodedBatch | InputError] = deque()
        self._in_workers = 0
        self._next = 0
        self._here = _WorkerState(planner.validator, keep_rejects, _fingerprint_for(forked))
        for _ in range(workers):
            task_reader, task_writer = context.Pipe(duplex=False)
            result_reader, result_writer = context.Pipe(duplex=False)
            _widen(task_writer)
            _widen(result_writer)
            task_slots = _Slots(self._slots_per_worker, SLOT_BYTES) if forked else None
            result_slots = _Slots(self._slots_per_worker, SLOT_BYTES) if forked else None
            process = context.Process(
                target=_work,
                args=(
                    task_reader,
                    result_writer,
                    _WorkerSlots(task_slots, result_slots),
                    options,
                    keep_rejects,
                    os.getpid(),
                    forked,
                ),
                name="orchestrator-plan-worker",
                daemon=True,
            )
            self._tasks.append(task_writer)
            self._results.append(result_reader)
            self._processes.append(process)
            self._task_slots.append(task_slots)
            self._result_slots.append(result_slots)
            self._sent.append(0)
            process.start()
            task_reader.close()  # the worker's ends: this process must not hold them
            result_writer.close()

    def submit(self, task: _Texts, planner: Planner) -> None:
        """Hand `task` to the next worker, or encode it here when every worker is busy enough."""
        if sum(len(text) for _, _, text in task) > 2 * TASK_BYTES:
            self.take_pending(planner)  # only to an idle worker: see the class docstring
        else:
            self._take_ready(planner)
            if self._in_workers >= TASKS_IN_FLIGHT * len(self._processes):
                self._encode_here(task)
                if len(self._pending) > 2 * TASKS_IN_FLIGHT * len(self._processes):
                    self._take_next(planner)  # bounds what waits here for an earlier result
                return
        worker = self._next
        self._send(worker, task)
        self._pending.append(worker)
        self._in_workers += 1
        self._next = (worker + 1) % len(self._processes)

    def _send(self, worker: int, task: _Texts) -> None:
        """Send `task` to `worker`: its texts in the worker's next slot if they fit, else inline.

        The slot last served this worker's task `slots` tasks back. Tasks go round the workers
        in turn, with fewer than TASKS_IN_FLIGHT per worker in flight before this one (or none,
        for a large task), and results are taken in order: so that task's result was taken. The
        worker is done with its texts, and this process copied its encoded users out on taking.
        """
        slots = self._task_slots[worker]
        slot = self._sent[worker] % self._slots_per_worker
        self._sent[worker] += 1
        texts = [text for _, _, text in task]
        if slots is not None and slots.put(slot, texts):
            stored = tuple((label, before, len(text)) for label, before, text in task)
            self._tasks[worker].send((slot, stored))
        else:
            self._tasks[worker].send((slot, task))

    def take_pending(self, planner: Planner) -> None:
        """Plan every result still outstanding (raising the first error among them)."""
        while self._pending:
            self._take_next(planner)

    def _take_ready(self, planner: Planner) -> None:
        """Plan the results at the head of the queue that are there without waiting."""
        while self._pending:
            head = self._pending[0]
            if isinstance(head, int) and not self._results[head].poll(0):
                return
            self._take_next(planner)

    def _take_next(self, planner: Planner) -> None:
        head = self._pending.popleft()
        if isinstance(head, InputError):
            raise head
        if isinstance(head, int):
            self._in_workers -= 1
            head = self._take(head)
        planner.take_encoded(head)

    def _encode_here(self, task: _Texts) -> None:
        try:
            self._pending.append(_encode_task(task, self._here))
        except InputError as exc:  # raised in its turn: an earlier task's error comes first
            self._pending.append(exc)

    def drain(self, planner: Planner) -> Counter[str]:
        """Take every outstanding result, stop the workers, and sum their dropped fields."""
        self.take_pending(planner)
        dropped: Counter[str] = Counter()
        for index, tasks in enumerate(self._tasks):
            tasks.send(None)
            kind, value = self._receive(index)
            assert kind == "done"
            assert isinstance(value, Counter)
            dropped.update(value)
        return dropped

    def close(self) -> None:
        """Stop every worker (at once if still busy), close the pipes and free the slots."""
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join()
        for connection in (*self._tasks, *self._results):
            connection.close()
        for slots in (*self._task_slots, *self._result_slots):
            if slots is not None:
                slots.close()

    def _take(self, index: int) -> EncodedBatch:
        kind, value = self._receive(index)
        if kind == "batch_in_slot":  # its encoded users are in the worker's result slot
            batch, slot, size = cast(tuple[EncodedBatch, int, int], value)
            slots = self._result_slots[index]
            assert slots is not None
            return dataclasses.replace(batch, joined=slots.get(slot, 0, size))
        assert kind == "batch"
        assert isinstance(value, EncodedBatch)
        return value

    def _receive(self, index: int) -> _Result:
        results = self._results[index]
        while not results.poll(_POLL_S):
            process = self._processes[index]
            if not process.is_alive():
                raise OrchestratorError(
                    f"a planning worker process died (exit code {process.exitcode})"
                )
        try:
            kind, value = results.recv()
        except EOFError:
            raise OrchestratorError("a planning worker process ended early") from None
        if kind == "input_error":
            message, path, where = cast(tuple[str, str, "str | None"], value)
            raise InputError(message, path=path, where=where)
        if kind == "error":
            raise OrchestratorError(f"a planning worker process failed: {value}")
        return kind, value


class _Slots:
    """Fixed-size slots of memory shared with one forked worker process.

    Anonymous shared memory (what `mmap.mmap(-1, n)` maps) is inherited by a fork, so both
    processes see the same bytes; a spawned worker has none, and everything takes its pipe.
    Which side may write a slot when is the pool's protocol (`_Pool._send`): slots only hold bytes.
    """

    def __init__(self, count: int, size: int) -> None:
        self._size = size
        self._memory = mmap.mmap(-1, max(count * size, 1))  # a mapping cannot be empty

    def put(self, slot: int, parts: list[bytes]) -> bool:
        """Store `parts` back to back at the start of `slot`; False (nothing stored) if too big."""
        if sum(map(len, parts)) > self._size:
            return False
        at = slot * self._size
        for part in parts:
            self._memory[at : at + len(part)] = part
            at += len(part)
        return True

    def get(self, slot: int, offset: int, size: int) -> bytes:
        """A copy of `size` bytes from `offset` within `slot`."""
        at = slot * self._size + offset
        return self._memory[at : at + size]

    def close(self) -> None:
        self._memory.close()


@dataclass(frozen=True, slots=True)
class _WorkerSlots:
    """A worker's shared slots (None when spawned): task texts in, encoded users out."""

    tasks: _Slots | None
    results: _Slots | None


def _widen(connection: Connection) -> None:
    """Give a pipe PIPE_BYTES of buffer (Linux; elsewhere, or if refused, it keeps its own)."""
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


@dataclass(frozen=True, slots=True)
class _WorkerState:
    validator: UserValidator
    keep_rejects: bool
    fingerprint: Callable[[str], int]


def _work(
    tasks: Connection,
    results: Connection,
    slots: _WorkerSlots,
    options: NormaliseOptions,
    keep_rejects: bool,
    parent: int,
    forked: bool,
) -> None:
    """A worker's life: encode tasks until told to stop (None), then report dropped fields."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    gc.disable()  # no cycles are made here (see planner.cycle_collector_paused)
    state = _WorkerState(UserValidator(options), keep_rejects, _fingerprint_for(forked))
    while True:
        if not tasks.poll(_POLL_S):
            if os.getppid() != parent:
                return  # the parent is gone: exit rather than linger as an orphan
            continue
        try:
            task: _Task = tasks.recv()
        except EOFError:
            return  # the parent closed the pipe
        if task is None:
            results.send(("done", state.validator.dropped_fields))
            return
        slot, texts = task
        try:
            batch = _encode_task(_texts_of(texts, slot, slots.tasks), state)
        except InputError as exc:
            results.send(("input_error", _error_parts(exc)))
            return
        except Exception as exc:  # noqa: BLE001 (reported to the parent, which raises)
            results.send(("error", f"{type(exc).__name__}: {exc}"))
            return
        if slots.results is not None and slots.results.put(slot, [batch.joined]):
            size = len(batch.joined)
            results.send(("batch_in_slot", (dataclasses.replace(batch, joined=b""), slot, size)))
        else:
            results.send(("batch", batch))


def _texts_of(texts: _Texts | _TextsInSlot, slot: int, slots: _Slots | None) -> _Texts:
    """A task's texts, copied out of its slot if they were stored there."""
    if not texts or isinstance(texts[0][2], bytes):
        return cast(_Texts, texts)
    assert slots is not None
    copied: list[tuple[str, int, bytes]] = []
    offset = 0
    for label, lines_before, size in texts:
        copied.append((label, lines_before, slots.get(slot, offset, size)))
        offset += size
    return tuple(copied)


def _error_parts(exc: InputError) -> tuple[str, str, str | None]:
    """(message, path, where) from which the parent rebuilds the same InputError."""
    location = f"{exc.path}, {exc.where}" if exc.where else exc.path
    return str(exc).removeprefix(f"{location}: "), exc.path, exc.where


def _encode_task(task: _Texts, state: _WorkerState) -> EncodedBatch:
    """Decode, validate, normalise and encode one task's users (as `Planner.take_records`)."""
    encoder = BatchEncoder(
        state.validator, state.fingerprint, _line if state.keep_rejects else None
    )
    for label, lines_before, text in task:
        lines = text.split(b"\n")
        try:  # the usual text: every line one value
            values = list(map(orjson.loads, lines))
            encoder.add(values, range(lines_before + 1, lines_before + 1 + len(values)))
        except orjson.JSONDecodeError:  # blank lines, or an error to locate
            records = NdjsonText(label, lines_before, text).decode()
            encoder.add([record.value for record in records], [r.position for r in records])
    return encoder.finish()


def _line(position: int) -> str:
    return f"line {position}"


def _fingerprint_for(forked: bool) -> Callable[[str], int]:
    """Forked workers share the planning process's hash seed: the cheap fingerprint compares."""
    return process_fingerprint if forked else _deterministic_fingerprint


def _deterministic_fingerprint(key: str) -> int:
    """`dedupe.fingerprint`, but 0 for "" ("no such key"), as `process_fingerprint` gives."""
    return dedupe.fingerprint(key) if key else 0
