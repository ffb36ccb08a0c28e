"""Liveness and readiness: /healthz says the process is up, /readyz checks what it depends on."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from reelgate.api.deps import Ctx
from reelgate.services import billing, health, provider_marks

router = APIRouter(tags=["health"])
_CHECK_TIMEOUT = 3.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check_database(ctx: Any) -> dict[str, Any]:
    await health.ping_database(ctx.db)
    return {"ok": True}


async def _check_storage(ctx: Any) -> dict[str, Any]:
    await ctx.store.check()
    return {"ok": True}


async def _timed(check: Any) -> dict[str, Any]:
    try:
        return dict(await asyncio.wait_for(check, timeout=_CHECK_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - any failure is reported, none is raised
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


async def _check_provider(ctx: Any, name: str) -> dict[str, Any]:
    report = await ctx.providers.get(name).health()
    result = {"ok": report.healthy, "detail": report.detail}
    if report.out_of_credit or name in ctx.degraded_providers:
        result.update(ok=False, degraded=ctx.degraded_providers.get(name, "out of provider credit"))
    return result


async def _check_payments(ctx: Any) -> dict[str, Any]:
    result = await billing.check_stripe(ctx)
    return {"ok": True, "configured": False} if result is None else {**result, "configured": True}


async def _check_queue(request: Request) -> dict[str, Any]:
    queue = getattr(request.app.state, "queue", None)
    if queue is None:
        return {"ok": True, "mode": "embedded"}
    return dict(await queue.check())


@router.get("/readyz")
async def readyz(request: Request, ctx: Ctx) -> JSONResponse:
    # Marks set by worker processes (e.g. a provider out of credit) reach this process through the database.
    with contextlib.suppress(Exception):  # a database outage is reported by its own check below
        await asyncio.wait_for(provider_marks.sync(ctx), timeout=_CHECK_TIMEOUT)
    configured = [n for n in ctx.providers.names() if ctx.providers.get(n).configured()]
    database, storage, queue, payments, *provider_results = await asyncio.gather(
        _timed(_check_database(ctx)),
        _timed(_check_storage(ctx)),
        _timed(_check_queue(request)),
        _timed(_check_payments(ctx)),
        *(_timed(_check_provider(ctx, n)) for n in configured),
    )
    providers = dict(zip(configured, provider_results, strict=True))
    core_ok = database["ok"] and storage["ok"] and queue["ok"]
    # Payments down stops purchases, not generations: the service is degraded, not unavailable.
    degraded = [n for n, r in providers.items() if not r["ok"]] + ([] if payments["ok"] else ["payments"])
    status = "ready" if core_ok and not degraded else ("degraded" if core_ok else "unavailable")
    checks = {"database": database, "storage": storage, "queue": queue, "payments": payments, "providers": providers}
    body = {"status": status, "checks": checks}
    return JSONResponse(body, status_code=200 if core_ok else 503)
