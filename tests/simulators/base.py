"""Loopback provider simulators: serve an ASGI app on 127.0.0.1, inject faults, record requests, keep jobs."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.simulators.webhooks import WebhookSender

ASGIApp = Callable[..., Awaitable[None]]
# Credentials never land in the request log, so tests can assert on it (and print it) freely.
_SECRET_HEADERS = {"authorization", "x-api-key"}


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A loopback socket on a free port for uvicorn's `sockets=`. IPPROTO_TCP is named explicitly: asyncio only
    sets TCP_NODELAY on sockets whose proto says TCP, and without it every answer written in two parts waits
    ~40 ms for the client's delayed ACK (Nagle)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, 0))  # port 0: the OS picks a free port, so parallel tests never collide
    return sock


async def serve_on_this_loop(stack: AsyncExitStack, app: Any, sock: socket.socket) -> None:
    """uvicorn on the caller's event loop (so the test, the worker and webhook handlers share one loop), stopped
    when `stack` closes."""
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, ws="none"))
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def stop() -> None:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)

    stack.push_async_callback(stop)
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)


class AppServer:
    """Runs an ASGI app (FastAPI, Starlette, or bare) with uvicorn in a thread on an ephemeral port."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> str:
        sock = listening_socket(self.host)
        config = uvicorn.Config(
            self.app,
            log_level="critical",
            lifespan="off",
            interface="asgi3",
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=1,
            ws="none",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name=f"sim-{id(self)}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("simulator server did not start")
            time.sleep(0.01)
        self.url = f"http://{self.host}:{sock.getsockname()[1]}"
        return self.url

    def _run(self, sock: socket.socket) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            assert self._server is not None
            await self._server.serve(sockets=[sock])

        asyncio.run(main())

    def submit(self, coro: Awaitable[Any]) -> Any:
        """Schedule a coroutine on the server's loop; returns a concurrent future."""
        assert self.loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> AppServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    route: str | None = None
    at: float = field(default_factory=time.monotonic)  # arrival, for tests that check how requests are paced

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Fault:
    """One misbehaviour: an error status (optionally with Retry-After), a reset, a stall, bad JSON."""

    kind: str
    status: int = 500
    body: Any = None
    retry_after: str | None = None
    seconds: float = 30.0

    @classmethod
    def error(cls, status: int = 500, body: Any = None, retry_after: str | None = None) -> Fault:
        return cls("status", status=status, body=body, retry_after=retry_after)

    @classmethod
    def reset(cls) -> Fault:
        """Read the whole request, then drop the connection with a TCP RST and no answer."""
        return cls("reset")

    @classmethod
    def stall(cls, seconds: float = 30.0) -> Fault:
        """Say nothing for `seconds`, then handle the request normally (a job may still be created)."""
        return cls("stall", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")


class Misbehaviour:
    """Queues of faults per route name, each applied to one request in order."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()

    def add(self, route: str, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._queues.setdefault(route, deque()).extend([fault] * times)

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()

    def take(self, route: str | None) -> Fault | None:
        with self._lock:
            queue = self._queues.get(route or "")
            return queue.popleft() if queue else None


async def _reset(send: Callable[..., Awaitable[None]]) -> None:
    # uvicorn's `send` is a bound method of its request cycle, which holds the transport; SO_LINGER 0
    # turns close into an RST, so the client sees a reset after its request was fully sent.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:  # another server: break the response mid-body instead
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise ConnectionResetError("simulated reset")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0.05)  # let connection_lost run so uvicorn knows there is nobody to answer


@dataclass
class Job:
    """A simulated job; `state` is one of queued/running/succeeded/failed/canceled (vendor words differ)."""

    id: str
    body: dict[str, Any]
    webhook_url: str | None = None
    state: str = "queued"
    progress: int | None = None
    output: Any = None
    error: str | None = None
    created: float = field(default_factory=time.monotonic)
    extra: dict[str, Any] = field(default_factory=dict)


class Simulator:
    """Shared machinery; subclasses define `routes` (method, regex, name), `build_app()` and `wire()`."""

    routes: list[tuple[str, str, str]] = []
    out_of_credit_status = 402
    out_of_credit_body: Any = {"error": "insufficient credit"}

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        video: bytes = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
        auto_advance: tuple[float, float] | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.video = video
        self.auto_advance = auto_advance  # (seconds queued, seconds running), or None: tests drive jobs
        self.webhook_secret = webhook_secret
        self.jobs: dict[str, Job] = {}
        self.requests: list[RecordedRequest] = []
        self.faults = Misbehaviour()
        self.out_of_credit = False
        self.expire_outputs: int | None = None  # 404 or 410 on output downloads
        self.output_url_override: str | None = None  # e.g. http://169.254.169.254/ to prove it is never fetched
        self.lock = threading.RLock()
        self._compiled = [(m, re.compile(f"^{p}$"), n) for m, p, n in self.routes]
        self.app = self.build_app()
        self.server = AppServer(self._asgi)
        self.webhooks = WebhookSender(self.server, self.sign_headers)

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> str:
        url = self.server.start()
        if self.auto_advance is not None:
            self.server.submit(self._ticker())
        return url

    def stop(self) -> None:
        self.webhooks.close()
        self.server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- hooks for subclasses ----------------------------------------------------------------------
    def build_app(self) -> ASGIApp:
        raise NotImplementedError

    def wire(self, job: Job) -> dict[str, Any]:
        """The job as the vendor's JSON."""
        raise NotImplementedError

    def on_transition(self, job: Job, previous: str) -> None:
        """Send whatever webhook the vendor sends for this change."""

    def default_output(self, job: Job) -> Any:
        return self.output_url(job)

    def sign_headers(self, msg_id: str, timestamp: int, body: bytes, corrupt: bool) -> dict[str, str]:
        return {}

    # -- request plumbing --------------------------------------------------------------------------
    def route_name(self, method: str, path: str) -> str | None:
        for route_method, pattern, name in self._compiled:
            if route_method == method and pattern.match(path):
                return name
        return None

    def requests_to(self, route: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.route == route]

    def authorized(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        auth = request.headers.get("authorization", "")
        return auth.removeprefix("Bearer ").strip() == self.api_key or request.headers.get("x-api-key") == self.api_key

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        path, method = scope["path"], scope["method"]
        route = self.route_name(method, path)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = dict(Request(scope).query_params)
        with self.lock:
            self.requests.append(
                RecordedRequest(
                    method,
                    path,
                    query,
                    {k: v for k, v in headers.items() if k not in _SECRET_HEADERS},
                    body,
                    route,
                )
            )
        fault = self.faults.take(route)
        if fault is not None and await self._apply(fault, scope, send):
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _apply(self, fault: Fault, scope: dict[str, Any], send: Any) -> bool:
        """Apply a fault; False means "carry on and answer normally" (after a stall)."""
        if fault.kind == "reset":
            await _reset(send)
            return True
        if fault.kind == "stall":
            deadline = time.monotonic() + fault.seconds
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                await asyncio.sleep(0.05)
            return self.server.stopping.is_set()
        if fault.kind == "malformed":
            response: Response = Response(b'{"id": "broken", "status": ', media_type="application/json")
        else:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            body = fault.body if fault.body is not None else {"error": f"simulated {fault.status}"}
            response = JSONResponse(body, status_code=fault.status, headers=headers)
        await response(scope, _no_receive, send)
        return True

    # -- jobs --------------------------------------------------------------------------------------
    def new_job(self, body: dict[str, Any], webhook_url: str | None, job_id: str | None = None) -> Job:
        job = Job(id=job_id or uuid.uuid4().hex, body=body, webhook_url=webhook_url)
        with self.lock:
            self.jobs[job.id] = job
        return job

    def output_url(self, job: Job) -> str:
        return self.output_url_override or f"{self.url}/files/{job.id}.mp4"

    def _move(self, job_id: str, state: str, **changes: Any) -> Job:
        with self.lock:
            job = self.jobs[job_id]
            previous = job.state
            job.state = state
            for key, value in changes.items():
                setattr(job, key, value)
        if previous != state:
            self.on_transition(job, previous)
        return job

    def run(self, job_id: str, progress: int | None = None) -> Job:
        return self._move(job_id, "running", progress=progress)

    def set_progress(self, job_id: str, progress: int) -> Job:
        with self.lock:
            self.jobs[job_id].progress = progress
            return self.jobs[job_id]

    def complete(self, job_id: str, output: Any = None) -> Job:
        job = self.jobs[job_id]
        return self._move(job_id, "succeeded", output=output if output is not None else self.default_output(job))

    def fail(self, job_id: str, error: str = "simulated failure") -> Job:
        return self._move(job_id, "failed", error=error)

    def cancel_job(self, job_id: str) -> Job:
        if self.jobs[job_id].state in ("succeeded", "failed", "canceled", "timed_out", "aborted"):
            return self.jobs[job_id]
        return self._move(job_id, "canceled")

    async def _ticker(self) -> None:
        assert self.auto_advance is not None
        queued_for, running_for = self.auto_advance
        while not self.server.stopping.is_set():
            now = time.monotonic()
            for job in list(self.jobs.values()):
                age = now - job.created
                if job.state == "queued" and age >= queued_for:
                    self.run(job.id, progress=0)
                elif job.state == "running" and age >= queued_for + running_for:
                    self.complete(job.id)
            await asyncio.sleep(0.02)

    # -- shared routes -----------------------------------------------------------------------------
    async def serve_file(self, request: Request) -> Response:
        if self.expire_outputs:
            return JSONResponse({"error": "expired"}, status_code=self.expire_outputs)
        return Response(self.video, media_type="video/mp4")

    def unauthorized(self) -> Response:
        return JSONResponse({"detail": "Unauthenticated"}, status_code=401)

    def no_credit(self) -> Response:
        return JSONResponse(self.out_of_credit_body, status_code=self.out_of_credit_status)


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


class WebhookReceiver:
    """A loopback endpoint that records what it is sent; answers `status_code` (200 unless a test changes it)."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.status_code = 200
        self._lock = threading.Lock()
        self.server = AppServer(self._asgi)

    @property
    def url(self) -> str:
        return self.server.url

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    scope["method"],
                    scope["path"],
                    dict(request.query_params),
                    dict(request.headers),
                    body,
                )
            )
        await Response(status_code=self.status_code)(scope, receive, send)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"got {len(self.requests)} webhooks, wanted {count}")
            time.sleep(0.01)
        return list(self.requests)

    def start(self) -> str:
        return self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> WebhookReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
