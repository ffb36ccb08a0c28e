"""Scenario 7, misbehaving provider: faulty status answers and output downloads at RunPod, Replicate and Pollo."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from reelgate.providers import http as provider_http
from reelgate.services import safe_fetch
from tests.e2e_providers.conftest import METADATA_HOST, Connections, Trap
from tests.reliability.gateway import Gateway
from tests.simulators.base import AppServer, Fault, _reset

CAP = 64 * 1024  # REELGATE_MAX_OUTPUT_BYTES in this test; the clip is about 10 KB
CHUNK = 64 * 1024
TIMEOUT = 1.5  # seconds: the provider API client's and the output download's timeouts in this test
MAX_TRANSIENT = 8
# Output behaviour → (final status, error code, output requests the app may make).
CASES: dict[str, tuple[str, str | None, int]] = {
    "ok": ("succeeded", None, 1),
    "flaky500": ("succeeded", None, 3),  # two 500s, then the video
    "flaky429": ("succeeded", None, 2),  # 429 with Retry-After: 2, then the video
    "reset": ("succeeded", None, 2),  # a TCP reset, then the video
    "stall": ("succeeded", None, 2),  # silent for longer than the timeout, then the video
    "always503": ("failed", "output_unavailable", MAX_TRANSIENT),
    "half": ("failed", "invalid_output", 1),  # the first half of a real MP4
    "html": ("failed", "invalid_output", 1),  # an HTML page, served as text/html
    "declared_big": ("failed", "output_too_large", 1),  # Content-Length over the cap
    "endless": ("failed", "output_too_large", 1),  # chunked, no length, never ends
    "redirect_metadata": ("failed", "unsafe_output_url", 1),  # 302 to 169.254.169.254
    "redirect_loopback": ("failed", "unsafe_output_url", 1),  # 302 to a loopback port not allow-listed
}
# Status-route faults per simulator; each lands on whichever job polls next, and all are transient.
STATUS_FAULTS = {
    "runpod": [Fault.error(429, retry_after="1"), Fault.error(500), Fault.reset(), Fault.malformed()],
    "replicate": [Fault.stall(TIMEOUT + 2.5), Fault.error(500), Fault.error(503)],
    "pollo": [Fault.malformed(), Fault.reset(), Fault.error(429, retry_after="1")],
}


class Outputs:
    """A loopback file host whose every path misbehaves in its own way; records each request and byte sent."""

    def __init__(self, video: bytes, trap_url: str) -> None:
        self.video = video
        self.trap_url = trap_url
        self.hits: dict[str, list[float]] = defaultdict(list)
        self.sent: dict[str, int] = defaultdict(int)
        self.hung_up: dict[str, bool] = {}
        self.server = AppServer(self._asgi)

    def url(self, case: str, n: int) -> str:
        return f"{self.server.url}/{case}/{n}.mp4"

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        case = path.split("/")[1]
        self.hits[path].append(time.monotonic())
        attempt = len(self.hits[path])
        if case == "flaky500" and attempt <= 2:
            return await self._answer(send, 500, b"oops")
        if case == "flaky429" and attempt == 1:
            return await self._answer(send, 429, b"slow down", ((b"retry-after", b"2"),))
        if case == "always503":
            return await self._answer(send, 503, b"unavailable")
        if case == "reset" and attempt == 1:
            return await _reset(send)
        if case == "stall" and attempt == 1:
            await asyncio.sleep(TIMEOUT + 1.5)
        if case == "half":
            return await self._answer(send, 200, self.video[: len(self.video) // 2], ((b"content-type", b"video/mp4"),))
        if case == "html":
            page = b"<!doctype html><html><body>Your video is ready! Click here.</body></html>" * 20
            return await self._answer(send, 200, page, ((b"content-type", b"text/html; charset=utf-8"),))
        if case.startswith("redirect_"):
            target = f"http://{METADATA_HOST}/latest/meta-data/" if case.endswith("metadata") else self.trap_url
            return await self._answer(send, 302, b"", ((b"location", target.encode()),))
        if case == "trickle":
            return await self._trickle(path, send)
        if case in ("declared_big", "endless"):
            return await self._stream(path, send, declared=case == "declared_big")
        await self._answer(send, 200, self.video, ((b"content-type", b"video/mp4"),))

    async def _answer(self, send: Any, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        head = [(b"content-length", str(len(body)).encode()), *headers]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, path: str, send: Any, *, declared: bool) -> None:
        """Up to 64 MiB of zeros in 64 KiB chunks, stopping as soon as the client hangs up."""
        total = 1024 * CHUNK
        headers = [(b"content-type", b"video/mp4")] + ([(b"content-length", str(total).encode())] if declared else [])
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        cycle = getattr(send, "__self__", None)
        for _ in range(1024):
            if getattr(cycle, "disconnected", False):
                break
            await send({"type": "http.response.body", "body": bytes(CHUNK), "more_body": True})
            self.sent[path] += CHUNK
            await asyncio.sleep(0)  # a write to a reset socket returns at once: let connection_lost run
        self.hung_up[path] = bool(getattr(cycle, "disconnected", False))
        if not self.hung_up[path]:
            await send({"type": "http.response.body", "body": b""})

    async def _trickle(self, path: str, send: Any) -> None:
        """A byte every half second (each read well inside the timeout) for at most 30 s."""
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"video/mp4")]})
        cycle = getattr(send, "__self__", None)
        for _ in range(60):
            if getattr(cycle, "disconnected", False):
                break
            await send({"type": "http.response.body", "body": b"\0", "more_body": True})
            self.sent[path] += 1
            await asyncio.sleep(0.5)
        self.hung_up[path] = bool(getattr(cycle, "disconnected", False))
        if not self.hung_up[path]:
            await send({"type": "http.response.body", "body": b""})


async def _until(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider API client's 30 s and the output download's 60 s, shortened so stalls time out quickly."""
    monkeypatch.setattr(provider_http, "DEFAULT_TIMEOUT", httpx.Timeout(TIMEOUT, connect=TIMEOUT))
    defaults = safe_fetch.fetch_to_file.__kwdefaults__
    assert defaults is not None and defaults["timeout"] == 60.0
    monkeypatch.setitem(defaults, "timeout", TIMEOUT)


@pytest.mark.usefixtures("short_timeouts")
async def test_misbehaving_providers_fail_cleanly_or_recover(
    start_gateway: Any, clip: bytes, loopback_guard: Connections
) -> None:
    trap = Trap()
    outputs = Outputs(clip, trap.url)
    outputs.server.start()
    try:
        gw: Gateway = await start_gateway(
            ["runpod", "replicate", "pollo"],
            deadline=60,
            extra_hosts=(urlsplit(outputs.server.url).netloc,),
            max_output_bytes=CAP,
            poll_initial_seconds=0.2,
            poll_max_seconds=0.5,
        )
        gw.ctx.config = dataclasses.replace(gw.ctx.config, max_transient_errors=MAX_TRANSIENT)
        for name, faults in STATUS_FAULTS.items():
            for fault in faults:
                gw.sims[name].faults.add("status", fault)
        providers = list(gw.sims)
        plan: dict[str, tuple[str, str]] = {}  # generation → (provider, case)
        for n, case in enumerate(CASES):
            provider = providers[n % len(providers)]
            plan[await gw.create(provider)] = (provider, case)
        jobs = {gid: await gw.started(provider, gid) for gid, (provider, _) in plan.items()}
        # Every status fault is served (each to whichever job polls next) before any job finishes.
        await _until(
            lambda: all(len(gw.sims[n].requests_to("status")) >= len(f) for n, f in STATUS_FAULTS.items()),
            "every status fault served",
        )
        for n, (gid, (provider, case)) in enumerate(plan.items()):
            job = jobs[gid]
            gw.sims[provider].complete(job.id, output=outputs.url(case, n))

        finals = await asyncio.gather(*(gw.final(gid, timeout=45) for gid in plan))
        for n, (final, (gid, (provider, case))) in enumerate(zip(finals, plan.items(), strict=True)):
            status, code, requests = CASES[case]
            where = (provider, case, final)
            assert final["status"] == status, where
            assert (final["error"] or {}).get("code") == code, where
            if status == "failed":
                assert final["credits_refunded"] == final["credits_quoted"] and final["credits_charged"] == 0, where
            made = len(outputs.hits[f"/{case}/{n}.mp4"])
            # Retries are bounded: transient status errors count against the same budget.
            assert (made == requests) if case != "always503" else (2 <= made <= requests), (where, made)
            assert await gw.settled_once(gid) == status

        first, second = outputs.hits[f"/flaky429/{list(CASES).index('flaky429')}.mp4"]
        assert second - first >= 1.8, "Retry-After was not honoured"
        endless = f"/endless/{list(CASES).index('endless')}.mp4"
        assert outputs.hung_up[endless] and outputs.sent[endless] < 1024 * CHUNK, (outputs.hung_up, outputs.sent)
        assert outputs.sent[f"/declared_big/{list(CASES).index('declared_big')}.mp4"] < 1024 * CHUNK
        # None of the internal addresses was ever connected to.
        assert trap.hits() == 0
        assert not [a for a in loopback_guard.attempted if a[0] == METADATA_HOST or a[1] == trap.port]
        await gw.check_ledger()
    finally:
        outputs.server.stop()
        trap.close()


TRICKLE_DEADLINE = 8


@pytest.mark.usefixtures("short_timeouts")
async def test_a_trickling_output_download_is_bounded_in_time(start_gateway: Any, clip: bytes) -> None:
    """An output host that sends a byte just often enough to dodge the read timeout must not hold the job
    (and a worker slot) past the model's deadline."""
    trap = Trap()
    outputs = Outputs(clip, trap.url)
    outputs.server.start()
    try:
        gw: Gateway = await start_gateway(
            ["replicate"],
            deadline=TRICKLE_DEADLINE,
            extra_hosts=(urlsplit(outputs.server.url).netloc,),
            max_output_bytes=CAP,
            poll_initial_seconds=0.2,
            poll_max_seconds=0.5,
        )
        gid = await gw.create("replicate")
        job = await gw.started("replicate", gid)
        gw.sims["replicate"].complete(job.id, output=outputs.url("trickle", 0))
        final = await gw.final(gid, timeout=TRICKLE_DEADLINE + 5)  # the deadline counts from the submit
        assert final["status"] in ("failed", "expired") and final["credits_charged"] == 0, final
        # The host notices the hang-up at its next write (a byte every 0.5 s).
        await _until(lambda: outputs.hung_up.get("/trickle/0.mp4"), "the app hangs up on the trickling host", 5)
        await gw.settled_once(gid)
        await gw.check_ledger()
    finally:
        outputs.server.stop()
        trap.close()
