"""Production mode inside a test: a worker on its own ServiceContext, as `reelgate worker` runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from reelgate.bootstrap import build_context, close_context
from reelgate.db.queries.generations import generation_by_id
from reelgate.queue import Queue
from reelgate.settings import Settings


@asynccontextmanager
async def queue_worker(settings: Settings, *, concurrency: int = 4) -> AsyncIterator[Queue]:
    ctx = await build_context(settings, migrate=False)
    queue = Queue(settings, pool_size=4)
    await queue.open(ctx)
    task = asyncio.create_task(queue.run_worker(concurrency=concurrency))
    try:
        yield queue
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await queue.close()
        await close_context(ctx)


def production_settings(**overrides: object) -> dict[str, object]:
    """Quick queue timings for tests: scheduled polls are picked up within 0.1 s."""
    return {
        "embedded_worker": False,
        "queue_poll_seconds": 0.1,
        "queue_heartbeat_seconds": 1.0,
        "reconcile_interval_seconds": 1,
        "worker_shutdown_seconds": 5.0,
        **overrides,
    }


async def wait_for_status(settings: Settings, generation_id: str, timeout: float = 30) -> str:
    """The generation's status once it has ended, or whatever it is when `timeout` runs out."""
    ctx = await build_context(settings, migrate=False)
    try:
        deadline = time.monotonic() + timeout
        while True:
            generation = await ctx.db.read(lambda tx: generation_by_id(tx, generation_id))
            status = generation.status if generation else "missing"
            if status in {"succeeded", "failed", "expired", "canceled"} or time.monotonic() > deadline:
                return str(status)
            await asyncio.sleep(0.1)
    finally:
        await close_context(ctx)
