"""Webhook delivery for simulators, with controls to drop, duplicate, delay, reorder, age or forge them."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import httpx

Signer = Callable[[str, int, bytes, bool], dict[str, str]]


@dataclass
class WebhookControls:
    drop: int = 0  # drop the next N deliveries; -1 drops all
    duplicate: int = 0  # send each delivery this many extra times (same id, as a vendor retry would)
    delay: float = 0.0  # seconds before each delivery
    hold: bool = False  # keep deliveries until release(); release(reverse=True) reorders them
    stale_seconds: int = 0  # sign with a timestamp this far in the past
    bad_signature: bool = False
    retries: int = 0  # resend after a non-2xx answer, like RunPod's "2 more times" (docs/providers/runpod.md#webhooks)
    retry_delay: float = 0.05


@dataclass
class Delivery:
    url: str
    event: str
    msg_id: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    error: str | None = None
    sent_at: float = field(default_factory=time.time)


class WebhookSender:
    """Sends webhooks from the simulator's own event loop, so tests never block on delivery."""

    def __init__(self, server: Any, sign: Signer) -> None:
        self.server = server
        self.sign = sign
        self.controls = WebhookControls()
        self.deliveries: list[Delivery] = []  # every attempt that went out, in order
        self.dropped: list[tuple[str, str, bytes]] = []
        self._held: list[tuple[str, str, bytes, str]] = []
        self._pending: list[Future[Any]] = []
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()

    def build(
        self, body: bytes, msg_id: str | None = None, *, timestamp: int | None = None, corrupt: bool = False
    ) -> dict[str, str]:
        """Headers for `body` exactly as a delivery would carry them (for direct verification tests)."""
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {"content-type": "application/json"}
        headers.update(self.sign(msg_id or f"msg_{uuid.uuid4().hex}", ts, body, corrupt))
        return headers

    def send(self, url: str | None, event: str, body: bytes, msg_id: str | None = None) -> None:
        if not url:
            return
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        with self._lock:
            if self.controls.drop:
                if self.controls.drop > 0:
                    self.controls.drop -= 1
                self.dropped.append((url, event, body))
                return
            if self.controls.hold:
                self._held.append((url, event, body, msg_id))
                return
        for _ in range(1 + self.controls.duplicate):
            self._schedule(url, event, body, msg_id)

    def release(self, reverse: bool = False) -> None:
        with self._lock:
            held, self._held = self._held, []
            self.controls.hold = False
        ordered = list(reversed(held)) if reverse else held
        # One task sends them one after another: concurrent sends could land in any order, and the
        # order is what a test of reordering is about.
        self._track(self.server.submit(self._deliver_in_order(ordered)))

    async def _deliver_in_order(self, held: list[tuple[str, str, bytes, str]]) -> None:
        for url, event, body, msg_id in held:
            await self._deliver(url, event, body, msg_id)

    def _schedule(self, url: str, event: str, body: bytes, msg_id: str) -> None:
        self._track(self.server.submit(self._deliver(url, event, body, msg_id)))

    def _track(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.append(future)

    async def _deliver(self, url: str, event: str, body: bytes, msg_id: str) -> None:
        controls = self.controls
        if controls.delay:
            await asyncio.sleep(controls.delay)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        for attempt in range(1 + controls.retries):
            ts = int(time.time()) - controls.stale_seconds
            headers = self.build(body, msg_id, timestamp=ts, corrupt=controls.bad_signature)
            delivery = Delivery(url, event, msg_id, headers, body)
            with self._lock:
                self.deliveries.append(delivery)
            try:
                response = await self._client.post(url, content=body, headers=headers)
                delivery.status = response.status_code
                if response.status_code < 300:
                    return
            except httpx.HTTPError as exc:
                delivery.error = repr(exc)
            if attempt < controls.retries:
                await asyncio.sleep(controls.retry_delay)

    def wait_idle(self, timeout: float = 10.0) -> list[Delivery]:
        """Block until every scheduled delivery finished; returns all deliveries so far."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [f for f in self._pending if not f.done()]
                self._pending = pending
            if not pending:
                return list(self.deliveries)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} webhook deliveries still pending")
            time.sleep(0.01)

    def close(self) -> None:
        if self._client is not None and self.server.loop is not None and self.server.loop.is_running():
            try:
                self.server.submit(self._client.aclose()).result(timeout=5)
            except Exception:  # noqa: S110 - best effort at shutdown
                pass
        self._client = None
