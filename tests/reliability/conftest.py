"""A real reelgate server on loopback for the reliability scenarios that need one."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from reelgate.app import create_app
from reelgate.services import accounts
from tests.conftest import make_settings


@dataclass
class LiveServer:
    url: str
    headers: dict[str, str]
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("live")
    port = _free_port()
    settings = make_settings(
        tmp / "data", f"sqlite+aiosqlite:///{tmp / 'live.db'}", public_url=f"http://127.0.0.1:{port}"
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)

    async def make_key() -> str:
        ctx = app.state.ctx
        user = await accounts.create_user(ctx, "fuzz@example.com", "fuzz-password", credits=1_000_000)
        return (await accounts.create_api_key(ctx, user.id, "fuzz")).secret

    key = asyncio.run_coroutine_threadsafe(make_key(), _server_loop(server)).result(timeout=30)
    try:
        yield LiveServer(url=url, headers={"Authorization": f"Bearer {key}"}, data_dir=tmp / "data")
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _server_loop(server: uvicorn.Server) -> asyncio.AbstractEventLoop:
    """The event loop uvicorn runs on, so test set-up can call the app's services from this thread."""
    if not server.servers:
        raise RuntimeError("server has no listening socket yet")
    return server.servers[0].get_loop()
