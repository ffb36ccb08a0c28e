"""Limits that hold across API processes: request rates and per-address limits counted in the real Redis,
the in-flight cap counted in PostgreSQL. Two apps stand for two processes behind a load balancer; each
test first shows that counters kept per process let the same traffic through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import redis

from reelgate.settings import Settings
from tests.conftest import Running, make_account, make_settings, start_app

ORDER = {"model": "sandbox-t2v", "prompt": "a kite over the dunes", "duration": 1, "resolution": "480p"}


@asynccontextmanager
async def _app(settings: Settings) -> AsyncIterator[Running]:
    async for running in start_app(settings):
        yield running


async def _two_apps(stack: AsyncExitStack, tmp_path: Path, database_url: str, **overrides: object) -> list[Running]:
    apps = []
    for name in ("api-a", "api-b"):  # each with its own data dir, as on two hosts
        settings = make_settings(tmp_path / name, database_url, embedded_worker=False, **overrides)
        apps.append(await stack.enter_async_context(_app(settings)))
    return apps


async def _statuses_per_key(apps: list[Running], key: str, rounds: int) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    statuses = []
    for _ in range(rounds):
        for running in apps:
            statuses.append((await running.client.get("/api/v1/me", headers=headers)).status_code)
    return statuses


async def test_per_key_rate_limit_counts_across_api_processes(
    tmp_path: Path, pg_database_url: str, redis_url: str, redis_key_prefix: str
) -> None:
    limits = {"rate_limit_per_key": "4/minute", "rate_limit_per_user": "1000/minute"}
    async with AsyncExitStack() as stack:
        alone = await _two_apps(stack, tmp_path / "memory", pg_database_url, **limits)
        account = await make_account(alone[0].ctx)
        # Counted per process: each lets 4 through, so 6 requests split over two processes all pass.
        assert await _statuses_per_key(alone, account.key, 3) == [200] * 6
    async with AsyncExitStack() as stack:
        shared = await _two_apps(
            stack, tmp_path / "redis", pg_database_url, redis_url=redis_url, redis_key_prefix=redis_key_prefix, **limits
        )
        account = await make_account(shared[0].ctx)
        statuses = await _statuses_per_key(shared, account.key, 3)
        assert statuses == [200, 200, 200, 200, 429, 429]
        refused = await shared[0].client.get("/api/v1/me", headers={"Authorization": f"Bearer {account.key}"})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limited"


async def test_per_address_limit_on_anonymous_estimates_counts_across_api_processes(
    tmp_path: Path, pg_database_url: str, redis_url: str, redis_key_prefix: str
) -> None:
    """Counted across both processes of one deployment, and apart from another deployment that shares the Redis
    under a prefix of its own (staging beside production)."""
    limits = {"redis_url": redis_url, "rate_limit_estimate_per_address": "3/minute"}
    body = {"model": "sandbox-t2v", "duration": 1, "resolution": "480p"}
    async with AsyncExitStack() as stack:
        apps = await _two_apps(stack, tmp_path / "one", pg_database_url, redis_key_prefix=redis_key_prefix, **limits)
        statuses = [(await apps[i % 2].client.post("/api/v1/estimate", json=body)).status_code for i in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        other = await _two_apps(
            stack, tmp_path / "other", pg_database_url, redis_key_prefix=f"{redis_key_prefix}-other", **limits
        )
        assert (await other[0].client.post("/api/v1/estimate", json=body)).status_code == 200


async def test_in_flight_cap_holds_across_api_processes(tmp_path: Path, pg_database_url: str) -> None:
    async with AsyncExitStack() as stack:
        apps = await _two_apps(stack, tmp_path, pg_database_url, max_in_flight=3)
        account = await make_account(apps[0].ctx, credits=1000)
        headers = {"Authorization": f"Bearer {account.key}"}
        # No worker runs: every accepted generation stays in flight. A burst split over both processes.
        answers = await asyncio.gather(
            *(apps[i % 2].client.post("/api/v1/generations", json=ORDER, headers=headers) for i in range(8))
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [202] * 3 + [429] * 5, [a.text for a in answers]


async def test_generate_limit_counts_across_api_processes(
    tmp_path: Path, pg_database_url: str, redis_url: str, redis_key_prefix: str
) -> None:
    limits = {"generate_limit": "2/15 minutes", "max_in_flight": 50}

    async def submits(apps: list[Running], key: str) -> list[int]:
        headers = {"Authorization": f"Bearer {key}"}
        return [
            (await running.client.post("/api/v1/generations", json=ORDER, headers=headers)).status_code
            for running in (*apps, *apps)
        ]

    async with AsyncExitStack() as stack:
        alone = await _two_apps(stack, tmp_path / "memory", pg_database_url, **limits)
        account = await make_account(alone[0].ctx, credits=100)
        assert await submits(alone, account.key) == [202] * 4  # counted per process: 2 + 2
    async with AsyncExitStack() as stack:
        shared = await _two_apps(
            stack, tmp_path / "redis", pg_database_url, redis_url=redis_url, redis_key_prefix=redis_key_prefix, **limits
        )
        account = await make_account(shared[0].ctx, credits=100)
        assert await submits(shared, account.key) == [202, 202, 429, 429]


async def test_an_api_process_lets_its_redis_connections_go_when_it_stops(
    tmp_path: Path, pg_database_url: str, redis_url: str, redis_key_prefix: str
) -> None:
    """The counters' connections belong to the process's event loop: they are closed with the app, not left for
    the garbage collector to find after the loop is gone."""
    name = redis_key_prefix  # unique to this test: the connections' CLIENT SETNAME
    named_url = f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={name}"
    settings = make_settings(
        tmp_path, pg_database_url, embedded_worker=False, redis_url=named_url, redis_key_prefix=redis_key_prefix
    )
    async with _app(settings) as running:
        account = await make_account(running.ctx)
        headers = {"Authorization": f"Bearer {account.key}"}
        assert (await running.client.get("/api/v1/me", headers=headers)).status_code == 200
        assert _connections_named(redis_url, name) >= 1
    assert _connections_named(redis_url, name) == 0


def _connections_named(redis_url: str, name: str) -> int:
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        return sum(1 for connection in client.client_list() if connection.get("name") == name)
    finally:
        client.close()
