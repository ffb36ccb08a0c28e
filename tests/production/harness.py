"""Production mode inside a test: a procrastinate worker on its own ServiceContext, as `reelgate worker` runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from reelgate.bootstrap import build_context, close_context
from reelgate.queue import Queue
from reelgate.settings import Settings


@asynccontextmanager
async def queue_worker(settings: Settings, *, concurrency: int = 4) -> AsyncIterator[Queue]:
    ctx = await build_context(settings, migrate=False)
    queue = Queue(settings, pool_size=concurrency + 2)
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
