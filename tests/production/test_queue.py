"""The procrastinate queue: a lost enqueue is found by the reconciler, a dead worker's job is released,
and the production API reports the queue in /readyz and /metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from reelgate.bootstrap import build_context, close_context
from reelgate.db.queries.generations import generation_by_id
from reelgate.domain.errors import InsufficientCredits
from reelgate.queue import DRIVE_TASK, STEP_QUEUE, Queue, conninfo
from reelgate.services import generations, pipeline
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


async def test_a_submission_defers_its_job_in_its_own_transaction(tmp_path: Path, pg_database_url: str) -> None:
    """With the queue attached, the submission's transaction defers the generation's job: it exists as soon as the
    202 does, with no wake-up after the commit (the process could die right there); a refused submission leaves
    no job, and a replayed idempotency key no second one; submissions sharing a group commit get one job each."""
    settings = _settings(tmp_path, pg_database_url)
    ctx = await build_context(settings)
    queue = Queue(settings, pool_size=2)
    try:
        await queue.open(ctx)
        woken: list[str] = []
        ctx.wake = woken.append
        account = await make_account(ctx, credits=1_000)
        generation, _ = await generations.create_generation(ctx, account.id, ORDER, idempotency_key="key-1")
        replay, replayed = await generations.create_generation(ctx, account.id, ORDER, idempotency_key="key-1")
        assert replayed and replay.id == generation.id
        short = await make_account(ctx, credits=generation.credits_held - 1)
        with pytest.raises(InsufficientCredits):
            await generations.create_generation(ctx, short.id, ORDER)
        together = await asyncio.gather(*(generations.create_generation(ctx, account.id, ORDER) for _ in range(8)))
        assert woken == []
    finally:
        await queue.close()
        await close_context(ctx)
    made = [generation] + [g for g, _ in together]
    with psycopg.connect(conninfo(settings)) as conn:
        jobs = conn.execute(
            "SELECT queue_name, task_name, lock, queueing_lock, args, status, scheduled_at FROM procrastinate_jobs"
        ).fetchall()
    assert sorted(jobs) == sorted(
        (STEP_QUEUE, DRIVE_TASK, g.id, g.id, {"generation_id": g.id}, "todo", None) for g in made
    )
    async with queue_worker(settings):
        for g in made:
            assert await _wait_status(settings, g.id) == "succeeded"


async def test_wake_ups_defer_one_job_each_and_hurry_one_already_waiting(tmp_path: Path, pg_database_url: str) -> None:
    """Wake-ups go out in one statement; when a generation already has a job waiting (here, due in an hour), that
    statement fails as a whole and each is enqueued on its own: the waiting job is made due, the others get one."""
    settings = _settings(tmp_path, pg_database_url)
    ctx = await build_context(settings)
    try:
        account = await make_account(ctx, credits=1_000)
        made = [(await generations.create_generation(ctx, account.id, ORDER))[0] for _ in range(3)]  # no job yet
    finally:
        await close_context(ctx)
    ctx = await build_context(settings, migrate=False)
    queue = Queue(settings, pool_size=2)
    try:
        await queue.open(ctx)
        assert await queue.enqueue(made[0].id, at=datetime.now(UTC) + timedelta(hours=1))
        for generation in made:
            queue.wake(generation.id)
    finally:
        await queue.close()  # waits for the wake-ups to be written
        await close_context(ctx)
    with psycopg.connect(conninfo(settings)) as conn:
        jobs = conn.execute("SELECT lock, status, scheduled_at FROM procrastinate_jobs").fetchall()
    assert sorted(jobs) == sorted((g.id, "todo", None) for g in made)


async def test_the_job_of_a_dead_worker_is_released_and_its_generation_finishes(
    tmp_path: Path, pg_database_url: str
) -> None:
    settings = _settings(tmp_path, pg_database_url)
    # A worker that took the job and died (registered, silent for long, its job left `doing`), holding the
    # generation's lease for a long time yet (a lease that outlived its holder).
    generation_id = await _generation_held_by_a_dead_worker(settings)
    started = time.monotonic()
    async with queue_worker(settings):
        assert await _wait_status(settings, generation_id) == "succeeded"
    # Free once the queue judged the holder dead (3 heartbeats), not when the lease would have lapsed.
    assert time.monotonic() - started < 20


async def test_production_api_reports_the_queue(tmp_path: Path, pg_database_url: str) -> None:
    settings = _settings(tmp_path, pg_database_url)
    async for running in start_app(settings):
        ready = await running.client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["queue"]["ok"], ready.text
        metrics = (await running.client.get("/metrics", headers=METRICS_HEADERS)).text
        assert "reelgate_queue_depth 0.0" in metrics and "reelgate_queue_lag_seconds" in metrics


async def test_a_running_step_keeps_its_lease_past_the_lease_period(tmp_path: Path, pg_database_url: str) -> None:
    """Leases lapse 3 heartbeats after the worker stops beating, so a live worker renews the leases of the
    steps it runs on every beat; without that, the reconciler would hand a long step's generation on."""
    settings = _settings(tmp_path, pg_database_url)
    ctx = await build_context(settings)
    try:
        account = await make_account(ctx, credits=100)
        generation, _ = await generations.create_generation(ctx, account.id, ORDER)  # no wake-up: no job
    finally:
        await close_context(ctx)
    lease = "UPDATE generations SET lease_owner = %s, lease_until = now() + %s * interval '1 second' WHERE id = %s"
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        conn.execute(lease, ("someone", 3600, generation.id))
        async with queue_worker(settings) as queue:
            assert queue.ctx.config.lease_seconds == 3 * settings.queue_heartbeat_seconds
            with queue.holding(generation.id):  # as the drive task does around its steps
                conn.execute(lease, (queue.owner, queue.ctx.config.lease_seconds, generation.id))
                await asyncio.sleep(2 * queue.ctx.config.lease_seconds)
                row = conn.execute(
                    "SELECT lease_owner, lease_until > now(), status FROM generations WHERE id = %s", (generation.id,)
                )
                assert row.fetchone() == (queue.owner, True, "queued")


async def test_sigterm_stops_the_worker_in_order_and_nothing_is_stranded(tmp_path: Path, pg_database_url: str) -> None:
    """`reelgate worker` on SIGTERM: no new jobs, running ones finish (or are handed back), the process's
    worker leaves the queue's registry, and a later worker finishes whatever was left."""
    from reelgate.cli import _run_until_signalled

    settings = _settings(tmp_path, pg_database_url)
    ctx = await build_context(settings)
    queue = Queue(settings, pool_size=4)
    try:
        await queue.open(ctx)
        account = await make_account(ctx, credits=100)
        running = asyncio.create_task(_run_until_signalled(queue, settings, 2))
        created = [(await generations.create_generation(ctx, account.id, ORDER))[0] for _ in range(3)]
        await asyncio.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running, timeout=settings.worker_shutdown_seconds + 10)
    finally:
        await queue.close()
        await close_context(ctx)
    with psycopg.connect(conninfo(settings)) as conn:
        assert conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'").fetchone() == (0,)
    async with queue_worker(settings):
        for generation in created:
            assert await _wait_status(settings, generation.id) == "succeeded"


async def _generation_held_by_a_dead_worker(settings: Settings) -> str:
    """A generation whose job a worker took and then died with: the job `doing`, the lease still held."""
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
        worker_id = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') RETURNING id"
        ).fetchone()
        conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE lock = %s",
            (*worker_id, generation.id),
        )
        conn.execute(
            "UPDATE generations SET lease_owner = 'dead-worker', lease_until = now() + interval '1 hour' WHERE id = %s",
            (generation.id,),
        )
    return generation.id


def _jobs_of(settings: Settings, generation_id: str) -> list[str]:
    with psycopg.connect(conninfo(settings)) as conn:
        rows = conn.execute("SELECT status FROM procrastinate_jobs WHERE lock = %s ORDER BY id", (generation_id,))
        return [str(status) for (status,) in rows.fetchall()]


async def test_a_dead_workers_job_is_released_while_every_slot_of_the_survivor_is_busy(
    tmp_path: Path, pg_database_url: str
) -> None:
    """The moment a worker dies its survivors are often saturated; the reconciler runs beside the job slots,
    so it never waits for one to free up before handing the dead worker's generations on."""
    settings = _settings(tmp_path, pg_database_url)
    generation_id = await _generation_held_by_a_dead_worker(settings)
    async with queue_worker(settings, concurrency=1) as queue:
        release = asyncio.Event()

        @queue.app.task(name="tests.occupy_the_only_slot")
        async def occupy() -> None:
            await release.wait()

        await occupy.defer_async()
        try:
            deadline = time.monotonic() + 15
            while _jobs_of(settings, generation_id) != ["failed", "todo"] and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert _jobs_of(settings, generation_id) == ["failed", "todo"]
            with psycopg.connect(conninfo(settings)) as conn:
                busy = conn.execute(
                    "SELECT status FROM procrastinate_jobs WHERE task_name = 'tests.occupy_the_only_slot'"
                )
                assert busy.fetchone() == ("doing",)  # the only slot was taken the whole time
                lease = conn.execute("SELECT lease_owner FROM generations WHERE id = %s", (generation_id,))
                assert lease.fetchone() == (None,)
        finally:
            release.set()
        assert await _wait_status(settings, generation_id) == "succeeded"


async def test_reconcilers_of_several_workers_at_once_release_a_job_once(tmp_path: Path, pg_database_url: str) -> None:
    settings = _settings(tmp_path, pg_database_url)
    generation_id = await _generation_held_by_a_dead_worker(settings)
    contexts = [await build_context(settings, migrate=False) for _ in range(3)]
    queues = [Queue(settings, pool_size=2) for _ in contexts]
    try:
        for queue, ctx in zip(queues, contexts, strict=True):
            await queue.open(ctx)
        enqueued = await asyncio.gather(*(queue.reconcile() for queue in queues))
    finally:
        for queue, ctx in zip(queues, contexts, strict=True):
            await queue.close()
            await close_context(ctx)
    assert sum(enqueued) == 1
    assert _jobs_of(settings, generation_id) == ["failed", "todo"]


async def test_polls_run_on_their_own_budget_and_never_take_a_step(tmp_path: Path, pg_database_url: str) -> None:
    """With every step slot busy, a generation in flight is still polled (the poll budget is its own), and
    once its output is ready the download waits for a step slot instead of running on the poll budget."""
    settings = make_settings(tmp_path / "data", pg_database_url, **production_settings(sandbox_delay_seconds=2.0))
    ctx = await build_context(settings)
    try:
        account = await make_account(ctx, credits=100)
    finally:
        await close_context(ctx)
    async with queue_worker(settings, concurrency=1) as queue:
        release = asyncio.Event()

        @queue.app.task(name="tests.occupy_the_step_slot")
        async def occupy() -> None:
            await release.wait()

        queue.ctx.wake = queue.wake
        generation, _ = await generations.create_generation(queue.ctx, account.id, ORDER)
        try:
            deadline = time.monotonic() + 15
            while (await pipeline.read_generation(queue.ctx, generation.id)).status != "processing":  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await occupy.defer_async()  # the only step slot is taken from now on
            with psycopg.connect(conninfo(settings)) as conn:
                deadline = time.monotonic() + 15
                while True:
                    row = conn.execute(
                        "SELECT status, poll_count FROM generations WHERE id = %s", (generation.id,)
                    ).fetchone()
                    busy = conn.execute(
                        "SELECT status FROM procrastinate_jobs WHERE task_name = 'tests.occupy_the_step_slot'"
                    ).fetchone()
                    if row is not None and row[0] == "storing":
                        break
                    assert time.monotonic() < deadline, row
                    await asyncio.sleep(0.1)
                assert busy == ("doing",) and row[1] >= 2  # polled while the step slot was busy
                await asyncio.sleep(1.0)
                waiting = conn.execute(
                    "SELECT queue_name, status FROM procrastinate_jobs WHERE lock = %s AND status IN ('todo', 'doing')",
                    (generation.id,),
                ).fetchall()
                assert waiting == [("default", "todo")]  # the download waits for a step slot
                assert conn.execute("SELECT status FROM generations WHERE id = %s", (generation.id,)).fetchone() == (
                    "storing",
                )
        finally:
            release.set()
        assert await _wait_status(settings, generation.id) == "succeeded"


async def test_queue_connections_killed_while_idle_are_replaced_before_use(
    tmp_path: Path, pg_database_url: str
) -> None:
    """The queue pool checks a connection only after it sat idle (a check on every checkout would cost a round
    trip per query); connections a database restart killed are idle by then, so they never reach a query."""
    settings = _settings(tmp_path, pg_database_url)
    ctx = await build_context(settings)
    queue = Queue(settings, pool_size=3)
    try:
        await queue.open(ctx)
        assert (await queue.stats())["depth"] == 0  # the pool's connection has been used
        with psycopg.connect(conninfo(settings), autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        await asyncio.sleep(1.5)  # longer than IDLE_BEFORE_CHECK_SECONDS
        assert (await queue.stats())["depth"] == 0  # a query on a dead connection would raise here
    finally:
        await queue.close()
        await close_context(ctx)
