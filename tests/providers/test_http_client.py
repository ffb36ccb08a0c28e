"""The providers' HTTP client lets an idle connection go before the servers it talks to would close it."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reelgate.providers.http import KEEPALIVE_SECONDS, make_client
from tests.simulators.base import AppServer


async def _client_port(request: Request) -> JSONResponse:
    client: Any = request.client
    return JSONResponse({"port": client.port})


async def test_an_idle_connection_is_not_reused_past_the_keep_alive_period() -> None:
    """A submit sent on a connection the server is closing at that moment fails after it was sent, an outcome
    nobody can know; servers close idle connections after 2 s (gunicorn) or 5 s (uvicorn, Node.js), and httpx's
    own default keeps them 5 s. Calls close together share a connection; a call after a longer pause opens a
    new one."""
    app = Starlette(routes=[Route("/run", _client_port, methods=["POST"])])
    with AppServer(app) as server:
        async with make_client() as client:
            first = (await client.post(f"{server.url}/run", json={})).json()["port"]
            again = (await client.post(f"{server.url}/run", json={})).json()["port"]
            assert again == first  # reused while fresh
            await asyncio.sleep(KEEPALIVE_SECONDS + 0.3)
            later = (await client.post(f"{server.url}/run", json={})).json()["port"]
            assert later != first
    assert KEEPALIVE_SECONDS < 2.0  # below the shortest idle timeout of common servers
