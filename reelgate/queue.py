"""Production mode's job queue: procrastinate on the same PostgreSQL, its thin tasks, and the wake-up.

The generation row stays the source of truth: a job only says "look at this generation now". One job
per generation waits at a time (`queueing_lock`) and one runs at a time (`lock`). Jobs carry steps (submit,
store); polls are not jobs: each worker's poll budget scans the generations table for due polls, claims a batch
of them with one write through the row's lease (as the embedded worker does) and runs them, so a poll costs no
queue round trip. Every worker runs a reconciler beside its job slots that releases the jobs of dead workers and
re-enqueues any due step no job covers, so a crash between a commit and its enqueue, or a killed worker, loses
nothing; a dead worker's polls come back on their own when its leases lapse (three heartbeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException
from procrastinate.jobs import JobDeferrer, Status

from reelgate import tasks
from reelgate.db.queries.queue_jobs import StepJobs, defer_step_jobs
from reelgate.logging_setup import generation_context
from reelgate.services import pipeline
from reelgate.services.context import ServiceContext
from reelgate.services.pipeline import Step
from reelgate.settings import Settings
from reelgate.worker import HOUSEKEEPING

log = logging.getLogger("reelgate.queue")

DRIVE_TASK = "reelgate.drive"
# Two budgets, as in the embedded worker: steps (submits, downloads, output checks) as jobs on procrastinate's
# default queue, polls run by the worker's own poll loop (`poll_forever`) on a wider set of slots.
STEP_QUEUE = "default"
# Where a generation's step job goes, for the statements that defer it (db/queries/queue_jobs.py).
STEP_JOBS = StepJobs(queue=STEP_QUEUE, task=DRIVE_TASK)
# Earlier versions deferred each poll as a job on this queue; the step worker still serves it, so jobs left there
# by an upgrade run once (steps only) and are gone.
POLL_QUEUE = "reelgate.polls"
POLL_SCANS_PER_QUEUE_POLL = 4  # the poll budget looks for due polls 4 times per REELGATE_QUEUE_POLL_SECONDS
BATCH_WAKEUPS = 200  # wake-ups deferred in one queue transaction at most
# Jobs that keep failing (a database blip, a bug) come back after 2, 4, 8 ... seconds, at most this.
MAX_BACKOFF_SECONDS = 300.0
IDLE_BEFORE_CHECK_SECONDS = 1.0  # a queue connection unused this long is checked before it is handed out
_STATS_SQL = """
SELECT count(*) FILTER (WHERE scheduled_at IS NULL OR scheduled_at <= now()) AS depth,
       count(*) FILTER (WHERE scheduled_at > now()) AS scheduled,
       coalesce(extract(epoch FROM now() - min(coalesce(scheduled_at, (
           SELECT min(e.at) FROM procrastinate_events e WHERE e.job_id = j.id
       ))) FILTER (WHERE scheduled_at IS NULL OR scheduled_at <= now())), 0)::float AS lag_seconds
  FROM procrastinate_jobs j
 WHERE status = 'todo'
"""
# Both halves use procrastinate's own partial unique indexes (queueing_lock of waiting jobs, lock of running ones).
_COVERED_SQL = """
SELECT queueing_lock AS generation_id FROM procrastinate_jobs WHERE status = 'todo' AND queueing_lock = ANY(%(ids)s)
UNION
SELECT lock FROM procrastinate_jobs WHERE status = 'doing' AND lock = ANY(%(ids)s)
"""
# A job whose wait was for a poll is made due at once when something new happened (a webhook).
_HURRY_SQL = "UPDATE procrastinate_jobs SET scheduled_at = NULL WHERE queueing_lock = %(lock)s AND status = 'todo'"


def conninfo(settings: Settings) -> str:
    """The libpq URL of our database."""
    url = settings.resolved_database_url
    if not url.startswith("postgresql://"):
        raise RuntimeError("the job queue needs PostgreSQL (REELGATE_DATABASE_URL)")
    return url


def _pool_checked_when_idle(**pool_args: Any) -> psycopg_pool.AsyncConnectionPool:
    """procrastinate's pool, with its liveness check (a round trip on every checkout: three per job) made only
    for a connection that has been idle a while. A connection in steady use has just proved it is alive, and one
    that died since fails its query, which the worker survives (the job runs again); an idle one, the kind a
    database restart leaves behind, is still checked before use."""
    return psycopg_pool.AsyncConnectionPool(**{**pool_args, "check": _IdleCheck(IDLE_BEFORE_CHECK_SECONDS)})


class _IdleCheck:
    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self._last_seen: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = weakref.WeakKeyDictionary()

    async def __call__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        now = time.monotonic()
        last = self._last_seen.get(conn)
        self._last_seen[conn] = now
        if last is None or now - last > self.idle_seconds or conn.broken:
            await psycopg_pool.AsyncConnectionPool.check_connection(conn)


def backoff(failures: int) -> float:
    return min(MAX_BACKOFF_SECONDS, 2.0 ** (failures + 1)) * random.uniform(0.8, 1.2)


class Queue:
    """The procrastinate app with reelgate's tasks; `wake` is the ServiceContext's enqueue-after-commit."""

    def __init__(self, settings: Settings, *, pool_size: int = 10) -> None:
        self.settings = settings
        connector = procrastinate.PsycopgConnector(
            conninfo=conninfo(settings), min_size=1, max_size=pool_size, pool_factory=_pool_checked_when_idle
        )
        self.app = procrastinate.App(connector=connector)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._ctx: ServiceContext | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._waking: list[str] = []  # generations committed since the last batch of wake-ups went out
        self._flusher: asyncio.Task[None] | None = None
        self._housekeeping_at: dict[str, float] = {}
        self._held: set[str] = set()  # generations whose steps this process is running now
        self._poll_failures: dict[str, tuple[int, float]] = {}  # generation → (failures in a row, retry at)
        self._register()

    @property
    def ctx(self) -> ServiceContext:
        if self._ctx is None:
            raise RuntimeError("the queue was not attached to a ServiceContext")
        return self._ctx

    @property
    def stalled_after(self) -> float:
        """A worker silent this long is presumed dead: its jobs run again and its leases are dropped."""
        return 3 * self.settings.queue_heartbeat_seconds

    async def open(self, ctx: ServiceContext) -> None:
        """Opens the connection pool and makes `ctx.wake` enqueue through it.

        A worker's leases lapse on the same clock as its procrastinate heartbeat: renewed on every beat
        while a step runs (renew_leases), gone 3 beats after the worker stopped beating. So a killed worker,
        or one cut off by a database restart, strands nothing for longer than a few seconds."""
        self._ctx = ctx
        ctx.config = replace(ctx.config, lease_seconds=self.stalled_after)
        await self.app.open_async()
        ctx.wake = self.wake
        ctx.step_jobs = STEP_JOBS

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.wait([self._flusher], timeout=5)
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
        await self.app.close_async()

    def wake(self, generation_id: str) -> None:
        """Called after the commit that created work; enqueues in the background (the reconciler is the
        safety net if this process dies before the job is written). A submission needs none: its job commits
        with it (db/queries/queue_jobs.py).

        Wake-ups that arrive while a batch is being written go out together in the next one: under load a
        burst of them costs one statement, not a queue transaction each."""
        self._waking.append(generation_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_wakeups())

    async def _flush_wakeups(self) -> None:
        while self._waking:
            batch, self._waking = self._waking[:BATCH_WAKEUPS], self._waking[BATCH_WAKEUPS:]
            try:
                # The same statement a submission's transaction sends, as a short write of its own that may share
                # a COMMIT with others: no procrastinate job objects to build, no queue connection to take.
                await self.ctx.db.write(
                    functools.partial(defer_step_jobs, jobs=STEP_JOBS, generation_ids=batch), grouped=True
                )
            except Exception:  # noqa: BLE001 - one already waiting (or a blip) fails the batch: one by one then
                for generation_id in batch:
                    await self.enqueue(generation_id)

    def _deferrer(self, generation_id: str, at: datetime | None) -> JobDeferrer:
        """The generation's job: one waiting and one running at a time."""
        return self._drive.configure(lock=generation_id, queueing_lock=generation_id, schedule_at=at, queue=STEP_QUEUE)

    async def enqueue(self, generation_id: str, *, at: datetime | None = None, failures: int = 0) -> bool:
        """Defers the generation's job; False if one was already waiting (then it is made due if `at` is now)."""
        deferrer = self._deferrer(generation_id, at)
        try:
            await deferrer.defer_async(generation_id=generation_id, failures=failures)
            return True
        except AlreadyEnqueued:
            if at is None:
                await self.app.connector.execute_query_async(_HURRY_SQL, lock=generation_id)
            return False
        except Exception:  # the reconciler will enqueue it on its next pass
            log.warning("could not enqueue %s", generation_id, exc_info=True, extra={"generation_id": generation_id})
            return False

    async def stats(self) -> dict[str, float]:
        row = await self.app.connector.execute_query_one_async(_STATS_SQL)
        return {k: float(row[k]) for k in ("depth", "scheduled", "lag_seconds")}

    async def check(self) -> dict[str, Any]:
        """For /readyz: the queue's tables answer, and how far behind the workers are."""
        return {"ok": True, **await self.stats()}

    async def reconcile(self) -> int:
        """Frees the locks of jobs whose worker died, then enqueues every generation with a due step and no job
        (due polls are the poll budget's: it finds them in the table itself).

        Every worker runs this; two passes at once are harmless: a stalled job is finished by whichever gets
        there first (the other's attempt is refused and skipped), and a generation is enqueued at most once
        (`queueing_lock`)."""
        stalled = await self.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after)
        enqueued = 0
        for job in stalled:
            try:
                await self.app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
            except ConnectorException:  # another worker's reconciler released it first (or a blip: next tick)
                log.debug("job %s was already released", job.id, exc_info=True)
                continue
            log.warning("job %s of a dead worker released", job.id, extra={"generation_id": job.lock})
            if job.task_name == DRIVE_TASK and job.lock:
                # Its holder is dead by the queue's own judgment: the next worker need not wait for the lease.
                await pipeline.drop_claim(self.ctx, job.lock)
                enqueued += await self.enqueue(job.lock)
        due = [w for w in await pipeline.due_work(self.ctx, limit=1000) if w.step not in tasks.POLL_BUDGET_STEPS]
        covered = await self._covered([work.generation_id for work in due])
        # Most due steps already have their job (one whose time has just come): only the rest are enqueued.
        for work in due:
            if work.generation_id not in covered:
                enqueued += await self.enqueue(work.generation_id)
        if enqueued:
            log.info("reconciler enqueued %d generations", enqueued)
        return enqueued

    async def _covered(self, generation_ids: list[str]) -> set[str]:
        """The generations among these that have a job waiting or running."""
        if not generation_ids:
            return set()
        rows = await self.app.connector.execute_query_all_async(_COVERED_SQL, ids=generation_ids)
        return {row["generation_id"] for row in rows}

    async def reconcile_forever(self) -> None:
        """The worker's reconciler and housekeeping, on their own task rather than as a queued job: a job
        waits for a free slot, and when a worker dies its survivors' slots may all be busy (or the job itself
        may have been running on the dead worker), which is exactly when the reconciler must not wait. The
        tick is jittered so that many workers do not all scan at the same instant."""
        interval = float(self.settings.reconcile_interval_seconds)
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            try:
                await self.reconcile()
            except Exception:  # noqa: BLE001 - a database blip: the next tick tries again
                log.warning("the reconciler failed", exc_info=True)
            await self.run_housekeeping()

    async def run_housekeeping(self) -> None:
        """Runs the registered housekeeping jobs (webhook delivery, credit expiry, ...) whose time has come."""
        now = asyncio.get_running_loop().time()
        for job in HOUSEKEEPING:
            if now < self._housekeeping_at.get(job.name, 0.0):
                continue
            self._housekeeping_at[job.name] = now + job.interval
            try:
                await job.run(self.ctx)
            except Exception:
                log.exception("housekeeping job %s failed", job.name)

    async def run_worker(
        self, *, concurrency: int, poll_concurrency: int | None = None, install_signal_handlers: bool = False
    ) -> None:
        """Runs jobs until stopped: `concurrency` steps (a procrastinate worker) and `poll_concurrency` polls
        (the poll loop) at once. Cancelling it is an orderly stop: no new job or poll is taken, running ones get
        `worker_shutdown_seconds` to finish, then are aborted (their generations are picked up again by the next
        reconciler tick or poll scan; their leases lapse with this worker's heartbeat)."""
        polls = poll_concurrency or self.settings.poll_concurrency_for(concurrency)
        side_tasks = [
            asyncio.create_task(self.renew_leases(), name="reelgate-lease-renewal"),
            asyncio.create_task(self.reconcile_forever(), name="reelgate-reconciler"),
        ]
        workers = [
            asyncio.create_task(
                self._procrastinate_worker(
                    [STEP_QUEUE, POLL_QUEUE],
                    concurrency,
                    self.owner,
                    install_signal_handlers=install_signal_handlers,
                    listen=True,
                    fetch_every=self.settings.queue_poll_seconds,
                )
            ),
        ]
        poller = asyncio.create_task(self.poll_forever(polls), name="reelgate-polls")
        try:
            done, _ = await asyncio.wait([*workers, poller], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # it stopped on its own (its connection was lost): the caller starts it again
        finally:
            for task in [*workers, poller]:
                task.cancel()  # the orderly stop: procrastinate's for jobs, `poll_forever`'s for polls
            await asyncio.gather(*workers, poller, return_exceptions=True)
            # The leases of steps and polls still finishing are renewed until they have finished.
            for task in side_tasks:
                task.cancel()
            await asyncio.gather(*side_tasks, return_exceptions=True)

    async def poll_forever(self, slots: int) -> None:
        """The poll budget: `slots` polls (and expiries) at once, found in the generations table itself.

        Four times per REELGATE_QUEUE_POLL_SECONDS (and, while more are due than it has room for, as soon as a
        quarter of the slots is free) it reads the due polls nobody holds, claims as many as there is room for
        with one write on their leases, and runs each on its own task. The lease is what keeps two workers from
        polling one generation: renewed on this worker's heartbeat while the poll runs, released when it ends,
        and lapsing three heartbeats after a killed worker stopped beating, when any worker's next scan takes the
        generation over. A poll that finds the output ready hands the download to the step budget as a job.
        Cancelling it stops taking polls; running ones get `worker_shutdown_seconds`, then are cancelled."""
        interval = self.settings.queue_poll_seconds / POLL_SCANS_PER_QUEUE_POLL
        loop = asyncio.get_running_loop()
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                behind = False
                if len(running) < slots:
                    try:
                        behind = await self._start_due_polls(running, slots - len(running))
                    except Exception:  # noqa: BLE001 - a database blip: the next scan tries again
                        log.warning("the poll scan failed", exc_info=True)
                if not behind and len(running) < slots:
                    await asyncio.sleep(interval)
                    continue
                # More is due than there was room for: scan again once a quarter of the slots is free (one scan per
                # several polls, not one per poll), or after the interval at the latest.
                until = loop.time() + interval
                while len(running) > slots - max(1, slots // 4) and loop.time() < until:
                    await asyncio.wait(
                        set(running.values()), timeout=until - loop.time(), return_when=asyncio.FIRST_COMPLETED
                    )
        finally:
            if running:
                _, late = await asyncio.wait(set(running.values()), timeout=self.settings.worker_shutdown_seconds)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)

    async def _start_due_polls(self, running: dict[str, asyncio.Task[None]], room: int) -> bool:
        """Claims and starts up to `room` due polls; True if there may be more due than that."""
        now = time.monotonic()
        waiting = {g for g, (_, at) in self._poll_failures.items() if at > now}
        due = await pipeline.due_work(self.ctx, limit=room + len(waiting), polls_only=True)
        wanted = [w for w in due if w.generation_id not in running and w.generation_id not in waiting]
        behind = len(wanted) >= room
        wanted = wanted[:room]
        if not wanted:
            return False
        claimed = await pipeline.claim_many(self.ctx, [w.generation_id for w in wanted], self.owner)
        if not claimed:
            return False  # another worker was quicker: wait for the next scan rather than scan at once again
        for work in wanted:
            if work.generation_id in claimed:  # the rest were taken by another worker since the scan
                self._held.add(work.generation_id)  # renewed on every heartbeat from now on
                task = asyncio.create_task(self._poll_one(work))
                running[work.generation_id] = task
                task.add_done_callback(lambda _, g=work.generation_id: running.pop(g, None))
        return behind

    async def _poll_one(self, work: pipeline.DueWork) -> None:
        """Runs one claimed poll (or expiry) and lets the lease go; on a failure, the generation is left alone
        here for a growing while (2, 4, 8 ... s) so that a broken one cannot take a slot on every scan."""
        generation_id = work.generation_id
        ready = False
        with generation_context(generation_id):
            try:
                if work.step is Step.POLL:
                    ready = await pipeline.poll(self.ctx, generation_id)
                else:
                    await pipeline.expire(self.ctx, generation_id)
                self._poll_failures.pop(generation_id, None)
            except Exception:
                log.exception("polling %s failed", generation_id)
                failures = self._poll_failures.get(generation_id, (0, 0.0))[0]
                self._poll_failures[generation_id] = (failures + 1, time.monotonic() + backoff(failures))
            finally:
                self._held.discard(generation_id)
                try:
                    await pipeline.release_claim(self.ctx, generation_id, self.owner)
                except Exception:  # noqa: BLE001 - it lapses on its own within three heartbeats
                    log.warning("could not release %s", generation_id, exc_info=True)
        if ready:
            self.wake(generation_id)  # its download is a step: a job on the step budget

    async def _procrastinate_worker(
        self,
        queues: list[str],
        concurrency: int,
        name: str,
        *,
        install_signal_handlers: bool,
        listen: bool,
        fetch_every: float,
    ) -> None:
        await self.app.run_worker_async(
            queues=queues,
            concurrency=concurrency,
            name=name,
            listen_notify=listen,
            fetch_job_polling_interval=fetch_every,
            update_heartbeat_interval=self.settings.queue_heartbeat_seconds,
            stalled_worker_timeout=self.stalled_after,
            shutdown_graceful_timeout=self.settings.worker_shutdown_seconds,
            delete_jobs="successful",
            install_signal_handlers=install_signal_handlers,
        )

    @contextlib.contextmanager
    def holding(self, generation_id: str) -> Iterator[None]:
        """Marks a generation as worked on here: its lease is renewed on every heartbeat until the block ends."""
        self._held.add(generation_id)
        try:
            yield
        finally:
            self._held.discard(generation_id)

    async def renew_leases(self) -> None:
        """On every heartbeat, pushes back the lapse of the leases of the steps running here."""
        while True:
            await asyncio.sleep(self.settings.queue_heartbeat_seconds)
            if not self._held:
                continue
            try:
                await pipeline.extend_claims(self.ctx, sorted(self._held), self.owner)
            except Exception:  # noqa: BLE001 - a database blip: the next beat tries again
                log.warning("could not renew leases", exc_info=True)

    def _register(self) -> None:
        app = self.app

        @app.task(name=DRIVE_TASK)
        async def drive(generation_id: str, failures: int = 0) -> None:
            with generation_context(generation_id), self.holding(generation_id):
                try:
                    plan = await tasks.drive(self.ctx, generation_id, self.owner, steps_only=True)
                except Exception:
                    log.exception("driving %s failed", generation_id)
                    delay = timedelta(seconds=backoff(failures))
                    await self.enqueue(generation_id, at=self.ctx.clock() + delay, failures=failures + 1)
                    return
            if plan is not None and plan[0] not in tasks.POLL_BUDGET_STEPS:  # a poll: the poll loop finds it due
                await self.enqueue(generation_id, at=plan[1])

        @app.periodic(cron="17 * * * *")
        @app.task(name="reelgate.abort_stale_uploads", queueing_lock="reelgate.abort_stale_uploads")
        async def abort_stale_uploads(timestamp: int) -> None:
            abort = getattr(self.ctx.store, "abort_stale_uploads", None)
            if abort is not None:
                count = await abort(timedelta(hours=self.settings.stale_upload_hours))
                if count:
                    log.info("aborted %d abandoned multipart uploads", count)

        self._drive = drive
