"""The embedded worker: finds due work in the database and runs it with bounded concurrency.

In embedded mode it runs inside `reelgate serve`; the database row is the source of truth, so a
wake-up only shortens the wait, and anything a crash left behind is found on the next scan.
Production mode's workers scan the same table from several processes, woken by notifications (reelgate.queue).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

from reelgate.services import pipeline
from reelgate.services.context import ServiceContext
from reelgate.settings import default_poll_concurrency
from reelgate.tasks import run_step

log = logging.getLogger("reelgate.worker")


@dataclass
class Periodic:
    """A housekeeping job the worker runs every `interval` seconds (webhook delivery, credit expiry, ...)."""

    name: str
    interval: float
    run: Callable[[ServiceContext], Awaitable[object]]
    next_at: float = 0.0


# Housekeeping registered once for both modes: the embedded worker runs it, and in production mode each
# worker's reconciler task does, on its tick.
HOUSEKEEPING: list[Periodic] = []


def register_housekeeping(name: str, interval: float, run: Callable[[ServiceContext], Awaitable[object]]) -> None:
    if all(job.name != name for job in HOUSEKEEPING):
        HOUSEKEEPING.append(Periodic(name, interval, run))


def register_default_housekeeping() -> None:
    """The periodic jobs every worker runs, embedded in `reelgate serve` or as `reelgate worker`."""
    from reelgate.api.routes_client_webhooks import deliver_due  # the API layer owns the webhook payload shape
    from reelgate.services import expiry, mail, provider_marks, storage_quota

    register_housekeeping("client-webhooks", 1.0, deliver_due)
    register_housekeeping("email-outbox", 1.0, mail.send_due)
    register_housekeeping("credit-expiry", 3600, expiry.expire_credits)
    register_housekeeping("media-retention", 3600, storage_quota.retention_housekeeping)
    register_housekeeping("provider-marks", 2.0, provider_marks.sync)


class Worker:
    def __init__(
        self,
        ctx: ServiceContext,
        *,
        concurrency: int = 4,
        poll_concurrency: int | None = None,
        idle_seconds: float = 1.0,
    ) -> None:
        self.ctx = ctx
        self.concurrency = concurrency
        # A poll is one small request that mostly waits on the provider (often 100 ms or more), so polls get
        # their own, wider budget: with 10,000 jobs in flight, four at a time could never keep up, and they must
        # not take the slots of submits and downloads either.
        self.poll_concurrency = poll_concurrency or default_poll_concurrency(concurrency)
        self.idle_seconds = idle_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wakeup = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._polling: set[asyncio.Task[None]] = set()
        self._busy: set[str] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.periodic: list[Periodic] = [Periodic(job.name, job.interval, job.run) for job in HOUSEKEEPING]

    def add_periodic(self, name: str, interval: float, run: Callable[[ServiceContext], Awaitable[object]]) -> None:
        self.periodic.append(Periodic(name, interval, run))

    def wake(self, _generation_id: str = "") -> None:
        self._wakeup.set()

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="reelgate-worker")

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._loop_task
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with suppress(asyncio.CancelledError, Exception):
                await task

    async def _loop(self) -> None:
        while not self._stopping:
            # Cleared before the scan: a step that finishes during it must leave the wake-up set.
            self._wakeup.clear()
            try:
                await self.run_once()
                await self._run_periodic()
            except Exception:  # the loop must outlive any single failure (e.g. a database blip)
                log.exception("worker scan failed")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.idle_seconds)

    async def _run_periodic(self) -> None:
        now = asyncio.get_running_loop().time()
        for job in self.periodic:
            if now < job.next_at:
                continue
            job.next_at = now + job.interval
            try:
                await job.run(self.ctx)
            except Exception:
                log.exception("periodic job %s failed", job.name)

    async def run_once(self) -> int:
        """Starts every due step there is room for; returns how many were started."""
        room = self.concurrency - (len(self._running) - len(self._polling))
        poll_room = self.poll_concurrency - len(self._polling)
        if room <= 0 and poll_room <= 0:
            return 0
        started = 0
        for work in await pipeline.due_work(self.ctx, limit=(max(room, 0) + max(poll_room, 0)) * 2):
            polls = work.step is pipeline.Step.POLL
            if (poll_room if polls else room) <= 0 or work.generation_id in self._busy:
                continue
            self._busy.add(work.generation_id)
            task = asyncio.create_task(self._run(work))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            if polls:
                self._polling.add(task)
                task.add_done_callback(self._polling.discard)
                poll_room -= 1
            else:
                room -= 1
            started += 1
        return started

    async def _run(self, work: pipeline.DueWork) -> None:
        try:
            await run_step(self.ctx, work.step, work.generation_id, self.owner)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "step %s failed for %s", work.step, work.generation_id, extra={"generation_id": work.generation_id}
            )
        finally:
            self._busy.discard(work.generation_id)
            # A finished step often makes the next one due (submit → poll, poll → store).
            self._wakeup.set()

    async def drain(self, timeout: float = 60.0) -> None:
        """Runs until nothing is due or running (tests and the CLI use this)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            started = await self.run_once()
            if not started and not self._running:
                return
            await asyncio.sleep(0.05)
