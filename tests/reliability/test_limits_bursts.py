"""Scenario 9, limits under bursts: rate limits, in-flight and spend caps hold; /healthz fast under slow clients."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from reelgate.app import create_app
from reelgate.db.queries.limits import in_flight
from reelgate.db.sql import in_states, query
from reelgate.domain.jobs import ACTIVE_STATES
from tests.conftest import Account, make_account, make_settings
from tests.helpers import assert_ledger_ok

T = TypeVar("T")
ORDER = {"model": "sandbox-t2v", "prompt": "a kite over the dunes [hang]", "duration": 5}  # 10 credits, never ends
IN_FLIGHT = 5
GLOBAL_CAP = 300
_ALL_ACTIVE = query(f"SELECT count(*) FROM generations WHERE status IN {in_states(ACTIVE_STATES)}")


class Live:
    """A reelgate server in a thread of its own (its own event loop), so the test's load cannot slow it."""

    def __init__(self, app: Any, server: uvicorn.Server, url: str) -> None:
        self.app, self.server, self.url = app, server, url

    def call(self, coro: Awaitable[T]) -> T:
        loop = self.server.servers[0].get_loop()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)  # type: ignore[arg-type]

    def account(self, credits: int = 10_000) -> Account:
        return self.call(make_account(self.app.state.ctx, credits=credits))

    def active(self, user_id: str | None = None) -> int:
        async def count() -> int:
            db = self.app.state.ctx.db
            if user_id is not None:
                return int(await db.read(lambda tx: in_flight(tx, user_id)))
            return int(await db.read(lambda tx: tx.scalar(_ALL_ACTIVE)))

        return self.call(count())


@contextmanager
def live(tmp_path: Path, database_url: str, **settings: Any) -> Iterator[Live]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(make_settings(tmp_path / "data", database_url, public_url=f"http://127.0.0.1:{port}", **settings))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield Live(app, server, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _code(response: httpx.Response) -> str:
    if response.status_code == 202:
        return "accepted"
    error = response.json()["error"]
    return f"{response.status_code} {error['code']} {error['details'].get('scope', '')}".strip()


async def _burst(client: httpx.AsyncClient, headers: list[dict[str, str]]) -> list[httpx.Response]:
    return await asyncio.gather(*(client.post("/api/v1/generations", json=ORDER, headers=h) for h in headers))


SETTINGS = {"rate_limit_per_key": "20/minute", "max_in_flight": IN_FLIGHT, "daily_spend_cap_global": GLOBAL_CAP}


async def test_burst_from_one_user(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> None:
    with live(tmp_path, database_url, **SETTINGS) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            # One key, 60 at once: 20 pass the rate limit and 5 of those fit under the in-flight cap.
            one = server.account()
            responses = await _burst(client, [one.headers] * 60)
            codes = Counter(_code(r) for r in responses)
            assert server.active(one.id) <= IN_FLIGHT, codes
            assert codes == {"accepted": 5, "429 rate_limited in_flight": 15, "429 rate_limited key": 40}, codes
            for response in responses:
                if response.status_code == 429:
                    assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert (await client.get("/healthz")).status_code == 200
        server.call(assert_ledger_ok(server.app.state.ctx))


async def test_burst_from_many_users(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> None:
    with live(tmp_path, database_url, **SETTINGS) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            # Twelve users, six each, all at once: nobody above the in-flight cap, everyone together stopped by
            # the global daily spend cap (30 jobs of 10 credits fit under 300).
            users = [server.account() for _ in range(12)]
            responses = await _burst(client, [u.headers for u in users for _ in range(6)])
            codes = Counter(_code(r) for r in responses)
            per_user = [server.active(u.id) for u in users]
            assert max(per_user) <= IN_FLIGHT and server.active() <= GLOBAL_CAP // 10, (codes, per_user)
            assert codes["accepted"] == GLOBAL_CAP // 10, codes
            assert set(codes) <= {"accepted", "429 rate_limited in_flight", "402 spend_cap_reached global"}, codes
            assert codes["402 spend_cap_reached global"] > 0
        server.call(assert_ledger_ok(server.app.state.ctx))


async def _slow_client(port: int, key: str, seconds: float) -> None:
    """Headers of a POST, then a byte of its body a second, for `seconds`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /api/v1/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n".encode()
        )
        await writer.drain()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(1.0)
    except ConnectionError:
        pass  # the server may hang up on a client this slow: fine
    finally:
        writer.close()


async def test_spend_cap_burst_and_health_under_slow_clients(tmp_path: Path, sqlite_url: str) -> None:
    with live(tmp_path, sqlite_url, rate_limit_per_key="20/minute", daily_spend_cap_user=30) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            user = server.account()
            codes = Counter(_code(r) for r in await _burst(client, [user.headers] * 15))
            assert codes == {"accepted": 3, "402 spend_cap_reached user": 12}, codes

            port = int(server.url.rsplit(":", 1)[1])
            slow = [asyncio.create_task(_slow_client(port, user.key, 8.0)) for _ in range(50)]
            await asyncio.sleep(1.0)  # every slow client is connected and trickling
            timings = []
            for _ in range(10):
                started = time.monotonic()
                response = await client.get("/healthz")
                timings.append(time.monotonic() - started)
                assert response.status_code == 200
                await asyncio.sleep(0.3)
            await asyncio.wait_for(asyncio.gather(*slow), timeout=20)
        assert max(timings) < 1.0, timings  # a sanity bound with slack, not a benchmark
        server.call(assert_ledger_ok(server.app.state.ctx))
