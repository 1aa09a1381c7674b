"""The upload engine: keep every job slot busy until each planned chunk has a terminal outcome.

One worker per job slot: a worker takes the next chunk, submits it, polls its job to the end, and takes
the next; so the number of jobs we hold at Auth0 never exceeds the slots, with no shared bookkeeping.
Every transition goes through the tracker (durable before the action that depends on it), and the
tracker's manifest is also the work list, so a resumed run re-attaches to the jobs it already started.
A chunk whose job's outcome cannot be read is never sent again blindly: the tenant decides which of
its users are missing (`resolve.py`), and only those are sent.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import orjson

from orchestrator.auth0.answers import JobInfo
from orchestrator.auth0.client import ApiClient
from orchestrator.auth0.multipart import ImportFields
from orchestrator.errors import (
    AuthError,
    RateLimitedError,
    RequestRejectedError,
    RunDirError,
    ServerError,
    SlotsBusyError,
    TransportError,
)
from orchestrator.events import EventSink, discard
from orchestrator.fsutil import utc_now_iso
from orchestrator.limits import JOB_STATES_TERMINAL, MAX_JOB_SLOTS, PUBLIC_CLOUD_JOB_SLOTS
from orchestrator.rundir.chunkfiles import read_chunk, write_resend_file
from orchestrator.rundir.manifest import ChunkRecord, Resolution
from orchestrator.rundir.tracker import Tracker
from orchestrator.settings import UploadSettings
from orchestrator.upload.job_errors import JobErrors, recorded
from orchestrator.upload.polling import DurationModel, JobPoller
from orchestrator.upload.resolve import LookupUnavailable, Resolver
from orchestrator.upload.slots import Permit, SlotGovernor

#: Statuses a resumed run re-attaches to (a job id is known and the job may still run).
IN_FLIGHT = ("pending", "processing")


class ChunkAbandoned(Exception):
    """Internal: the chunk cannot be sent (bad request for this chunk); record it failed."""


class ChunkUnresolved(Exception):
    """Internal: what became of the chunk's users is unknown and the tenant cannot say: it is left
    for a later resume, never sent again blindly."""


class Uploader:
    """Runs the workers over a run directory's tracker; see module docstring."""

    def __init__(
        self,
        run_dir: Path,
        tracker: Tracker,
        client: ApiClient,
        settings: UploadSettings,
        *,
        events: EventSink = discard,
        rng: random.Random | None = None,
    ) -> None:
        self._run_dir = run_dir
        self._tracker = tracker
        self._client = client
        self._settings = settings
        self._emit = events
        self._rng = rng or random.Random()
        self._durations = DurationModel()
        self._resolver = Resolver(
            client,
            settings.connection_id,
            upsert=settings.upsert,
            sample=settings.resolve_sample,
            concurrency=settings.lookup_concurrency,
            tolerance=settings.resolve_tolerance,
        )
        self._errors = JobErrors(run_dir, tracker, client, self._resolver, events)
        self._queue: list[int] = []
        auto = settings.job_slots == 0
        self.slots = SlotGovernor(
            PUBLIC_CLOUD_JOB_SLOTS if auto else settings.job_slots, discover=auto
        )
        # chunk index -> job id of every job of ours that may still run at Auth0: kept until its
        # end is seen, so that an interrupted run can say how many run on
        self.active_jobs: dict[int, str] = {}
        # job id -> "pending" / "processing 45%", for the progress display
        self.job_states: dict[str, str] = {}
        # users of chunks already finished when this process started: the rate counts the rest
        self.users_done_before = sum(
            c.users for c in tracker.manifest.chunks if c.status in ("completed", "failed")
        )

    async def run(self) -> None:
        """Upload until every chunk is completed or failed; fatal API errors propagate."""
        self._queue = self._work_order()
        self._queue.reverse()  # pop() from the end takes them in order
        async with anyio.create_task_group() as tasks:
            for chunk in self._tracker.manifest.chunks:
                failed_users = (chunk.summary or {}).get("failed")
                if chunk.status == "completed" and failed_users and not chunk.errors_saved:
                    tasks.start_soon(self.save_errors, chunk.index)  # completed before a stop
            workers = MAX_JOB_SLOTS if self.slots.discovering else self.slots.limit
            for _ in range(min(workers, len(self._queue))):
                tasks.start_soon(self._worker, tasks)

    def _work_order(self) -> list[int]:
        """Jobs already running first (they hold slots), then unsent chunks in order."""
        chunks = self._tracker.manifest.chunks
        running = [c.index for c in chunks if c.status in IN_FLIGHT and c.job_id]
        waiting = [c.index for c in chunks if c.status in ("planned", "submitting")]
        return running + waiting

    async def _worker(self, tasks: anyio.abc.TaskGroup) -> None:
        while True:
            permit = await self.slots.acquire()
            try:
                if not self._queue:
                    return
                await self._process(self._queue.pop(), tasks, permit)
            finally:
                with anyio.CancelScope(shield=True):
                    await self.slots.release(permit)

    async def _process(self, index: int, tasks: anyio.abc.TaskGroup, permit: Permit) -> None:
        chunk = self._tracker.chunk(index)
        if chunk.status == "submitting":
            # The process died during this chunk's POST: a job may exist that we never heard of.
            await recorded(self._tracker.ambiguous, index)
            self._unknown(chunk, "the run stopped while it was being submitted")
        failures = 0
        while True:
            if chunk.status in IN_FLIGHT and chunk.job_id:
                job_id = chunk.job_id  # re-attach to a job a stopped run left running
                submitted_at = time.monotonic()
                if permit.probe:
                    await self.slots.inconclusive(permit)
                else:
                    await self.slots.confirmed(permit)
            else:
                try:
                    if chunk.needs_resolution():
                        await self._resolve(chunk)
                    submitted = (
                        None if chunk.status == "completed" else await self._submit(chunk, permit)
                    )
                except ChunkAbandoned as exc:
                    await recorded(self._tracker.chunk_failed, index, str(exc))
                    self._emit("chunk_failed", {"chunk": index, "detail": str(exc)})
                    return
                except ChunkUnresolved:
                    return  # left planned: the report says what is unknown, a resume retries
                if submitted is None:
                    return  # every user of the chunk is in the tenant already
                job_id, submitted_at = submitted
            self.active_jobs[index] = job_id
            try:
                job = await self._wait_for_job(chunk, job_id, submitted_at)
            finally:
                with anyio.CancelScope(shield=True):
                    await self.slots.ended(permit)
            # Only an end we saw takes the job off the list: a stop leaves it running at Auth0.
            self.active_jobs.pop(index, None)
            self.job_states.pop(job_id, None)
            if job is None:
                # Not found: deleted after the service's retention, its outcome unread. The tenant
                # decides what is left to send (not a failure of the chunk).
                gone = f"job {job_id} was not found (the service deletes job records after 24 h)"
                await recorded(self._tracker.attempt_failed, index, "lost", gone)
                self._unknown(chunk, gone)
                continue
            if job.status == "completed":
                summary = _summary(job)
                await recorded(self._tracker.completed, index, summary)
                self._emit("job_completed", {"chunk": index, "job_id": job_id, **summary})
                if summary["failed"]:
                    # Fetched beside the next submission, so the slot is refilled at once.
                    tasks.start_soon(self.save_errors, index)
                return
            outcome, detail = _failure(job)
            await recorded(self._tracker.attempt_failed, index, outcome, detail)
            self._emit(
                "job_failed",
                {"chunk": index, "job_id": job_id, "outcome": outcome, "detail": detail},
            )
            failures += 1  # counted per round: a resumed run gives a failed chunk new attempts
            if failures >= self._settings.max_attempts:
                await recorded(
                    self._tracker.chunk_failed,
                    index,
                    f"{failures} jobs ended without completing (last: {outcome})",
                )
                self._emit("chunk_failed", {"chunk": index, "detail": detail})
                return
            self._emit("retry", {"chunk": index, "reason": outcome})

    def _unknown(self, chunk: ChunkRecord, why: str) -> None:
        self._emit(
            "unknown_outcome",
            {
                "chunk": chunk.index,
                "external_id": chunk.external_id,
                "users": chunk.sending()[3],
                "detail": why,
            },
        )

    async def _resolve(self, chunk: ChunkRecord) -> None:
        """Ask the tenant which users of the chunk's unknown last attempt were imported; record
        it, with the file of those left to send (the chunk is completed when none is).

        Raises:
            ChunkUnresolved: the tenant cannot be asked (no read:users).
            ApiError: it could not be asked (the run stops; a resume asks again).
        """
        index = chunk.index
        body = await anyio.to_thread.run_sync(read_chunk, self._run_dir, chunk)
        users = _users_of(body, chunk)
        try:
            settled = await self._resolver.settle(users, chunk.attempts[0].started_at)
        except LookupUnavailable as exc:
            self._emit(
                "outcome_unresolved",
                {
                    "chunk": index,
                    "external_id": chunk.external_id,
                    "users": len(users),
                    "detail": f"{exc}: whether its {len(users)} users were imported is unknown",
                },
            )
            raise ChunkUnresolved from exc
        resent = len(settled.missing)
        file = sha256 = size = None
        if 0 < resent < len(users):
            smaller = orjson.dumps([users[i] for i in settled.missing])
            file, sha256, size = await anyio.to_thread.run_sync(
                write_resend_file, self._run_dir, chunk, smaller
            )
        resolution = Resolution(
            kind="unseen_job",
            attempt=chunk.attempts[-1].number,
            at=utc_now_iso(),
            since=utc_now_iso(settled.since),
            looked_up=settled.looked_up,
            found=settled.found,
            inserted=settled.inserted,
            updated=settled.updated,
            resent=resent,
            file=file,
            sha256=sha256,
            bytes=size,
        )
        await recorded(self._tracker.resolved, index, resolution)
        self._emit(
            "resolved",
            {
                "chunk": index,
                "external_id": chunk.external_id,
                "looked_up": settled.looked_up,
                "found": settled.found,
                "resent": resent,
            },
        )

    async def _submit(self, chunk: ChunkRecord, permit: Permit) -> tuple[str, float] | None:
        """POST the chunk until a job exists; returns its id and when it was created.

        None: a submission's outcome was unknown, and the tenant showed every user imported.

        Raises:
            ChunkAbandoned: the chunk cannot be sent (too large, or no answer many times).
            ChunkUnresolved: an unknown outcome the tenant cannot settle.
        """
        fields = ImportFields(
            connection_id=self._settings.connection_id,
            upsert=self._settings.upsert,
            external_id=chunk.external_id,
            send_completion_email=self._settings.send_completion_email,
        )
        post_failures = 0
        slot_waits = 0
        while True:
            # Read and checked right before each POST: a chunk file that changed is never sent.
            body = await anyio.to_thread.run_sync(read_chunk, self._run_dir, chunk)
            try:
                job = await self._post(chunk, body, fields)
            except SlotsBusyError as exc:
                await recorded(self._tracker.withdrawn, chunk.index)  # no job was created
                if await self.slots.refused(permit, exc.active_jobs):
                    self._emit("slots_discovered", {"job_slots": self.slots.limit})
                    continue  # the probe found the limit; a slot of ours is free again now
                # Someone else holds the tenant's slots (or our timed-out job still runs): wait.
                slot_waits += 1
                delay = self._backoff(
                    slot_waits, self._settings.slot_wait_initial, self._settings.slot_wait_max
                )
                self._emit(
                    "slot_wait",
                    {"chunk": chunk.index, "active_jobs": exc.active_jobs, "seconds": delay},
                )
                await anyio.sleep(delay)
                continue
            except TransportError as exc:
                post_failures += 1
                if exc.maybe_processed:
                    # The connection broke after the body went out: a job may exist. Record the
                    # ambiguity; after the pause the tenant says which users are left to send.
                    await recorded(self._tracker.ambiguous, chunk.index)
                    self._unknown(chunk, str(exc))
                    await self._retry_pause(chunk, post_failures, str(exc))
                    await self._resolve(chunk)
                    if chunk.status == "completed":
                        return None
                    continue
                await self._retry_pause(chunk, post_failures, str(exc))
                continue
            except (ServerError, RateLimitedError) as exc:
                # The service answered: no job was created. Submit again after a pause.
                post_failures += 1
                await self._retry_pause(chunk, post_failures, str(exc))
                continue
            except RequestRejectedError as exc:
                if exc.status == 413:
                    raise ChunkAbandoned(str(exc)) from exc
                # A bad connection or request: fatal for the whole run. No job was created, so
                # say so (a resume must not count this as an ambiguous submission).
                await recorded(self._tracker.attempt_failed, chunk.index, "rejected", str(exc))
                raise
            except AuthError as exc:
                await recorded(self._tracker.attempt_failed, chunk.index, "rejected", str(exc))
                raise
            submitted_at = time.monotonic()
            if permit.probe:
                await self._settle_probe(permit, chunk.index)
            else:
                await self.slots.confirmed(permit)
            self._emit(
                "job_submitted",
                {"chunk": chunk.index, "job_id": job.id, "external_id": chunk.external_id},
            )
            return job.id, submitted_at

    async def _post(self, chunk: ChunkRecord, body: bytes, fields: ImportFields) -> JobInfo:
        """One submission: the intent on disk, the POST, the job id on disk — never cut in between.

        An interruption (Ctrl-C, SIGTERM) that arrives before the intent is recorded stops here with
        nothing sent; one that arrives later waits for the answer (up to `post_grace` seconds), so a
        stopped run leaves no ambiguous chunk behind unless the service itself does not answer.
        """
        await anyio.lowlevel.checkpoint()
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + self._settings.post_grace
            if chunk.status != "submitting":
                await recorded(self._tracker.submitting, chunk.index)
            job = await self._client.create_import_job(body, fields)
            await recorded(self._tracker.submitted, chunk.index, job.id)
            return job
        raise TransportError(  # the grace ran out: the service may or may not have the job
            "no answer to the import request in time", maybe_processed=True
        )

    async def _settle_probe(self, permit: Permit, index: int) -> None:
        """The service accepted a job beyond the known limit: was a slot really free?

        Only if every other slot still holds a running job (jobs never come back from an end, so
        "running now" means "running when the probe was accepted").
        """
        others = [job_id for chunk, job_id in self.active_jobs.items() if chunk != index]
        if len(others) < self.slots.limit:
            await self.slots.inconclusive(permit)  # a slot of ours was between two jobs
            return
        for job_id in others:
            try:
                job = await self._client.get_job(job_id)
            except RequestRejectedError as exc:
                if exc.status != 404:
                    raise
                await self.slots.inconclusive(permit)  # gone: it ended at some point
                return
            if job.status in JOB_STATES_TERMINAL:
                await self.slots.inconclusive(permit)
                return
        await self.slots.confirmed(permit)
        self._emit("slots_discovered", {"job_slots": self.slots.limit, "probing": True})

    async def _retry_pause(self, chunk: ChunkRecord, failures: int, reason: str) -> None:
        if failures >= self._settings.max_post_failures:
            raise ChunkAbandoned(f"{failures} submissions failed without an answer; last: {reason}")
        delay = self._backoff(
            failures, self._settings.post_retry_initial, self._settings.post_retry_max
        )
        self._emit("retry", {"chunk": chunk.index, "reason": reason, "seconds": delay})
        await anyio.sleep(delay)

    async def _wait_for_job(
        self, chunk: ChunkRecord, job_id: str, submitted_at: float
    ) -> JobInfo | None:
        """Poll the job until it is terminal; None if it vanished or outlived the service timeout."""
        poller = JobPoller(submitted_at, self._durations, self._settings.poll)
        deadline = submitted_at + self._settings.job_timeout
        delay = poller.next_delay(time.monotonic())
        poll_failures = 0
        last_running = submitted_at
        while True:
            await anyio.sleep(delay)
            try:
                job = await self._client.get_job(job_id)
            except RequestRejectedError as exc:
                if exc.status == 404:
                    return None  # deleted (24 h retention) or never existed
                raise
            except (TransportError, ServerError, RateLimitedError) as exc:
                # The client already retried; the job runs on at Auth0 whatever we see, so keep
                # looking for a while before giving the run up (resume re-attaches to the job).
                poll_failures += 1
                if poll_failures >= self._settings.max_poll_failures:
                    raise
                delay = self._backoff(poll_failures, 1.0, self._settings.post_retry_max)
                self._emit("retry", {"chunk": chunk.index, "reason": str(exc), "seconds": delay})
                continue
            poll_failures = 0
            now = time.monotonic()
            if job.status in JOB_STATES_TERMINAL:
                if job.status == "completed":
                    # It ended between the last look that saw it running and this one.
                    self._durations.observe((last_running + now) / 2 - submitted_at)
                return job
            last_running = now
            self.job_states[job_id] = (
                f"{job.status} {job.percentage_done}%"
                if job.percentage_done is not None
                else job.status
            )
            if job.status == "processing" and chunk.status == "pending":
                await recorded(self._tracker.progressed, chunk.index, "processing")
            if now > deadline:
                return JobInfo(
                    id=job_id,
                    status="timeout",
                    external_id=chunk.external_id,
                    created_at=None,
                    summary=None,
                    percentage_done=job.percentage_done,
                    time_left_seconds=None,
                    status_details="still running after the service's 2-hour job timeout",
                )
            delay = poller.next_delay(now, job.percentage_done, job.time_left_seconds)

    async def save_errors(self, index: int) -> None:
        """Fetch a completed job's per-user errors now: the service deletes them after 24 hours."""
        await self._errors.save(index)

    def _backoff(self, attempt: int, initial: float, cap: float) -> float:
        base = min(cap, initial * math.pow(2, attempt - 1))
        return base * self._rng.uniform(0.75, 1.25)


def _users_of(body: bytes, chunk: ChunkRecord) -> list[dict[str, object]]:
    users = orjson.loads(body)
    if not isinstance(users, list) or not all(isinstance(user, dict) for user in users):
        raise RunDirError(f"{chunk.sending()[0]} is not a users file (a JSON array of objects)")
    return users


def _summary(job: JobInfo) -> dict[str, int]:
    summary = job.summary or {}
    return {key: int(summary.get(key, 0)) for key in ("total", "inserted", "updated", "failed")}


def _failure(job: JobInfo) -> tuple[str, str | None]:
    return job.status, job.status_details
