"""The procrastinate queue: a lost enqueue is found by the reconciler, a dead worker's job is released,
and the production API reports the queue in /readyz and /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg

from reelgate.bootstrap import build_context, close_context
from reelgate.db.queries.generations import generation_by_id
from reelgate.queue import Queue, conninfo
from reelgate.services import generations
from reelgate.services.generations import GenerationOrder
from reelgate.settings import Settings
from tests.conftest import METRICS_HEADERS, make_account, make_settings, start_app
from tests.production.harness import production_settings, queue_worker

ORDER = GenerationOrder(model="sandbox-t2v", prompt="a lighthouse at dusk", duration=1, resolution="480p")


async def _wait_status(settings: Settings, generation_id: str, timeout: float = 30) -> str:
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


def _settings(tmp_path: Path, pg_database_url: str) -> Settings:
    return make_settings(tmp_path / "data", pg_database_url, **production_settings())


async def test_a_generation_committed_but_never_enqueued_is_found_by_the_reconciler(
    tmp_path: Path, pg_database_url: str
) -> None:
    settings = _settings(tmp_path, pg_database_url)
    ctx = await build_context(settings)
    try:
        # As if the process died between the commit and the enqueue: ctx.wake does nothing.
        account = await make_account(ctx, credits=100)
        generation, _ = await generations.create_generation(ctx, account.id, ORDER)
    finally:
        await close_context(ctx)
    with psycopg.connect(conninfo(settings)) as conn:
        assert conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'reelgate.drive'"
        ).fetchone() == (0,)
    async with queue_worker(settings):
        assert await _wait_status(settings, generation.id) == "succeeded"


async def test_the_job_of_a_dead_worker_is_released_and_its_generation_finishes(
    tmp_path: Path, pg_database_url: str
) -> None:
    settings = _settings(tmp_path, pg_database_url)
    ctx = await build_context(settings)
    queue = Queue(settings, pool_size=2)
    try:
        await queue.open(ctx)
        account = await make_account(ctx, credits=100)
        generation, _ = await generations.create_generation(ctx, account.id, ORDER)
        await asyncio.sleep(0.2)  # the wake-up's enqueue runs in the background
    finally:
        await queue.close()
        await close_context(ctx)
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        # A worker that took the job and died: registered, silent for long, its job left `doing`.
        worker_id = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') RETURNING id"
        ).fetchone()
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s", worker_id)
    async with queue_worker(settings):
        assert await _wait_status(settings, generation.id) == "succeeded"


async def test_production_api_reports_the_queue(tmp_path: Path, pg_database_url: str) -> None:
    settings = _settings(tmp_path, pg_database_url)
    async for running in start_app(settings):
        ready = await running.client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["queue"]["ok"], ready.text
        metrics = (await running.client.get("/metrics", headers=METRICS_HEADERS)).text
        assert "reelgate_queue_depth 0.0" in metrics and "reelgate_queue_lag_seconds" in metrics
