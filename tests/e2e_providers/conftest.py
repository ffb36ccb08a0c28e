"""End-to-end harness: the app served by uvicorn on loopback (so simulators can deliver webhooks), one
provider simulator per test, a short-deadline catalog, and a socket guard that records every connection."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import yaml

from reelgate import media_render
from reelgate.app import create_app
from reelgate.services.context import ServiceContext
from tests.conftest import Account, make_account, make_settings
from tests.helpers import assert_ledger_ok, credits, wait_for_terminal
from tests.loopback_guard import Connections, guard_loopback
from tests.simulators.base import Job, Simulator, listening_socket, serve_on_this_loop
from tests.simulators.pollo import PolloSimulator
from tests.simulators.replicate import ReplicateSimulator
from tests.simulators.runpod import RunPodSimulator

PROVIDERS = ["runpod", "replicate", "pollo"]
PROMPT = "a lighthouse at dusk, waves rolling in"
# One model per provider from the default catalog, with a request and the price it must hold.
ORDERS: dict[str, tuple[dict[str, Any], int]] = {
    "runpod": ({"model": "ltx-2-t2v", "duration": 10, "resolution": "720p"}, 30),
    "replicate": ({"model": "t2v-14B", "duration": 5, "resolution": "480p"}, 10),
    "pollo": ({"model": "kling-v1-6", "duration": 5}, 100),
}
METADATA_HOST = "169.254.169.254"


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[Connections]:
    """Autouse: no test here may even try to leave loopback (a refused attempt fails the test)."""
    yield from guard_loopback(monkeypatch)


@pytest.fixture(scope="session")
def video_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real, small H.264 MP4: outputs are probed, so the simulators must return a decodable video."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    spec = media_render.RenderSpec(width=160, height=96, duration=1.0, fps=8, seed=3, prompt="lighthouse")
    media_render.encode_preview(spec, path)
    return path.read_bytes()


@pytest.fixture(params=PROVIDERS)
def provider_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _catalog(path: Path, deadline: int) -> Path:
    """The default catalog with `deadline` on the models under test, so expiry tests take seconds."""
    source = Path(__file__).resolve().parents[2] / "reelgate" / "catalog" / "default.yaml"
    data = yaml.safe_load(source.read_text())
    models = {order["model"] for order, _ in ORDERS.values()}
    for model in data["models"]:
        if model["id"] in models:
            model["deadline_seconds"] = deadline
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if not k.startswith("x-")}, sort_keys=False))
    return path


class Trap:
    """A loopback port nobody should ever connect to; `hits()` counts connections that arrived."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/video.mp4"

    def hits(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


@dataclass
class Harness:
    provider: str
    sim: Simulator
    ctx: ServiceContext
    client: httpx.AsyncClient
    account: Account
    public_url: str
    trap: Trap
    price: int

    @property
    def headers(self) -> dict[str, str]:
        return self.account.headers

    async def create(self, **extra: Any) -> str:
        order, _ = ORDERS[self.provider]
        response = await self.client.post(
            "/api/v1/generations", headers=self.headers, json={**order, "prompt": PROMPT, **extra}
        )
        assert response.status_code == 202, response.text
        assert "model" in extra or response.json()["credits_held"] == self.price
        return str(response.json()["id"])

    async def get(self, generation_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/generations/{generation_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_for(
        self, generation_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = await self.get(generation_id)
            if check(body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met for {generation_id}: {body}")
            await asyncio.sleep(0.05)

    async def wait_status(self, generation_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
        return await self.wait_for(generation_id, lambda b: b["status"] == status, timeout)

    async def final(self, generation_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return await wait_for_terminal(self.client, generation_id, self.headers, timeout=timeout)

    async def started(self, generation_id: str) -> Job:
        """Waits until the provider has the job and the generation is `processing`; returns the job."""
        await self.wait_status(generation_id, "processing")
        with self.sim.lock:
            jobs = [j for j in self.sim.jobs.values() if f"g={generation_id}&" in (j.webhook_url or "")]
        assert len(jobs) == 1, jobs
        return jobs[0]

    async def idle(self, seconds: float) -> None:
        """Let the worker and the webhook handler run for a while (never block this event loop)."""
        await asyncio.sleep(seconds)

    async def webhooks_idle(self) -> None:
        # Deliveries run on the simulator's loop and land on ours: never block this loop while they do.
        await asyncio.to_thread(self.sim.webhooks.wait_idle)

    async def credits(self) -> dict[str, int]:
        return await credits(self.client, self.headers)

    async def post_webhook(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(url, content=body, headers=headers)

    async def check_ledger(self) -> None:
        await assert_ledger_ok(self.ctx)
        assert (await self.credits())["held"] == 0


def with_query(url: str, **changes: str | None) -> str:
    """`url` with query parameters replaced (or removed when None): forged webhook URLs."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def wire_body(sim: Simulator, job: Job) -> bytes:
    """What the provider posts for `job` as it is now (Pollo's callback carries taskId and status too)."""
    body = sim.wire(job)
    if isinstance(sim, PolloSimulator):
        body["status"] = body["generations"][0]["status"]
    return json.dumps(body).encode()


def _simulator(provider: str, video: bytes) -> Simulator:
    classes: dict[str, type[Simulator]] = {
        "runpod": RunPodSimulator,
        "replicate": ReplicateSimulator,
        "pollo": PolloSimulator,
    }
    return classes[provider](video=video)


def _provider_settings(provider: str, sim: Simulator) -> dict[str, Any]:
    if provider == "runpod":
        return {"runpod_api_key": "test-key", "runpod_base_url": sim.url, "runpod_ltx_endpoint_id": "ltx-endpoint"}
    if provider == "replicate":
        return {
            "replicate_api_token": "test-key",
            "replicate_base_url": sim.url,
            "replicate_webhook_secret": sim.webhook_secret,
        }
    return {"pollo_api_key": "test-key", "pollo_base_url": sim.url, "pollo_webhook_secret": sim.webhook_secret}


Start = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def e2e(provider_name: str, tmp_path: Path, video_bytes: bytes) -> AsyncIterator[Start]:
    """A factory: `await e2e(polling=..., deadline=...)` starts the simulator and the app.

    polling=False makes the first poll wait 5 minutes, so whatever happens came by webhook."""
    async with AsyncExitStack() as stack:

        async def start(
            *, polling: bool = False, deadline: int = 600, database_url: str | None = None, **overrides: Any
        ) -> Harness:
            sim = _simulator(provider_name, video_bytes)
            sim.start()
            stack.callback(sim.stop)
            trap = Trap()
            stack.callback(trap.close)
            sock = listening_socket()
            public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            sim_host = urlsplit(sim.url).netloc
            database_url = database_url or f"sqlite:///{tmp_path / 'reelgate.db'}"
            production: dict[str, Any] = {}
            if not database_url.startswith("sqlite"):
                from tests.production.harness import production_settings

                production = production_settings()
            settings = make_settings(
                tmp_path / "data",
                database_url,
                **production,
                public_url=public_url,
                # Only the simulator's own host:port: any other loopback or private address stays refused.
                fetch_allow_hosts=sim_host,
                catalog=_catalog(tmp_path / "catalog.yaml", deadline),
                poll_initial_seconds=0.1 if polling else 300.0,
                poll_max_seconds=0.5 if polling else 600.0,
                **{**_provider_settings(provider_name, sim), **overrides},
            )
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            if not settings.embedded:
                # PostgreSQL runs in production mode: an API-only app and a queue worker beside it.
                from tests.production.harness import queue_worker

                await stack.enter_async_context(queue_worker(settings))
            await serve_on_this_loop(stack, app, sock)
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=public_url, timeout=30.0))
            ctx: ServiceContext = app.state.ctx
            account = await make_account(ctx, credits=1000)
            return Harness(provider_name, sim, ctx, client, account, public_url, trap, ORDERS[provider_name][1])

        yield start
