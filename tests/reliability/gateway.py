"""Provider simulators behind one reelgate app on loopback; the app can be restarted with new settings."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn

from reelgate.app import create_app
from reelgate.db.records import Generation
from reelgate.db.sql import query
from reelgate.services.context import ServiceContext
from tests.conftest import Account, make_account, make_settings
from tests.e2e_providers.conftest import ORDERS, PROMPT, _catalog, _provider_settings, _simulator
from tests.helpers import assert_ledger_ok, generation_row, wait_for_terminal
from tests.simulators.base import Job, Simulator, listening_socket

TERMINAL = {"succeeded", "failed", "canceled", "expired"}
_EVENTS = query("SELECT from_status, to_status FROM generation_events WHERE generation_id = :id ORDER BY id")
_LEDGER_KINDS = query("SELECT kind FROM ledger_entries WHERE generation_id = :id ORDER BY id")
_INBOX = query("SELECT delivery_id, generation_id FROM webhook_inbox")


class Gateway:
    """One app with every provider in `providers` configured against its simulator (webhooks drive nothing
    unless a test delivers them: `drop_webhooks()` keeps them in each simulator's `webhooks.dropped`)."""

    def __init__(
        self,
        tmp_path: Path,
        clip: bytes,
        providers: list[str],
        *,
        deadline: int = 600,
        extra_hosts: tuple[str, ...] = (),
        **settings: Any,
    ):
        self.tmp_path = tmp_path
        self.sims: dict[str, Simulator] = {name: _simulator(name, clip) for name in providers}
        self.deadline = deadline
        self.settings = settings
        self.extra_hosts = list(extra_hosts)  # more loopback hosts the SSRF guard lets through
        self.app: Any = None
        self._app_stack: AsyncExitStack | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.public_url = ""
        self.client: httpx.AsyncClient
        self.account: Account

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        for sim in self.sims.values():
            sim.start()
        sock = listening_socket()
        self.public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await self.boot()
        config = uvicorn.Config(
            self._dispatch, interface="asgi3", lifespan="off", log_level="warning", access_log=False, ws="none"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        self.client = httpx.AsyncClient(base_url=self.public_url, timeout=30.0)
        self.account = await make_account(self.ctx, credits=100_000)

    async def _dispatch(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The port stays the same across restarts (providers keep the webhook URLs they were given)."""
        app = self.app
        if app is None:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    async def boot(self, **overrides: Any) -> None:
        self.settings.update(overrides)
        provider_settings: dict[str, Any] = {}
        for name, sim in self.sims.items():
            provider_settings.update(_provider_settings(name, sim))
        hosts = [urlsplit(sim.url).netloc for sim in self.sims.values()] + self.extra_hosts
        values: dict[str, Any] = {
            "public_url": self.public_url,
            "fetch_allow_hosts": ",".join(hosts),
            "catalog": _catalog(self.tmp_path / "catalog.yaml", self.deadline),
            **provider_settings,
            **self.settings,
        }
        settings = make_settings(self.tmp_path / "data", f"sqlite:///{self.tmp_path / 'rg.db'}", **values)
        app = create_app(settings)
        stack = AsyncExitStack()
        await stack.enter_async_context(app.router.lifespan_context(app))
        self._app_stack, self.app = stack, app

    async def restart(self, **overrides: Any) -> None:
        """Stops the app (its worker too) and starts a new one on the same database with `overrides`."""
        stack, self.app = self._app_stack, None
        if stack is not None:
            await stack.aclose()
        await self.boot(**overrides)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, timeout=10)
        if hasattr(self, "client"):
            await self.client.aclose()
        if self._app_stack is not None:
            await self._app_stack.aclose()
        for sim in self.sims.values():
            sim.stop()

    @property
    def ctx(self) -> ServiceContext:
        ctx: ServiceContext = self.app.state.ctx
        return ctx

    def drop_webhooks(self) -> None:
        for sim in self.sims.values():
            sim.webhooks.controls.drop = -1

    # -- generations -----------------------------------------------------------------------------
    async def create(self, provider: str, **extra: Any) -> str:
        order, price = ORDERS[provider]
        response = await self.client.post(
            "/api/v1/generations", headers=self.account.headers, json={**order, "prompt": PROMPT, **extra}
        )
        assert response.status_code == 202, response.text
        assert response.json()["credits_held"] == price
        return str(response.json()["id"])

    def job(self, provider: str, generation_id: str) -> Job | None:
        sim = self.sims[provider]
        with sim.lock:
            jobs = [j for j in sim.jobs.values() if f"g={generation_id}&" in (j.webhook_url or "")]
        assert len(jobs) <= 1, jobs
        return jobs[0] if jobs else None

    async def started(self, provider: str, generation_id: str, timeout: float = 20.0) -> Job:
        """Waits until the provider has the job and the generation is `processing`."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(provider, generation_id)
            if job is not None and (await self.get(generation_id))["status"] == "processing":
                return job
            assert time.monotonic() < deadline, f"{generation_id} never reached {provider}"
            await asyncio.sleep(0.05)

    async def get(self, generation_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/generations/{generation_id}", headers=self.account.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def final(self, generation_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return await wait_for_terminal(self.client, generation_id, self.account.headers, timeout=timeout)

    # -- what the database says ------------------------------------------------------------------
    async def row(self, generation_id: str) -> Generation:
        return await generation_row(self.ctx, generation_id)

    async def events(self, generation_id: str) -> list[tuple[str | None, str]]:
        rows = await self.ctx.db.read(lambda tx: tx.all(_EVENTS, {"id": generation_id}))
        return [(a, b) for a, b in rows]

    async def ledger_kinds(self, generation_id: str) -> list[str]:
        rows = await self.ctx.db.read(lambda tx: tx.all(_LEDGER_KINDS, {"id": generation_id}))
        return [str(kind) for (kind,) in rows]

    async def inbox(self) -> list[tuple[str, str | None]]:
        rows = await self.ctx.db.read(lambda tx: tx.all(_INBOX))
        return [(a, b) for a, b in rows]

    async def settled_once(self, generation_id: str) -> str:
        """One terminal event, last of all; one hold and exactly one capture or release. Returns the status."""
        events = await self.events(generation_id)
        terminal = [to for _, to in events if to in TERMINAL]
        assert len(terminal) == 1 and events[-1][1] == terminal[0], (generation_id, events)
        kinds = await self.ledger_kinds(generation_id)
        expected = "capture" if terminal[0] == "succeeded" else "release"
        assert sorted(kinds) == sorted(["hold", expected]), (generation_id, kinds)
        return terminal[0]

    async def check_ledger(self) -> None:
        await assert_ledger_ok(self.ctx)
        response = await self.client.get("/api/v1/me", headers=self.account.headers)
        assert response.json()["credits"]["held"] == 0, response.json()
