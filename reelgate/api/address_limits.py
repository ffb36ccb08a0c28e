"""Request limits per client address, for what no API key or account can be counted against: every studio
request (sign-in and sign-up pages included), and price estimates asked without credentials.

The address is the peer's, or the one a trusted proxy forwarded (REELGATE_TRUSTED_PROXIES). The counters live
where the API's per-key limits do: in this process, or in Redis shared by every API process.
"""

from __future__ import annotations

import json
import math
import time

from limits import RateLimitItem, parse
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from reelgate.api.deps import read_session
from reelgate.services.context import ServiceContext
from reelgate.services.limits import RequestLimiter

ESTIMATE_PATH = "/api/v1/estimate"
# Everything else outside the studio: the APIs count per key and account, the rest is cheap or operators'.
_NOT_STUDIO = ("/api/", "/v1/", "/webhooks/", "/static/", "/healthz", "/readyz", "/metrics", "/docs", "/redoc")


def shared_limiter(request: Request, ctx: ServiceContext) -> RequestLimiter:
    """The app's one RequestLimiter (its counters), made on first use; a restarted app gets fresh counters."""
    state = request.app.state
    limiter: RequestLimiter | None = getattr(state, "request_limiter", None)
    if limiter is None or getattr(state, "request_limiter_ctx", None) is not ctx:
        limiter = RequestLimiter.from_context(ctx)
        state.request_limiter, state.request_limiter_ctx = limiter, ctx
    return limiter


class AddressRateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, studio: str, estimate: str) -> None:
        self.app = app
        self.studio: RateLimitItem = parse(studio)
        self.estimate: RateLimitItem = parse(estimate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
        path: str = scope["path"]
        item: RateLimitItem | None = None
        if path == ESTIMATE_PATH:
            item = self.estimate if ctx is not None and not await _identified(request, ctx) else None
        elif not path.startswith(_NOT_STUDIO):
            item = self.studio
        if item is None or ctx is None:
            await self.app(scope, receive, send)
            return
        address = request.client.host if request.client else "unknown"
        wait = await _hit(shared_limiter(request, ctx), item, "studio" if item is self.studio else "estimate", address)
        if wait is None:
            await self.app(scope, receive, send)
            return
        await _too_many(request, send, item, wait)


async def _identified(request: Request, ctx: ServiceContext) -> bool:
    """A signed-in session or a known API key: the API's own limits count this request against its owner."""
    if await read_session(request, ctx) is not None:
        return True
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return False
    _, owner = await shared_limiter(request, ctx).owner_of_key(ctx, credential.strip())
    return owner is not None  # an unknown key is anonymous: random keys must not buy fresh counters


async def _hit(limiter: RequestLimiter, item: RateLimitItem, scope: str, address: str) -> int | None:
    """Counts the request; None when allowed, else the seconds until it would be."""
    counter = limiter.limiter
    if await counter.hit(item, "reelgate", "address", scope, address):
        return None
    stats = await counter.get_window_stats(item, "reelgate", "address", scope, address)
    return max(1, math.ceil(stats.reset_time - time.time()))


async def _too_many(request: Request, send: Send, item: RateLimitItem, wait: int) -> None:
    message = f"Too many requests from this address: the limit is {item}. Retry in {wait} s."
    wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
    if wants_page and not request.headers.get("hx-request"):
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Too many requests · reelgate</title>"
            f"<h1>Too many requests</h1><p>{message}</p></html>"
        ).encode()
        content_type = b"text/html; charset=utf-8"
    else:  # the API's error shape; the studio's script shows its message as a toast
        error = {"code": "rate_limited", "message": message, "details": {"retry_after": wait, "scope": "address"}}
        body, content_type = json.dumps({"error": error}).encode(), b"application/json"
    headers = [(b"content-type", content_type), (b"retry-after", str(wait).encode())]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
