"""A real reelgate served by uvicorn on 127.0.0.1 (embedded mode, its own data dir), for the official SDK."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from fastapi import FastAPI

from reelgate.app import create_app
from reelgate.services.context import ServiceContext
from tests.conftest import Account, make_account, make_settings
from tests.simulators.base import listening_socket

T = TypeVar("T")


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop

    @property
    def ctx(self) -> ServiceContext:
        ctx: ServiceContext = self.app.state.ctx
        return ctx

    def call(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        """Runs a coroutine on the server's own loop (its database engine lives there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def account(self, credits: int = 100) -> Account:
        return self.call(make_account(self.ctx, credits=credits))


def serve(app: FastAPI) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    sock = listening_socket()
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=2, ws="none"
    )
    server = uvicorn.Server(config)
    holder: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            holder["loop"] = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        asyncio.run(main())

    thread = threading.Thread(target=run, name="reelgate-live", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("reelgate did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", holder["loop"]
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path / "data",
        None,  # embedded mode: SQLite under the data dir, the worker inside the server
        sandbox_delay_seconds=0.5,
        poll_initial_seconds=0.1,
        poll_max_seconds=0.3,
        public_url="http://127.0.0.1",
    )
    app = create_app(settings)
    for url, loop in serve(app):
        yield LiveServer(url=url, app=app, loop=loop)
