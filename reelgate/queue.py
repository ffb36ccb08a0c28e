"""Production mode's workers: a step budget and a poll budget scanning the generations table, and procrastinate
on the same PostgreSQL for the periodic jobs.

The generation row is the source of truth and the queue. Each worker runs two budgets, as the embedded worker
does: its step budget (submits, reconciliations, downloads) and its poll budget (polls and expiries) each scan
the table for due work nobody holds, claim a batch of it with one write on the rows' leases, and run each item on
its own task. A lease is renewed on the worker's heartbeat while its work runs and lapses three heartbeats after a
killed worker stopped beating, when any worker's next scan takes the generation over; so a crash, a lost wake-up
or a restart strands nothing. The step budget is woken at once by a NOTIFY sent with the COMMIT that made a step
due (db/queries/step_wakeups.py) and scans on a timer besides; polls fall due at moments the row records, and
their budget scans on the timer alone.

procrastinate runs what is not a generation's step: the periodic clean-up of abandoned uploads, and the per-step
jobs an earlier version deferred, which only wake the step budget now. Every worker's reconciler releases the
jobs of dead workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
from procrastinate.exceptions import ConnectorException
from procrastinate.jobs import Status

from reelgate import tasks
from reelgate.db.queries.step_wakeups import LISTEN, notify_steps_due, steps_due_notice
from reelgate.logging_setup import generation_context
from reelgate.services import pipeline
from reelgate.services.context import ServiceContext
from reelgate.services.pipeline import Step
from reelgate.settings import Settings
from reelgate.worker import HOUSEKEEPING

log = logging.getLogger("reelgate.queue")

# The task of the per-step jobs an earlier version deferred, and the queues it deferred them to: still served, so
# that the jobs an upgrade finds waiting run once.
DRIVE_TASK = "reelgate.drive"
STEP_QUEUE = "default"
POLL_QUEUE = "reelgate.polls"
# The poll budget looks for due polls 4 times per REELGATE_QUEUE_POLL_SECONDS; the step budget, woken by
# notifications, once (for steps due at a later moment, and anything a lost notification left).
POLL_SCANS_PER_QUEUE_POLL = 4
# Work that keeps failing (a database blip, a bug) is tried again after 2, 4, 8 ... seconds, at most this.
MAX_BACKOFF_SECONDS = 300.0
IDLE_BEFORE_CHECK_SECONDS = 1.0  # a queue connection unused this long is checked before it is handed out
_JOBS_WAITING_SQL = "SELECT count(*) AS waiting FROM procrastinate_jobs WHERE status = 'todo'"


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
    """A worker's (or an API process's) part of production mode: the step and poll budgets, procrastinate for the
    periodic jobs, and `wake`, the ServiceContext's call after a commit that made a step due."""

    def __init__(self, settings: Settings, *, pool_size: int = 10) -> None:
        self.settings = settings
        connector = procrastinate.PsycopgConnector(
            conninfo=conninfo(settings), min_size=1, max_size=pool_size, pool_factory=_pool_checked_when_idle
        )
        self.app = procrastinate.App(connector=connector)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._ctx: ServiceContext | None = None
        self._waking = False  # a wake-up came since the last notification went out
        self._notifier: asyncio.Task[None] | None = None
        self._steps_due = asyncio.Event()  # the step budget's wake-up: a notification, or a step due here
        self._housekeeping_at: dict[str, float] = {}
        self._held: set[str] = set()  # generations whose steps or polls this process is running now
        self._failures: dict[str, int] = {}  # generation → its steps' failures in a row here (the pause grows)
        self._stopping = False  # the budgets take no more work (run_worker's orderly stop)
        self._register()

    @property
    def ctx(self) -> ServiceContext:
        if self._ctx is None:
            raise RuntimeError("the queue was not attached to a ServiceContext")
        return self._ctx

    @property
    def stalled_after(self) -> float:
        """A worker silent this long is presumed dead: its jobs are released and its leases have lapsed."""
        return 3 * self.settings.queue_heartbeat_seconds

    async def open(self, ctx: ServiceContext) -> None:
        """Opens procrastinate's connection pool and makes `ctx` wake the workers.

        A worker's leases lapse on the clock of its heartbeat (REELGATE_QUEUE_HEARTBEAT_SECONDS, procrastinate's
        too): renewed on every beat while a step or poll runs (renew_leases), gone 3 beats after the worker stopped
        beating. So a killed worker, or
        one cut off by a database restart, strands nothing for longer than a few seconds."""
        self._ctx = ctx
        ctx.config = replace(ctx.config, lease_seconds=self.stalled_after)
        await self.app.open_async()
        ctx.wake = self.wake
        ctx.steps_due_notice = steps_due_notice

    async def close(self) -> None:
        if self._notifier is not None:
            await asyncio.wait([self._notifier], timeout=5)
        await self.app.close_async()

    def wake(self, generation_id: str) -> None:
        """Called after the commit that made a generation's step due (a webhook, a poll that found the output
        ready): this process's step budget looks at once, and a notification tells every other worker. A
        submission needs none: its own COMMIT notified (db/queries/step_wakeups.py).

        Wake-ups that arrive while a notification is being sent go out together in the next one: under load a
        burst of them costs one short write, which may share a COMMIT with others."""
        self._steps_due.set()
        self._waking = True
        if self._notifier is None or self._notifier.done():
            self._notifier = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        while self._waking:
            self._waking = False
            try:
                await self.ctx.db.write(notify_steps_due, grouped=True)
            except Exception:  # noqa: BLE001 - the row is the truth: the workers' next timed scan finds the step
                log.warning("could not notify the workers; their next scan finds the step", exc_info=True)

    async def stats(self) -> dict[str, float]:
        """The step budget's backlog across all workers: due and untaken, due later, and the oldest one's wait."""
        return await pipeline.step_backlog(self.ctx)

    async def jobs_waiting(self) -> int:
        """procrastinate's waiting jobs (the periodic ones); its tables answering is what this checks."""
        row = await self.app.connector.execute_query_one_async(_JOBS_WAITING_SQL)
        return int(row["waiting"])

    async def check(self) -> dict[str, Any]:
        """For /readyz: the step backlog, and procrastinate's tables answer."""
        return {"ok": True, **await self.stats(), "jobs_waiting": await self.jobs_waiting()}

    async def reconcile(self) -> int:
        """Releases the procrastinate jobs of workers presumed dead (silent for three heartbeats); how many.

        Every worker runs this; two passes at once are harmless: a stalled job is finished by whichever gets
        there first (the other's attempt is refused and skipped). A job of an earlier version that drove a
        generation also lets the generation's lease go, so that a step budget takes it over at once rather than
        when the lease lapses."""
        stalled = await self.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after)
        released = 0
        for job in stalled:
            try:
                await self.app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
            except ConnectorException:  # another worker's reconciler released it first (or a blip: next tick)
                log.debug("job %s was already released", job.id, exc_info=True)
                continue
            released += 1
            log.warning("job %s of a dead worker released", job.id, extra={"generation_id": job.lock})
            if job.task_name == DRIVE_TASK and job.lock:
                await pipeline.drop_claim(self.ctx, job.lock)
                self._steps_due.set()
        return released

    async def reconcile_forever(self) -> None:
        """The worker's reconciler and housekeeping, on their own task rather than as queued jobs: a job waits
        for a free slot, and when a worker dies its survivors' slots may all be busy, which is exactly when the
        reconciler must not wait. The tick is jittered so that many workers do not all scan at the same instant."""
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
        """Runs until stopped: `concurrency` steps and `poll_concurrency` polls at once, and procrastinate's
        periodic jobs. Cancelling it is an orderly stop: no new step, poll or job is taken, running ones get
        `worker_shutdown_seconds` to finish, then are aborted (their generations are taken over by the next scan
        once their leases lapse with this worker's heartbeat)."""
        polls = poll_concurrency or self.settings.poll_concurrency_for(concurrency)
        side_tasks = [
            asyncio.create_task(self.renew_leases(), name="reelgate-lease-renewal"),
            asyncio.create_task(self.reconcile_forever(), name="reelgate-reconciler"),
            asyncio.create_task(self.listen_for_steps(), name="reelgate-step-notifications"),
        ]
        self._stopping = False
        budgets = [
            asyncio.create_task(self.steps_forever(concurrency), name="reelgate-steps"),
            asyncio.create_task(self.poll_forever(polls), name="reelgate-polls"),
        ]
        jobs = asyncio.create_task(self._procrastinate_worker(install_signal_handlers=install_signal_handlers))
        try:
            done, _ = await asyncio.wait([*budgets, jobs], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # it stopped on its own (its connection was lost): the caller starts it again
        finally:
            # The budgets stop between two scans rather than by cancellation, which could land between a claim's
            # write and the start of the work it claimed and leave those leases to lapse; procrastinate's worker
            # stops in order when cancelled.
            self._stopping = True
            self._steps_due.set()
            jobs.cancel()
            _, stuck = await asyncio.wait(budgets, timeout=self.settings.worker_shutdown_seconds + 5)
            for task in stuck:  # a scan hanging on an unreachable database
                task.cancel()
            await asyncio.gather(*budgets, jobs, return_exceptions=True)
            # The leases of steps and polls still finishing are renewed until they have finished.
            for task in side_tasks:
                task.cancel()
            await asyncio.gather(*side_tasks, return_exceptions=True)

    async def steps_forever(self, slots: int) -> None:
        """The step budget: `slots` submits, reconciliations and downloads at once, found in the generations
        table. It scans when a notification says a step fell due, and once per REELGATE_QUEUE_POLL_SECONDS besides
        (for steps due at a later moment, and anything a lost notification left)."""
        interval = self.settings.queue_poll_seconds
        await self._run_budget(slots, self._due_steps, self._run_steps, interval=interval, woken=self._steps_due)

    async def poll_forever(self, slots: int) -> None:
        """The poll budget: `slots` polls (and expiries) at once, found in the generations table four times per
        REELGATE_QUEUE_POLL_SECONDS. A poll that finds the output ready hands the download to the step budget."""
        interval = self.settings.queue_poll_seconds / POLL_SCANS_PER_QUEUE_POLL
        await self._run_budget(slots, self._due_polls, self._run_poll, interval=interval, woken=None)

    async def _run_budget(
        self,
        slots: int,
        scan: Callable[[int], Awaitable[list[pipeline.DueWork]]],
        run: Callable[[pipeline.DueWork], Awaitable[bool]],
        *,
        interval: float,
        woken: asyncio.Event | None,
    ) -> None:
        """One budget's loop. On each scan it reads the due work nobody holds, claims as much as there is room for
        with one write on the rows' leases, and runs each item on its own task (while more is due than it has room
        for, it scans again as soon as a quarter of the slots is free). The lease is what keeps two workers from
        one generation: renewed on this worker's heartbeat while the work runs, released when it ends, and lapsing
        three heartbeats after a killed worker stopped beating, when any worker's next scan takes it over.
        It stops taking work once the worker stops (within one scan interval); running items then get
        `worker_shutdown_seconds`, and are cancelled after that."""
        loop = asyncio.get_running_loop()
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while not self._stopping:
                if woken is not None:
                    woken.clear()  # before the scan: a wake-up that comes during it leaves it set
                behind = False
                if len(running) < slots:
                    try:
                        behind = await self._start_due(running, slots - len(running), scan, run)
                    except Exception:  # noqa: BLE001 - a database blip: the next scan tries again
                        log.warning("a scan for due work failed", exc_info=True)
                if not behind and len(running) < slots:
                    await _wait_for(woken, interval)
                    continue
                # More is due than there was room for: scan again once a quarter of the slots is free (one scan per
                # several items, not one per item), or after the interval at the latest.
                until = loop.time() + interval
                while len(running) > slots - max(1, slots // 4) and loop.time() < until and not self._stopping:
                    await asyncio.wait(
                        set(running.values()), timeout=until - loop.time(), return_when=asyncio.FIRST_COMPLETED
                    )
        finally:
            if running:
                _, late = await asyncio.wait(set(running.values()), timeout=self.settings.worker_shutdown_seconds)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)

    async def _start_due(
        self,
        running: dict[str, asyncio.Task[None]],
        room: int,
        scan: Callable[[int], Awaitable[list[pipeline.DueWork]]],
        run: Callable[[pipeline.DueWork], Awaitable[bool]],
    ) -> bool:
        """Claims and starts up to `room` due items; True if there may be more due than that."""
        due = await scan(room)
        wanted = [w for w in due if w.generation_id not in running]
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
                task = asyncio.create_task(self._run_claimed(work, run))
                running[work.generation_id] = task
                task.add_done_callback(lambda _, g=work.generation_id: running.pop(g, None))
        return behind

    async def _run_claimed(self, work: pipeline.DueWork, run: Callable[[pipeline.DueWork], Awaitable[bool]]) -> None:
        """Runs one claimed item and lets the lease go; on a failure, the lease is let go with a growing pause
        (2, 4, 8 ... s) that the row itself keeps, so that no worker's scan takes a broken generation again before
        it has passed and a broken one cannot take a slot on every scan."""
        generation_id = work.generation_id
        wake = False
        pause = 0.0
        with generation_context(generation_id):
            try:
                wake = await run(work)
                self._failures.pop(generation_id, None)
            except Exception:
                log.exception("%s of %s failed", work.step.value, generation_id)
                failures = self._failures.get(generation_id, 0)
                self._failures[generation_id] = failures + 1
                pause = backoff(failures)
            finally:
                self._held.discard(generation_id)
                try:
                    await pipeline.release_claim(self.ctx, generation_id, self.owner, pause=pause)
                except Exception:  # noqa: BLE001 - it lapses on its own within three heartbeats
                    log.warning("could not release %s", generation_id, exc_info=True)
        if wake:  # after the release: the scan it wakes skips a generation still held
            self.wake(generation_id)

    async def _due_steps(self, limit: int) -> list[pipeline.DueWork]:
        return await pipeline.due_work(self.ctx, limit=limit, steps_only=True)

    async def _due_polls(self, limit: int) -> list[pipeline.DueWork]:
        return await pipeline.due_work(self.ctx, limit=limit, polls_only=True)

    async def _run_steps(self, work: pipeline.DueWork) -> bool:
        """Runs the generation's due steps back to back (a submit that the provider answered at once goes on to
        its download); True when another is due now (it ran the most one turn may), for the next scan."""
        plan = await tasks.drive(self.ctx, work.generation_id, self.owner, steps_only=True)
        return plan is not None and plan[0] not in tasks.POLL_BUDGET_STEPS and plan[1] <= self.ctx.clock()

    async def _run_poll(self, work: pipeline.DueWork) -> bool:
        """Runs one poll (or expiry); True when the output is ready, so that the step budget downloads it."""
        if work.step is Step.POLL:
            return await pipeline.poll(self.ctx, work.generation_id)
        await pipeline.expire(self.ctx, work.generation_id)
        return False

    async def listen_for_steps(self) -> None:
        """Sets the step budget's wake-up on every notification. While the connection is down (a restart of the
        database) the budget scans on its timer alone, and each new connection starts with a scan."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo(self.settings), autocommit=True) as conn:
                    await conn.execute(LISTEN)
                    self._steps_due.set()  # what was notified while nobody listened is due all the same
                    async for _ in conn.notifies():
                        self._steps_due.set()
            except Exception:  # noqa: BLE001 - reconnects after a pause; the timed scans go on meanwhile
                log.warning("lost the connection that hears of due steps", exc_info=True)
            await asyncio.sleep(self.settings.queue_poll_seconds)

    async def _procrastinate_worker(self, *, install_signal_handlers: bool) -> None:
        """procrastinate's worker, for the periodic jobs (and an earlier version's jobs): one slot is enough, and
        it looks for jobs once per REELGATE_QUEUE_POLL_SECONDS rather than holding a listening connection of its own
        (the hourly job can wait a second)."""
        await self.app.run_worker_async(
            queues=[STEP_QUEUE, POLL_QUEUE],
            concurrency=1,
            name=self.owner,
            listen_notify=False,
            fetch_job_polling_interval=self.settings.queue_poll_seconds,
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
        """On every heartbeat, pushes back the lapse of the leases of the steps and polls running here."""
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
            """A job an earlier version deferred for one generation's step: the step budget finds the generation in
            the table all the same, so the job only makes it look now."""
            self._steps_due.set()

        @app.periodic(cron="17 * * * *")
        @app.task(name="reelgate.abort_stale_uploads", queueing_lock="reelgate.abort_stale_uploads")
        async def abort_stale_uploads(timestamp: int) -> None:
            abort = getattr(self.ctx.store, "abort_stale_uploads", None)
            if abort is not None:
                count = await abort(timedelta(hours=self.settings.stale_upload_hours))
                if count:
                    log.info("aborted %d abandoned multipart uploads", count)


async def _wait_for(event: asyncio.Event | None, timeout: float) -> None:
    """Until the event is set or the timeout passes (just the timeout without an event)."""
    if event is None:
        await asyncio.sleep(timeout)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=timeout)
