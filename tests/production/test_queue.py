"""Production mode's workers: due steps and polls are found in the generations table and claimed through the
rows' leases, a submission's COMMIT wakes them, a dead worker's generations are taken over, and the production
API reports the backlog in /readyz and /metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from reelgate import tasks
from reelgate.bootstrap import build_context, close_context
from reelgate.db.queries.step_wakeups import CHANNEL, LISTEN
from reelgate.domain.errors import InsufficientCredits
from reelgate.queue import DRIVE_TASK, Queue, conninfo
from reelgate.services import generations, pipeline
from reelgate.services.context import ServiceContext
from reelgate.services.generations import GenerationOrder
from reelgate.services.pipeline import Step
from reelgate.settings import Settings
from tests.conftest import METRICS_HEADERS, make_account, make_settings, start_app
from tests.production.harness import production_settings, queue_worker, wait_for_status

ORDER = GenerationOrder(model="sandbox-t2v", prompt="a lighthouse at dusk", duration=1, resolution="480p")


def _settings(tmp_path: Path, pg_database_url: str, **overrides: object) -> Settings:
    return make_settings(tmp_path / "data", pg_database_url, **production_settings(**overrides))


async def _created(settings: Settings, count: int = 1) -> list[str]:
    """Generations submitted with no queue attached: no notification, as if it had been lost."""
    ctx = await build_context(settings)
    try:
        account = await make_account(ctx, credits=100 * count)
        return [(await generations.create_generation(ctx, account.id, ORDER))[0].id for _ in range(count)]
    finally:
        await close_context(ctx)


@pytest.fixture
def listener(pg_database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection that hears the workers' notifications, as a worker's does."""
    with psycopg.connect(pg_database_url, autocommit=True) as conn:
        conn.execute(LISTEN)
        yield conn


def _heard(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """The notifications that arrived on the channel since the last look."""
    return sum(1 for notice in conn.notifies(timeout=0.5) if notice.channel == CHANNEL)


async def test_a_generation_whose_wake_up_was_lost_is_found_by_the_step_scan(
    tmp_path: Path, pg_database_url: str
) -> None:
    settings = _settings(tmp_path, pg_database_url)
    (generation_id,) = await _created(settings)
    async with queue_worker(settings):
        assert await wait_for_status(settings, generation_id) == "succeeded"
    with psycopg.connect(conninfo(settings)) as conn:
        jobs = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s", (DRIVE_TASK,))
        assert jobs.fetchone() == (0,)


async def test_a_submission_wakes_the_workers_with_its_own_commit(
    tmp_path: Path, pg_database_url: str, listener: psycopg.Connection[tuple[object, ...]]
) -> None:
    """With the queue attached, the submission's transaction sends the notification with its COMMIT: no wake-up
    after the commit (the process could die right there), none for a refused submission or a replayed
    idempotency key, and one per COMMIT for submissions that share a group commit."""
    settings = _settings(tmp_path, pg_database_url)
    ctx = await build_context(settings)
    queue = Queue(settings, pool_size=2)
    try:
        await queue.open(ctx)
        woken: list[str] = []
        ctx.wake = woken.append
        account = await make_account(ctx, credits=1_000)
        _heard(listener)  # the account's own writes notify nobody; this only starts from a clean slate
        generation, _ = await generations.create_generation(ctx, account.id, ORDER, idempotency_key="key-1")
        assert _heard(listener) == 1
        replay, replayed = await generations.create_generation(ctx, account.id, ORDER, idempotency_key="key-1")
        assert replayed and replay.id == generation.id
        short = await make_account(ctx, credits=generation.credits_held - 1)
        with pytest.raises(InsufficientCredits):
            await generations.create_generation(ctx, short.id, ORDER)
        assert _heard(listener) == 0
        together = await asyncio.gather(*(generations.create_generation(ctx, account.id, ORDER) for _ in range(8)))
        assert 1 <= _heard(listener) <= 8
        assert woken == []
    finally:
        await queue.close()
        await close_context(ctx)
    async with queue_worker(settings):
        for made in [generation] + [g for g, _ in together]:
            assert await wait_for_status(settings, made.id) == "succeeded"


async def test_wake_ups_after_commits_go_out_as_one_notification(
    tmp_path: Path, pg_database_url: str, listener: psycopg.Connection[tuple[object, ...]]
) -> None:
    """Wake-ups that come together (webhooks, polls finding outputs ready) cost one short write between them."""
    settings = _settings(tmp_path, pg_database_url)
    made = await _created(settings, 3)
    ctx = await build_context(settings, migrate=False)
    queue = Queue(settings, pool_size=2)
    try:
        await queue.open(ctx)
        for generation_id in made:
            queue.wake(generation_id)
    finally:
        await queue.close()  # waits for the notification to be written
        await close_context(ctx)
    assert _heard(listener) == 1


async def test_the_lease_of_a_dead_worker_lapses_and_its_generation_finishes(
    tmp_path: Path, pg_database_url: str
) -> None:
    """A worker that claimed a generation and died: its lease lapses three heartbeats after its last renewal, and
    the next scan of any worker takes the generation over."""
    settings = _settings(tmp_path, pg_database_url)
    (generation_id,) = await _created(settings)
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        conn.execute(
            "UPDATE generations SET lease_owner = 'dead-worker', lease_until = now() + %s * interval '1 second'"
            " WHERE id = %s",
            (3 * settings.queue_heartbeat_seconds, generation_id),
        )
    started = time.monotonic()
    async with queue_worker(settings):
        assert await wait_for_status(settings, generation_id) == "succeeded"
    assert time.monotonic() - started < 20


async def test_production_api_reports_the_queue(tmp_path: Path, pg_database_url: str) -> None:
    settings = _settings(tmp_path, pg_database_url)
    await _created(settings, 2)  # due, and no worker running
    async for running in start_app(settings):
        ready = await running.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        queue = ready.json()["checks"]["queue"]
        assert queue["ok"] and queue["depth"] == 2 and queue["jobs_waiting"] >= 0, queue
        metrics = (await running.client.get("/metrics", headers=METRICS_HEADERS)).text
        assert "reelgate_queue_depth 2.0" in metrics and "reelgate_queue_lag_seconds" in metrics


async def test_a_running_step_keeps_its_lease_past_the_lease_period(tmp_path: Path, pg_database_url: str) -> None:
    """Leases lapse 3 heartbeats after the worker stops beating, so a live worker renews the leases of the
    steps it runs on every beat; without that, another worker's scan would take a long step's generation."""
    settings = _settings(tmp_path, pg_database_url)
    (generation_id,) = await _created(settings)
    lease = "UPDATE generations SET lease_owner = %s, lease_until = now() + %s * interval '1 second' WHERE id = %s"
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        conn.execute(lease, ("someone", 3600, generation_id))
        async with queue_worker(settings) as queue:
            assert queue.ctx.config.lease_seconds == 3 * settings.queue_heartbeat_seconds
            with queue.holding(generation_id):  # as a budget does around the work it claimed
                conn.execute(lease, (queue.owner, queue.ctx.config.lease_seconds, generation_id))
                await asyncio.sleep(2 * queue.ctx.config.lease_seconds)
                row = conn.execute(
                    "SELECT lease_owner, lease_until > now(), status FROM generations WHERE id = %s", (generation_id,)
                )
                assert row.fetchone() == (queue.owner, True, "queued")


async def test_sigterm_stops_the_worker_in_order_and_nothing_is_stranded(tmp_path: Path, pg_database_url: str) -> None:
    """`reelgate worker` on SIGTERM: no new work, running steps finish (or are handed back), every lease it held
    is let go, its procrastinate worker leaves the registry, and a later worker finishes whatever was left."""
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
        assert conn.execute("SELECT count(*) FROM generations WHERE lease_owner IS NOT NULL").fetchone() == (0,)
    async with queue_worker(settings):
        for generation in created:
            assert await wait_for_status(settings, generation.id) == "succeeded"


async def _held_by_an_earlier_versions_dead_job(settings: Settings) -> str:
    """A generation whose per-step job (as an earlier version deferred them) a worker took and then died with:
    the job `doing` under a worker silent for an hour, the generation's lease still held for an hour."""
    (generation_id,) = await _created(settings)
    queue = Queue(settings, pool_size=1)
    await queue.app.open_async()
    try:
        await queue.app.configure_task(DRIVE_TASK, lock=generation_id, queueing_lock=generation_id).defer_async(
            generation_id=generation_id
        )
    finally:
        await queue.app.close_async()
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        worker_id = conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') RETURNING id"
        ).fetchone()
        conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE lock = %s",
            (*worker_id, generation_id),
        )
        conn.execute(
            "UPDATE generations SET lease_owner = 'dead-worker', lease_until = now() + interval '1 hour' WHERE id = %s",
            (generation_id,),
        )
    return generation_id


def _jobs_of(settings: Settings, generation_id: str) -> list[str]:
    with psycopg.connect(conninfo(settings)) as conn:
        rows = conn.execute("SELECT status FROM procrastinate_jobs WHERE lock = %s ORDER BY id", (generation_id,))
        return [str(status) for (status,) in rows.fetchall()]


async def test_an_earlier_versions_job_of_a_dead_worker_is_released_and_its_generation_finishes(
    tmp_path: Path, pg_database_url: str
) -> None:
    """After an upgrade, a job of the old kind whose worker died is released by the reconciler, which lets the
    generation's lease go: it finishes long before the lease would have lapsed."""
    settings = _settings(tmp_path, pg_database_url)
    generation_id = await _held_by_an_earlier_versions_dead_job(settings)
    started = time.monotonic()
    async with queue_worker(settings):
        assert await wait_for_status(settings, generation_id) == "succeeded"
    assert time.monotonic() - started < 20
    assert _jobs_of(settings, generation_id) == ["failed"]


async def test_a_dead_workers_job_is_released_while_the_only_job_slot_is_busy(
    tmp_path: Path, pg_database_url: str
) -> None:
    """The reconciler runs beside procrastinate's slot, so a long periodic job never keeps it from releasing a
    dead worker's jobs."""
    settings = _settings(tmp_path, pg_database_url)
    generation_id = await _held_by_an_earlier_versions_dead_job(settings)
    async with queue_worker(settings) as queue:
        release = asyncio.Event()

        @queue.app.task(name="tests.occupy_the_only_slot")
        async def occupy() -> None:
            await release.wait()

        await occupy.defer_async()
        try:
            deadline = time.monotonic() + 15
            while _jobs_of(settings, generation_id) != ["failed"] and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert _jobs_of(settings, generation_id) == ["failed"]
            with psycopg.connect(conninfo(settings)) as conn:
                busy = conn.execute(
                    "SELECT status FROM procrastinate_jobs WHERE task_name = 'tests.occupy_the_only_slot'"
                )
                assert busy.fetchone() == ("doing",)  # the only slot was taken the whole time
            assert await wait_for_status(settings, generation_id) == "succeeded"
        finally:
            release.set()


async def test_reconcilers_of_several_workers_at_once_release_a_job_once(tmp_path: Path, pg_database_url: str) -> None:
    settings = _settings(tmp_path, pg_database_url)
    generation_id = await _held_by_an_earlier_versions_dead_job(settings)
    contexts = [await build_context(settings, migrate=False) for _ in range(3)]
    queues = [Queue(settings, pool_size=2) for _ in contexts]
    try:
        for queue, ctx in zip(queues, contexts, strict=True):
            await queue.open(ctx)
        released = await asyncio.gather(*(queue.reconcile() for queue in queues))
    finally:
        for queue, ctx in zip(queues, contexts, strict=True):
            await queue.close()
            await close_context(ctx)
    assert sum(released) == 1
    assert _jobs_of(settings, generation_id) == ["failed"]


async def test_polls_run_on_their_own_budget_and_never_take_a_step(
    tmp_path: Path, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the only step slot busy, a generation in flight is still polled (the poll budget is its own), and
    once its output is ready the download waits for a step slot instead of running on the poll budget."""
    settings = _settings(tmp_path, pg_database_url, sandbox_delay_seconds=2.0)
    blocking: set[str] = set()
    release = asyncio.Event()
    submit = tasks.STEP_HANDLERS[Step.SUBMIT]

    async def held_submit(ctx: ServiceContext, generation_id: str) -> object:
        if generation_id in blocking:
            await release.wait()
        return await submit(ctx, generation_id)

    monkeypatch.setitem(tasks.STEP_HANDLERS, Step.SUBMIT, held_submit)
    ctx = await build_context(settings)
    try:
        account = await make_account(ctx, credits=200)
    finally:
        await close_context(ctx)
    async with queue_worker(settings, concurrency=1) as queue:
        generation, _ = await generations.create_generation(queue.ctx, account.id, ORDER)
        try:
            deadline = time.monotonic() + 15
            while (await pipeline.read_generation(queue.ctx, generation.id)).status != "processing":  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            blocker, _ = await generations.create_generation(
                queue.ctx, account.id, ORDER, idempotency_key="the-blocker"
            )
            blocking.add(blocker.id)  # its submit takes the only step slot from now on
            with psycopg.connect(conninfo(settings)) as conn:
                deadline = time.monotonic() + 15
                while True:
                    row = conn.execute(
                        "SELECT status, poll_count FROM generations WHERE id = %s", (generation.id,)
                    ).fetchone()
                    if row is not None and row[0] == "storing":
                        break
                    assert time.monotonic() < deadline, row
                    await asyncio.sleep(0.1)
                assert row[1] >= 2  # polled while the step slot was busy
                await asyncio.sleep(1.0)
                held = conn.execute("SELECT status, lease_owner FROM generations WHERE id = %s", (blocker.id,))
                assert held.fetchone() == ("queued", queue.owner)  # the blocker's submit had the slot all along
                still = conn.execute("SELECT status FROM generations WHERE id = %s", (generation.id,))
                assert still.fetchone() == ("storing",)  # the download waits for a step slot
        finally:
            release.set()
        assert await wait_for_status(settings, generation.id) == "succeeded"
        assert await wait_for_status(settings, blocker.id) == "succeeded"


async def test_a_turn_runs_its_steps_under_the_one_claim_its_budget_took(
    tmp_path: Path, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budgets claim their items in one write and let each go once its turn ends: the steps in between run
    under that lease, with no claim or release of their own (each would be one more write per step, and a
    release between two steps of a turn would let another worker's scan take the generation mid-turn)."""
    settings = _settings(tmp_path, pg_database_url)
    granted: list[str] = []
    released: list[str] = []
    single_claims: list[str] = []
    claim_many, release_claim = pipeline.claim_many, pipeline.release_claim

    async def counted_claim_many(ctx: ServiceContext, generation_ids: list[str], owner: str) -> set[str]:
        got = await claim_many(ctx, generation_ids, owner)
        granted.extend(got)
        return got

    async def counted_release(ctx: ServiceContext, generation_id: str, owner: str, *, pause: float = 0.0) -> None:
        released.append(generation_id)
        await release_claim(ctx, generation_id, owner, pause=pause)

    async def refused_claim(ctx: ServiceContext, generation_id: str, owner: str) -> bool:
        single_claims.append(generation_id)
        return False

    monkeypatch.setattr(pipeline, "claim_many", counted_claim_many)
    monkeypatch.setattr(pipeline, "release_claim", counted_release)
    monkeypatch.setattr(pipeline, "claim", refused_claim)
    generation_ids = await _created(settings, count=3)
    async with queue_worker(settings):
        for generation_id in generation_ids:
            assert await wait_for_status(settings, generation_id) == "succeeded"
    assert single_claims == []
    for generation_id in generation_ids:
        # submit, at least one poll, the download: a turn each at least, and each claim let go exactly once
        assert granted.count(generation_id) >= 3
        assert released.count(generation_id) == granted.count(generation_id)


def _submit_fails_once(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Makes the first submit step raise (a bug, a blip) and later ones run as usual; returns when each began."""
    submit = tasks.STEP_HANDLERS[Step.SUBMIT]
    attempts: list[float] = []

    async def flaky_submit(ctx: ServiceContext, generation_id: str) -> object:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RuntimeError("a blip")
        return await submit(ctx, generation_id)

    monkeypatch.setitem(tasks.STEP_HANDLERS, Step.SUBMIT, flaky_submit)
    return attempts


async def test_a_failing_step_is_tried_again_after_a_pause(
    tmp_path: Path, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that raises (a bug, a blip) lets its lease go and is left alone for a growing while, then taken
    again: nothing is stranded, and one broken generation cannot take a slot on every scan."""
    settings = _settings(tmp_path, pg_database_url)
    attempts = _submit_fails_once(monkeypatch)
    (generation_id,) = await _created(settings)
    async with queue_worker(settings):
        assert await wait_for_status(settings, generation_id) == "succeeded"
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 1.5  # the first pause is 2 s, give or take a fifth


async def test_a_failing_steps_pause_holds_for_every_worker(
    tmp_path: Path, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pause is kept in the generation's row, not in the memory of the worker that saw the failure: a second
    worker scanning meanwhile leaves the generation alone too."""
    settings = _settings(tmp_path, pg_database_url)
    attempts = _submit_fails_once(monkeypatch)
    (generation_id,) = await _created(settings)
    async with queue_worker(settings), queue_worker(settings):
        assert await wait_for_status(settings, generation_id) == "succeeded"
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 1.5


async def test_a_lost_notification_connection_leaves_the_steps_to_the_timed_scan(
    tmp_path: Path, pg_database_url: str
) -> None:
    """A database restart cuts the connection that hears of due steps: the worker keeps scanning on its timer,
    reconnects, and work submitted meanwhile is done."""
    settings = _settings(tmp_path, pg_database_url)
    async with queue_worker(settings) as queue:
        account = await make_account(queue.ctx, credits=200)
        killed = 0
        deadline = time.monotonic() + 10
        while not killed and time.monotonic() < deadline:  # the worker listens once it has started its budgets
            with psycopg.connect(conninfo(settings), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query = %s",
                    (LISTEN,),
                ).fetchone()
            killed = 0 if row is None else row[0]
            if not killed:
                await asyncio.sleep(0.1)
        assert killed >= 1
        made = [(await generations.create_generation(queue.ctx, account.id, ORDER))[0] for _ in range(2)]
        for generation in made:
            assert await wait_for_status(settings, generation.id) == "succeeded"


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
        assert await queue.jobs_waiting() >= 0  # the pool's connection has been used
        with psycopg.connect(conninfo(settings), autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        await asyncio.sleep(1.5)  # longer than IDLE_BEFORE_CHECK_SECONDS
        assert await queue.jobs_waiting() >= 0  # a query on a dead connection would raise here
    finally:
        await queue.close()
        await close_context(ctx)
