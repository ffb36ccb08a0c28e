"""Production mode's poll budget: due polls are found in the generations table and claimed in batches through
the row's lease, as the step budget's are. These attack what that shape must keep: a worker killed in the
middle of a batch hands every generation of it on within seconds; a webhook that makes the output ready
starts the download at once although the next poll is an hour away; a dropped database connection costs
nothing but a retry."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from reelgate import media_render
from reelgate.bootstrap import build_context, close_context
from reelgate.queue import conninfo
from reelgate.services import generations
from reelgate.services.generations import GenerationOrder
from reelgate.settings import Settings
from tests.conftest import make_account, make_settings, start_app
from tests.production.harness import production_settings, queue_worker
from tests.simulators.base import Fault
from tests.simulators.replicate import ReplicateSimulator

ORDER = GenerationOrder(model="t2v-14B", prompt="a lighthouse at dusk", duration=5, resolution="480p")
API_KEY = "test-key"


@pytest.fixture
def replicate(tmp_path: Path) -> Iterator[ReplicateSimulator]:
    clip = tmp_path / "clip.mp4"
    media_render.encode_preview(
        media_render.RenderSpec(width=160, height=96, duration=1.0, fps=8, seed=3, prompt="lighthouse"), clip
    )
    sim = ReplicateSimulator(api_key=API_KEY, video=clip.read_bytes())
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def _settings(tmp_path: Path, pg_database_url: str, sim: ReplicateSimulator, **overrides: object) -> Settings:
    return make_settings(
        tmp_path / "data",
        pg_database_url,
        **production_settings(
            replicate_api_token=API_KEY,
            replicate_base_url=sim.url,
            replicate_webhook_secret=sim.webhook_secret,
            fetch_allow_hosts="127.0.0.1",
            **overrides,
        ),
    )


def _environment(settings: Settings) -> dict[str, str]:
    """`reelgate worker`'s environment for the same settings as `_settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGATE_", "REPLICATE"))}
    return {
        **env,
        "REELGATE_DATABASE_URL": str(settings.database_url),
        "REELGATE_DATA_DIR": str(settings.data_dir),
        "REELGATE_SECRET_KEY": settings.secret_key,
        "REELGATE_PUBLIC_URL": str(settings.public_url),
        "REELGATE_EMBEDDED_WORKER": "false",
        "REELGATE_QUEUE_POLL_SECONDS": str(settings.queue_poll_seconds),
        "REELGATE_QUEUE_HEARTBEAT_SECONDS": str(settings.queue_heartbeat_seconds),
        "REELGATE_RECONCILE_INTERVAL_SECONDS": str(settings.reconcile_interval_seconds),
        "REELGATE_WORKER_SHUTDOWN_SECONDS": str(settings.worker_shutdown_seconds),
        "REELGATE_POLL_INITIAL_SECONDS": str(settings.poll_initial_seconds),
        "REELGATE_POLL_MAX_SECONDS": str(settings.poll_max_seconds),
        "REELGATE_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "REELGATE_REPLICATE_BASE_URL": str(settings.replicate_base_url),  # type: ignore[attr-defined]
        "REPLICATE_API_TOKEN": API_KEY,
        "REPLICATE_WEBHOOK_SECRET": str(settings.replicate_webhook_secret),  # type: ignore[attr-defined]
        "REELGATE_LOG_LEVEL": "WARNING",
    }


def _rows(settings: Settings, ids: list[str]) -> dict[str, tuple[str, int, str | None]]:
    """(status, poll_count, lease_owner) of each generation."""
    with psycopg.connect(conninfo(settings)) as conn:
        rows = conn.execute(
            "SELECT id, status, poll_count, lease_owner FROM generations WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    return {gid: (status, count, owner) for gid, status, count, owner in rows}


async def _create(settings: Settings, count: int) -> list[str]:
    """Generations committed without a wake-up: the worker's reconciler finds them and submits them."""
    ctx = await build_context(settings)
    try:
        account = await make_account(ctx, credits=10_000)
        return [(await generations.create_generation(ctx, account.id, ORDER))[0].id for _ in range(count)]
    finally:
        await close_context(ctx)


async def test_a_worker_killed_in_the_middle_of_a_batch_of_polls_hands_every_generation_on(
    tmp_path: Path, pg_database_url: str, replicate: ReplicateSimulator
) -> None:
    """Each poll of the batch hangs at the provider when the worker is SIGKILLed: the generations are leased to a
    process that will never release them. Every one is polled by the survivor once the leases lapse (three
    heartbeats: 3 s here), not after a lease period of minutes and not never."""
    batch = 5
    settings = _settings(tmp_path, pg_database_url, replicate, poll_initial_seconds=0.2, poll_max_seconds=0.5)
    ids = await _create(settings, batch)
    replicate.faults.add("status", Fault.stall(120), times=batch)  # the first poll of each hangs
    log = (tmp_path / "doomed.log").open("ab")
    doomed = subprocess.Popen(
        [sys.executable, "-m", "reelgate", "worker", "--concurrency", "2"],
        env=_environment(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while len(replicate.requests_to("status")) < batch:
            assert doomed.poll() is None, (tmp_path / "doomed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "doomed.log").read_text()[-3000:]
            await asyncio.sleep(0.1)
        before = _rows(settings, ids)
        owners = {owner for _, _, owner in before.values()}
        # The whole batch is in flight in the one worker, each generation under its lease.
        assert len(owners) == 1 and None not in owners, before
        assert {status for status, _, _ in before.values()} == {"processing"}
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(10)
        log.close()
    killed_at = time.monotonic()
    async with queue_worker(settings) as survivor:
        deadline = killed_at + 20
        while True:
            now = _rows(settings, ids)
            if all(now[g][1] > before[g][1] for g in ids):
                break
            assert time.monotonic() < deadline, (before, now)
            await asyncio.sleep(0.1)
        taken_over_after = time.monotonic() - killed_at
        # Polled again by the survivor, and not before the dead worker's leases could have lapsed.
        assert taken_over_after >= 0.5 * survivor.stalled_after, taken_over_after
        for job_id in list(replicate.jobs):
            replicate.complete(job_id)
        deadline = time.monotonic() + 30
        while {status for status, _, _ in _rows(settings, ids).values()} != {"succeeded"}:
            assert time.monotonic() < deadline, _rows(settings, ids)
            await asyncio.sleep(0.1)


async def test_a_webhook_during_a_long_wait_between_polls_starts_the_download_at_once(
    tmp_path: Path, pg_database_url: str, replicate: ReplicateSimulator
) -> None:
    """Nothing stands for a waiting poll but its row; the webhook that finds the output ready wakes the step
    budget with its own COMMIT, so the generation ends within seconds while its next poll is an hour away. The
    workers' timed scans are an hour apart too: only the notifications (the submission's, then the webhook's)
    can have woken them."""
    replicate.webhooks.controls.drop = -1  # the test delivers the webhook itself, through the API
    settings = _settings(
        tmp_path,
        pg_database_url,
        replicate,
        poll_initial_seconds=3600,
        poll_max_seconds=3600,
        queue_poll_seconds=3600,
    )
    ctx = await build_context(settings)
    try:
        account = await make_account(ctx, credits=10_000)
    finally:
        await close_context(ctx)
    async for running in start_app(settings):
        async with queue_worker(settings) as queue:
            # Its COMMIT wakes the step budget.
            generation, _ = await generations.create_generation(queue.ctx, account.id, ORDER)
            deadline = time.monotonic() + 20
            while _rows(settings, [generation.id])[generation.id][0] != "processing":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # nothing polls it meanwhile
            assert _rows(settings, [generation.id])[generation.id][:2] == ("processing", 0)
            (job_id,) = replicate.jobs
            replicate.complete(job_id)
            deadline = time.monotonic() + 10
            while not replicate.webhooks.dropped:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            delivered_at = time.monotonic()
            for url, _event, body in replicate.webhooks.dropped:
                response = await running.client.post(url, content=body, headers=replicate.webhooks.build(body))
                assert response.status_code == 200, response.text
            while _rows(settings, [generation.id])[generation.id][0] != "succeeded":
                assert time.monotonic() - delivered_at < 10, _rows(settings, [generation.id])
                await asyncio.sleep(0.05)
            assert _rows(settings, [generation.id])[generation.id][1] == 0  # finished by the webhook, never polled


async def test_database_connections_dropped_while_polls_run_cost_only_a_retry(
    tmp_path: Path, pg_database_url: str
) -> None:
    """Every connection to the database is cut three times while a batch of generations is being polled (what a
    PostgreSQL restart does): the poll loop survives its failed scans and polls, the worker starts its queue loop
    again, and every generation ends exactly once."""
    from reelgate.cli import _run_until_signalled
    from reelgate.queue import Queue

    settings = make_settings(tmp_path / "data", pg_database_url, **production_settings(sandbox_delay_seconds=4.0))
    sandbox = GenerationOrder(model="sandbox-t2v", prompt="a lighthouse at dusk", duration=1, resolution="480p")
    ctx = await build_context(settings)
    queue = Queue(settings, pool_size=6)
    try:
        await queue.open(ctx)
        account = await make_account(ctx, credits=10_000)
        running = asyncio.create_task(_run_until_signalled(queue, settings, 2))
        ids = [(await generations.create_generation(ctx, account.id, sandbox))[0].id for _ in range(12)]
        deadline = time.monotonic() + 30
        while not all(count > 0 for _, count, _ in _rows(settings, ids).values()):
            assert time.monotonic() < deadline, _rows(settings, ids)
            await asyncio.sleep(0.1)
        for _ in range(3):  # every generation is being polled now
            with psycopg.connect(conninfo(settings), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            await asyncio.sleep(0.7)
        deadline = time.monotonic() + 60
        while {status for status, _, _ in _rows(settings, ids).values()} != {"succeeded"}:
            assert time.monotonic() < deadline, _rows(settings, ids)
            assert not running.done()
            await asyncio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running, timeout=settings.worker_shutdown_seconds + 10)
    finally:
        await queue.close()
        await close_context(ctx)
    with psycopg.connect(conninfo(settings)) as conn:
        ended = conn.execute(
            "SELECT generation_id, count(*) FROM generation_events WHERE to_status = 'succeeded'"
            " AND generation_id = ANY(%s) GROUP BY generation_id",
            (ids,),
        ).fetchall()
        leased = conn.execute("SELECT count(*) FROM generations WHERE lease_owner IS NOT NULL").fetchone()
    assert sorted(ended) == sorted((gid, 1) for gid in ids)
    assert leased == (0,)
