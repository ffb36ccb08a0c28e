"""Scenario 6, dependency faults: latency, resets and a blackhole on PostgreSQL. The API answers 503
(never 500), nothing is half-applied, and every 202 given before the fault keeps its generation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reelgate.db.sql import query
from reelgate.services import analytics
from tests.conftest import PG_ADMIN_URL, Running, make_account, make_settings, start_app
from tests.helpers import assert_ledger_ok
from tests.production.harness import production_settings, queue_worker
from tests.reliability.fault_proxy import FaultProxy

BODY = {"model": "sandbox-t2v", "prompt": "[hang] a fox waiting out the outage", "duration": 2}


@pytest.fixture
async def proxied(tmp_path: Path, pg_database_url: str) -> AsyncIterator[tuple[Running, FaultProxy]]:
    proxy = FaultProxy("127.0.0.1", 5432)
    await proxy.start()
    url = pg_database_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    settings = make_settings(tmp_path / "data", url, request_timeout_seconds=3.0)
    try:
        async for running in start_app(settings):
            yield running, proxy
    finally:
        await proxy.stop()


async def _submit(running: Running, headers: dict[str, str], n: int) -> list[int]:
    responses = [await running.client.post("/api/v1/generations", headers=headers, json=BODY) for _ in range(n)]
    for r in responses:
        assert r.status_code in (202, 503), r.text
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "service_unavailable"
    return [r.status_code for r in responses]


async def test_faults_answer_503_and_lose_nothing(proxied: tuple[Running, FaultProxy]) -> None:
    running, proxy = proxied
    user = await make_account(running.ctx, credits=1000)
    accepted = []
    for _ in range(4):
        r = await running.client.post("/api/v1/generations", headers=user.headers, json=BODY)
        assert r.status_code == 202
        accepted.append(r.json()["id"])

    proxy.set_mode("reset")
    assert set(await _submit(running, user.headers, 4)) == {503}
    assert (await running.client.get("/api/v1/me", headers=user.headers)).status_code == 503

    # Under added latency the service works again once the pool has replaced the connections the reset phase broke;
    # how soon depends on the pool's reconnect backoff and on the machine's load, so the test waits for it (every
    # answer meanwhile is a 202 or a 503) rather than counting on the first three submits.
    proxy.set_mode("latency")
    codes: list[int] = []
    deadline = time.monotonic() + 30
    while 202 not in codes and time.monotonic() < deadline:
        codes += await _submit(running, user.headers, 1)
    assert 202 in codes, codes

    proxy.set_mode("blackhole")
    started = time.monotonic()
    assert set(await _submit(running, user.headers, 2)) == {503}
    assert time.monotonic() - started < 30

    proxy.set_mode("pass")
    await asyncio.sleep(0.5)
    listed = []
    for _ in range(20):
        response = await running.client.get("/api/v1/generations?limit=100", headers=user.headers)
        if response.status_code == 200:
            listed = [g["id"] for g in response.json()["data"]]
            break
        await asyncio.sleep(0.5)
    assert set(accepted) <= set(listed)
    me = (await running.client.get("/api/v1/me", headers=user.headers)).json()["credits"]
    quoted = sum(g["credits_quoted"] for g in response.json()["data"])
    assert me == {"available": 1000 - quoted, "held": quoted}
    await assert_ledger_ok(running.ctx)
    for gid in listed:
        await running.client.post(f"/api/v1/generations/{gid}/cancel", headers=user.headers)
    await assert_ledger_ok(running.ctx)


@pytest.mark.parametrize("mode", ["embedded worker", "production queue"])
async def test_connections_killed_mid_run_lose_no_accepted_work(
    tmp_path: Path, pg_database_url: str, mode: str
) -> None:
    """PostgreSQL drops the server's connections (pg_terminate_backend, as a restart or a failover would) while
    submits run: transactions that had not reached COMMIT run again on a new connection, and one whose COMMIT's
    answer was lost is answered by what the server says became of it, so most submits still succeed, every
    generation that exists was answered 202, and none is applied twice. In production mode the submissions'
    transactions also notify the workers with their COMMIT: a worker started afterwards finishes every
    generation that was answered 202 up, whatever became of the notifications."""
    production = mode == "production queue"
    settings = make_settings(tmp_path / "data", pg_database_url, max_in_flight=0, embedded_worker=not production)
    name = pg_database_url.rsplit("/", 1)[1]
    async for running in start_app(settings):
        user = await make_account(running.ctx, credits=100_000)
        stop = asyncio.Event()
        killing = asyncio.create_task(_kill_connections(name, stop))
        codes = await asyncio.gather(*(_one(running, user.headers) for _ in range(60)))
        stop.set()
        kills = await killing
        assert kills > 0
        assert set(codes) <= {202, 503}
        listed = (await running.client.get("/api/v1/generations?limit=100", headers=user.headers)).json()["data"]
        assert len(listed) == codes.count(202)
        quoted = sum(g["credits_quoted"] for g in listed)
        me = (await running.client.get("/api/v1/me", headers=user.headers)).json()["credits"]
        assert me == {"available": 100_000 - quoted, "held": quoted}
        await assert_ledger_ok(running.ctx)
    if production:
        worker_settings = make_settings(tmp_path / "data", pg_database_url, max_in_flight=0, **production_settings())
        # Each prompt hangs in the sandbox: a worker has taken a generation once it is no longer queued.
        async with queue_worker(worker_settings):
            deadline = time.monotonic() + 30
            while _queued(pg_database_url, [g["id"] for g in listed]) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        assert _queued(pg_database_url, [g["id"] for g in listed]) == []


async def _kill_connections(database: str, stop: asyncio.Event) -> int:
    kills = 0
    while not stop.is_set():
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            found = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        kills += len(found)
        await asyncio.sleep(0.02)
    return kills


def _queued(database_url: str, generation_ids: list[str]) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM generations WHERE status = 'queued' AND id = ANY(%s)", (generation_ids,)
        ).fetchall()
    return [generation_id for (generation_id,) in rows]


async def _one(running: Running, headers: dict[str, str]) -> int:
    response = await running.client.post("/api/v1/generations", headers=headers, json=BODY)
    if response.status_code == 503:
        assert response.json()["error"]["code"] == "service_unavailable"
    return response.status_code


_LONG_READS = {
    "sqlite": query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000000) SELECT count(*) FROM n"
    ),
    "postgresql": query("SELECT pg_sleep(2)"),
}


async def test_a_long_read_does_not_hold_up_other_requests(running: Running) -> None:
    """A multi-second read (an analytics summary, `ledger check`) runs on a database thread: health checks, a
    submit and a balance all answer while it is still running."""
    user = await make_account(running.ctx, credits=100)
    long_read = asyncio.create_task(running.ctx.db.read(lambda tx: tx.scalar(_LONG_READS[running.ctx.db.dialect])))
    await asyncio.sleep(0.1)
    for _ in range(20):
        assert (await running.client.get("/healthz")).status_code == 200
    assert (await running.client.post("/api/v1/generations", headers=user.headers, json=BODY)).status_code == 202
    assert (await running.client.get("/api/v1/me", headers=user.headers)).status_code == 200
    assert not long_read.done()
    await long_read


async def test_the_analytics_summary_does_not_hold_up_other_requests(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary's arithmetic over every job of its window (most of a second for a large business) runs off the
    event loop: /healthz answers while it is still computing."""
    computing, release = threading.Event(), threading.Event()
    summarized = analytics._summarized

    def held_up(*args: Any) -> analytics.Summary:
        computing.set()
        release.wait(10)  # on the event loop this would hold every request for the whole wait
        return summarized(*args)

    monkeypatch.setattr(analytics, "_summarized", held_up)
    summary = asyncio.create_task(analytics.summary(running.ctx, days=30))
    for _ in range(1000):
        if computing.is_set():
            break
        await asyncio.sleep(0.01)
    assert (await running.client.get("/healthz")).status_code == 200
    assert not summary.done()
    release.set()
    assert (await summary).totals.jobs == 0
