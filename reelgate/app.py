"""create_app(settings): the FastAPI application, its lifespan wiring, and the mounted API and studio."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from reelgate import __version__
from reelgate.api import (
    routes_account,
    routes_catalog,
    routes_generations,
    routes_health,
    routes_inputs,
    routes_library,
    routes_organizations,
    routes_webhooks,
)
from reelgate.api.address_limits import AddressRateLimitMiddleware
from reelgate.api.body_limits import BodySizeLimitMiddleware
from reelgate.api.errors import install_error_handlers
from reelgate.api.security_headers import SecurityHeadersMiddleware, media_origins
from reelgate.api.storable_text import UnstorableURLMiddleware
from reelgate.api.timeouts import RequestTimeoutMiddleware
from reelgate.bootstrap import build_context, close_context
from reelgate.services import health, pipeline
from reelgate.services.context import ServiceContext
from reelgate.settings import Settings
from reelgate.worker import Worker, register_default_housekeeping

log = logging.getLogger("reelgate")


async def _warn_if_unmaintained(ctx: ServiceContext) -> None:
    """Says so when the database is never analyzed (services/health.py); never stops the server from starting."""
    try:
        problem = await health.maintenance_problem(ctx.db)
    except Exception:  # noqa: BLE001 - a warning that cannot be worked out is not a reason to refuse to start
        log.warning("could not read whether the database is kept analyzed", exc_info=True)
        return
    if problem:
        log.warning("%s", problem)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await build_context(settings)
        app.state.ctx = ctx
        await _warn_if_unmaintained(ctx)
        worker: Worker | None = None
        queue = None
        if settings.runs_embedded_worker:
            register_default_housekeeping()
            worker = Worker(
                ctx,
                concurrency=settings.worker_concurrency,
                poll_concurrency=settings.poll_concurrency_for(settings.worker_concurrency),
            )
            ctx.wake = worker.wake
            if settings.embedded:
                # One process owns every job in embedded mode, so leases left by a killed process are stale.
                resumed = await pipeline.resume_all(ctx)
                if resumed:
                    log.info("resuming %d unfinished generations", resumed)
            await worker.start()
        elif not settings.embedded:
            # Production mode: this process serves the API and enqueues work for `reelgate worker` processes.
            from reelgate.queue import Queue

            queue = app.state.queue = Queue(settings, pool_size=4)
            await queue.open(ctx)
        # Otherwise (SQLite with the worker off): an API-only process; another process drives the jobs.
        listener = None
        try:
            if settings.metrics_port:
                from reelgate.api.metrics import MetricsListener

                listener = MetricsListener(app, settings.metrics_host, settings.metrics_port, settings.metrics_token)
                await listener.start()
            yield
        finally:
            if listener is not None:
                await listener.stop()
            if worker is not None:
                await worker.stop()
            if queue is not None:
                await queue.close()
            await close_context(ctx)

    app = FastAPI(
        title="reelgate",
        version=__version__,
        description="Sell AI video generation: one API over many providers, billed in credits.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestTimeoutMiddleware, seconds=settings.request_timeout_seconds)
    app.add_middleware(BodySizeLimitMiddleware, upload_cap=settings.max_upload_bytes)
    # Routes are matched in the order they are mounted, one pattern at a time (each pattern tried costs a few
    # microseconds): the APIs that serve the most requests go first, so their calls do not try every studio and
    # admin route before their own. Providers' webhooks come next: one route, and at least one delivery per job.
    _mount_optional(app, MATCHED_FIRST)
    for module in (
        routes_webhooks,
        routes_health,
        routes_catalog,
        routes_generations,
        routes_account,
        routes_organizations,
        routes_inputs,
    ):
        app.include_router(module.router)
    routes_library.mount(app)
    _mount_optional(app, tuple(name for name in OPTIONAL_ROUTERS if name not in MATCHED_FIRST))
    # Added last, so they wrap everything above: even a 413 or 429 answered by a middleware carries the
    # headers, and every layer sees the client's own address and scheme when a trusted proxy forwards them.
    app.add_middleware(
        AddressRateLimitMiddleware,
        studio=settings.rate_limit_studio_per_address,
        estimate=settings.rate_limit_estimate_per_address,
    )
    app.add_middleware(UnstorableURLMiddleware)
    app.add_middleware(
        SecurityHeadersMiddleware,
        https=settings.serves_https,
        extra_media_origins=media_origins(
            presigned_downloads=settings.s3_presign_downloads, s3_endpoint_url=settings.s3_endpoint_url
        ),
    )
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    return app


# Feature packages that mount themselves with a `mount(app)` function, in this order.
OPTIONAL_ROUTERS = (
    "reelgate.api.routes_credits",
    "reelgate.api.routes_admin",
    "reelgate.api.routes_client_webhooks",
    "reelgate.api.openai_compat",
    "reelgate.api.openrouter_compat",
    "reelgate.api.metrics",
    "reelgate.web.routes",
)


# Of those, the ones mounted ahead of the core routers.
MATCHED_FIRST = ("reelgate.api.openai_compat", "reelgate.api.openrouter_compat")


def _mount_optional(app: FastAPI, names: tuple[str, ...]) -> None:
    """The studio and the OpenAI-compatible API mount themselves when their packages are present."""
    from importlib import import_module

    for name in names:
        if name not in OPTIONAL_ROUTERS:  # left out (bench/server.py drops one whose import is broken)
            continue
        try:
            module = import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.mount(app)
