"""A loopback webhook receiver that verifies Standard Webhooks signatures, and fast retry settings."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.routes_client_webhooks import present_generation
from reelgate.services import client_webhook_delivery, client_webhooks
from reelgate.services.context import ServiceContext
from reelgate.settings import Settings
from tests.conftest import make_settings
from tests.simulators.base import AppServer


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Verifies every request with the secrets registered for its path; can fail the first N with 500 or a stall."""

    secrets: dict[str, list[str]] = field(default_factory=dict)
    faults: dict[str, deque[str]] = field(default_factory=dict)
    stall_seconds: float = 1.5
    requests: list[Seen] = field(default_factory=list)
    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    payloads: dict[tuple[str, str], Any] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: AppServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def fail(self, path: str, *kinds: str) -> None:
        self.faults.setdefault(path, deque()).extend(kinds)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        path, headers = scope["path"], dict(request.headers)
        with self.lock:
            self.requests.append(Seen(path, headers, body))
            queue = self.faults.get(path)
            fault = queue.popleft() if queue else None
        if fault == "stall":
            await asyncio.sleep(self.stall_seconds)  # longer than the sender's timeout: it gives up first
        if fault is not None:
            await Response(status_code=500)(scope, receive, send)
            return
        payload = None
        for secret in self.secrets.get(path, []):
            try:
                payload = Webhook(secret).verify(body, headers)
                break
            except WebhookVerificationError:
                continue
        if payload is None:
            with self.lock:
                self.rejected.append(f"{path} {headers.get('webhook-id')}")
            await Response(status_code=400)(scope, receive, send)
            return
        key = (path, headers["webhook-id"])
        with self.lock:
            self.accepted[key] += 1
            self.payloads[key] = payload
        await Response(status_code=204)(scope, receive, send)

    def accepted_on(self, path: str) -> dict[str, int]:
        with self.lock:
            return {msg: n for (p, msg), n in self.accepted.items() if p == path}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    found.server = AppServer(found)
    found.server.start()
    try:
        yield found
    finally:
        found.server.stop()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds instead of days between attempts, and a short per-attempt timeout."""
    monkeypatch.setattr(client_webhooks, "RETRY_DELAYS", (0.05, 0.1, 0.1, 0.1, 0.1))
    monkeypatch.setattr(client_webhook_delivery, "ATTEMPT_TIMEOUT", 0.5)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # The receiver listens on loopback, which the SSRF guard refuses unless allow-listed.
    return make_settings(tmp_path / "data", database_url, fetch_allow_hosts="127.0.0.1")


async def pump(ctx: ServiceContext, done: Callable[[], bool], *, timeout: float = 30.0) -> None:
    """Sends due deliveries until `done()` (the embedded worker may send some of them too)."""
    deadline = time.monotonic() + timeout
    while True:
        await client_webhook_delivery.run_due(ctx, present_generation)
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError("deliveries did not arrive in time")
        await asyncio.sleep(0.05)
