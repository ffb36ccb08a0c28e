"""A real reelgate server on loopback for the reliability scenarios that need one."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from reelgate import media_render
from reelgate.app import create_app
from reelgate.services import accounts
from tests.conftest import make_settings
from tests.loopback_guard import Connections, guard_loopback
from tests.reliability.gateway import Gateway


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
    settings = make_settings(tmp / "data", f"sqlite:///{tmp / 'live.db'}", public_url=f"http://127.0.0.1:{port}")
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none")
    )
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


@pytest.fixture
def loopback_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    """Every TCP connection this process attempts; any off loopback is refused, recorded and fails the test."""
    yield from guard_loopback(monkeypatch)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real, small H.264 MP4 for the simulators to return (outputs are probed)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    media_render.encode_preview(
        media_render.RenderSpec(width=160, height=96, duration=1.0, fps=8, seed=3, prompt="lighthouse"), path
    )
    return path.read_bytes()


@pytest.fixture
async def start_gateway(
    tmp_path: Path, clip: bytes, loopback_guard: Connections
) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """`await start_gateway(["replicate", "pollo"], deadline=..., **settings)`: simulators plus one app on loopback."""
    gateways: list[Gateway] = []

    async def start(providers: list[str], **options: Any) -> Gateway:
        gateway = Gateway(tmp_path, clip, providers, **options)
        gateways.append(gateway)
        await gateway.start()
        return gateway

    try:
        yield start
    finally:
        for gateway in gateways:
            await gateway.stop()
