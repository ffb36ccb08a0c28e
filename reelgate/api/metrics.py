"""Observability: /metrics for Prometheus, request ids and HTTP metrics, and provider call timing."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.routing import Route

from reelgate.logging_setup import generation_id_var, request_id_var
from reelgate.providers.base import Provider
from reelgate.providers.registry import ProviderRegistry
from reelgate.services import analytics
from reelgate.services.context import ServiceContext

log = logging.getLogger("reelgate.metrics")

HTTP_REQUESTS = Counter("reelgate_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "reelgate_http_request_duration_seconds",
    "Time to answer an HTTP request (until the response starts for streamed bodies)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GENERATIONS = Gauge("reelgate_generations", "Generations by state and model", ["status", "model"])
CREDITS_HELD = Gauge("reelgate_credits_held", "Credits held for generations that have not ended")
PROVIDER_CALLS = Histogram(
    "reelgate_provider_call_duration_seconds",
    "Provider API calls by provider and operation",
    ["provider", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PROVIDER_ERRORS = Counter(
    "reelgate_provider_call_errors_total", "Provider API calls that raised", ["provider", "operation", "error"]
)
QUEUE_DEPTH = Gauge("reelgate_queue_depth", "Steps (submits, downloads) due now that no worker has taken yet")
QUEUE_SCHEDULED = Gauge("reelgate_queue_scheduled", "Steps due at a later moment (e.g. waiting for a provider's rate)")
QUEUE_LAG = Gauge("reelgate_queue_lag_seconds", "How long the oldest due step has been waiting for a worker")
_SCRAPE_TIMEOUT = 5.0
_GENERATION_PATH = re.compile(r"/(?:generations|videos)/(gen_[0-9A-Za-z]+)")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_PROVIDER_OPERATIONS = ("submit", "status", "cancel", "lookup")


class QueueStats(Protocol):
    async def stats(self) -> dict[str, float]: ...


def _timed(provider: str, operation: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        except Exception as exc:
            PROVIDER_ERRORS.labels(provider, operation, type(exc).__name__).inc()
            raise
        finally:
            PROVIDER_CALLS.labels(provider, operation).observe(time.perf_counter() - start)

    return timed


class InstrumentedRegistry(ProviderRegistry):
    """The provider registry, with each adapter's calls timed and their errors counted."""

    def get(self, name: str) -> Provider:
        provider = super().get(name)
        if not getattr(provider, "_reelgate_timed", False):
            for operation in _PROVIDER_OPERATIONS:
                call = getattr(provider, operation, None)
                if call is not None:
                    setattr(provider, operation, _timed(name, operation, call))
            provider._reelgate_timed = True  # type: ignore[attr-defined]
        return provider


class ObservabilityMiddleware:
    """Gives every request an id (kept from X-Request-ID when sane), and counts and times it by route."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        found = _GENERATION_PATH.search(scope.get("path", ""))
        tokens = (request_id_var.set(request_id), generation_id_var.set(found.group(1) if found else None))
        start, status = time.perf_counter(), 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                route = getattr(scope.get("route"), "path", "unmatched")
                HTTP_LATENCY.labels(scope["method"], route).observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            request_id_var.reset(tokens[0])
            generation_id_var.reset(tokens[1])


async def refresh_database_figures(ctx: ServiceContext, queue: QueueStats | None) -> None:
    """Figures read from the database at scrape time, so every API process reports the same truth."""
    rows, held = await analytics.database_figures(ctx)
    GENERATIONS.clear()
    for status, model, count in rows:
        GENERATIONS.labels(status, model).set(count)
    CREDITS_HELD.set(int(held))
    if queue is not None:
        stats = await queue.stats()
        QUEUE_DEPTH.set(stats["depth"])
        QUEUE_SCHEDULED.set(stats["scheduled"])
        QUEUE_LAG.set(stats["lag_seconds"])


async def scrape(ctx: ServiceContext, queue: QueueStats | None) -> bytes:
    """The exposition text: this process's counters plus the database figures, read now."""
    try:
        await asyncio.wait_for(refresh_database_figures(ctx, queue), timeout=_SCRAPE_TIMEOUT)
    except Exception:  # a scrape still answers with the process's own figures when the database is down
        log.warning("metrics: database figures unavailable", exc_info=True)
    return bytes(generate_latest())


def token_accepted(expected: str | None, authorization: str) -> bool:
    """No token configured: any caller of this listener. Otherwise exactly `Bearer <token>` (compared in
    constant time)."""
    if not expected:
        return True
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected.encode())


def _refused(status: int, message: str) -> Response:
    code = "not_found" if status == 404 else "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": {"code": code, "message": message, "details": {}}}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def mount(app: FastAPI) -> None:
    """`/metrics` on the public listener only with a token (REELGATE_METRICS_TOKEN) and no listener of its own
    (REELGATE_METRICS_PORT): Prometheus figures tell strangers how busy the service is and what it runs."""
    app.add_middleware(ObservabilityMiddleware)
    settings = app.state.settings
    token: str | None = settings.metrics_token
    on_public_listener = bool(token) and not settings.metrics_port

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if not on_public_listener:
            return _refused(404, "Not found.")
        if not token_accepted(token, request.headers.get("authorization", "")):
            return _refused(401, "Metrics need 'Authorization: Bearer <REELGATE_METRICS_TOKEN>'.")
        body = await scrape(request.app.state.ctx, getattr(request.app.state, "queue", None))
        return Response(body, media_type=CONTENT_TYPE_LATEST)


class MetricsListener:
    """`/metrics` alone on its own address (REELGATE_METRICS_HOST:REELGATE_METRICS_PORT), for a scraper on a
    private network. It runs on a thread of its own; the database figures are still read on the app's event
    loop, where its database engine lives."""

    def __init__(self, app: FastAPI, host: str, port: int, token: str | None) -> None:
        self.app, self.token = app, token
        self.loop: asyncio.AbstractEventLoop | None = None
        config = uvicorn.Config(
            Starlette(routes=[Route("/metrics", self._metrics)]),
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            ws="none",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="reelgate-metrics", daemon=True)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the metrics listener did not start (is its port free?)")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.to_thread(self.thread.join, 10)

    async def _metrics(self, request: Request) -> Response:
        if not token_accepted(self.token, request.headers.get("authorization", "")):
            return _refused(401, "Metrics need 'Authorization: Bearer <REELGATE_METRICS_TOKEN>'.")
        assert self.loop is not None
        state = self.app.state
        running = asyncio.run_coroutine_threadsafe(scrape(state.ctx, getattr(state, "queue", None)), self.loop)
        body = await asyncio.wrap_future(running)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
