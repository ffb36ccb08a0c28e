"""/api/v1/credits (packages, checkout, transactions), POST /webhooks/stripe, and the request rate limit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field
from starlette.types import ASGIApp, Receive, Scope, Send

from reelgate.api.address_limits import shared_limiter
from reelgate.api.deps import Ctx, CurrentUser, read_session
from reelgate.api.schemas import Strict
from reelgate.domain.errors import RateLimited
from reelgate.services import billing
from reelgate.services.billing import Transaction, TransactionFilter
from reelgate.services.context import ServiceContext

router = APIRouter(prefix="/api/v1/credits", tags=["credits"])
stripe_router = APIRouter(tags=["webhooks"])
_LIMITED_PREFIXES = ("/api/", "/v1/")


class CheckoutRequest(Strict):
    package: str = Field(min_length=1, max_length=40)
    success_url: str | None = Field(default=None, max_length=2000)
    cancel_url: str | None = Field(default=None, max_length=2000)
    # An organization whose wallet the credits are for (its owners and admins only); None: the buyer's own.
    organization: str | None = Field(default=None, min_length=1, max_length=40)


def package_out(package: billing.CreditPackage) -> dict[str, Any]:
    return {
        "id": package.id,
        "credits": package.credits,
        "bonus": package.bonus,
        "total_credits": package.total_credits,
        "price": package.price,  # minor units (cents)
        "currency": package.currency,
        "popular": package.popular,
    }


def transaction_out(t: Transaction) -> dict[str, Any]:
    return {
        "id": t.id,
        "kind": t.kind,
        "amount": t.amount,
        "available_change": t.available_change,
        "note": t.note,
        "reference": t.reference,
        "generation_id": t.generation_id,
        "payment_id": t.payment_id,
        "created_at": t.created_at.isoformat(),
    }


@router.get("/packages")
async def list_packages(ctx: Ctx) -> dict[str, Any]:
    return {"packages": [package_out(p) for p in billing.packages(ctx)]}


@router.post("/checkout")
async def checkout(body: CheckoutRequest, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    started = await billing.start_checkout(
        ctx,
        user.id,
        body.package,
        success_url=body.success_url,
        cancel_url=body.cancel_url,
        organization=body.organization,
    )
    return {"id": started.session_id, "payment_id": started.payment_id, "url": started.url}


def _filters(
    kind: list[str] | None,
    generation_id: str | None,
    payment_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> TransactionFilter:
    return TransactionFilter(
        kinds=tuple(kind or ()), generation_id=generation_id, payment_id=payment_id, since=since, until=until
    )


@router.get("/transactions")
async def transactions(
    user: CurrentUser,
    ctx: Ctx,
    kind: Annotated[list[Annotated[str, Field(max_length=16)]] | None, Query(max_length=16)] = None,
    generation_id: Annotated[str | None, Query(max_length=40)] = None,
    payment_id: Annotated[str | None, Query(max_length=40)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    # The id of the last entry seen: a 64-bit integer, so at most 18 digits are ever a real cursor.
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> dict[str, Any]:
    page, next_cursor = await billing.list_transactions(
        ctx, user.id, _filters(kind, generation_id, payment_id, since, until), limit=limit, cursor=cursor
    )
    return {"data": [transaction_out(t) for t in page], "next_cursor": next_cursor}


@router.get("/transactions.csv")
async def transactions_csv(
    user: CurrentUser,
    ctx: Ctx,
    kind: Annotated[list[Annotated[str, Field(max_length=16)]] | None, Query(max_length=16)] = None,
    generation_id: Annotated[str | None, Query(max_length=40)] = None,
    payment_id: Annotated[str | None, Query(max_length=40)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    filters = _filters(kind, generation_id, payment_id, since, until)
    # Validate before streaming, so a bad filter is a 422 rather than a broken download.
    await billing.list_transactions(ctx, user.id, filters, limit=1)
    return StreamingResponse(
        billing.iter_transactions_csv(ctx, user.id, filters),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="transactions.csv"'},
    )


@stripe_router.post("/webhooks/stripe")
async def stripe_webhook(request: Request, ctx: Ctx) -> dict[str, str]:
    body = await request.body()
    result = await billing.handle_stripe_webhook(ctx, body, request.headers.get("stripe-signature"))
    return {"result": result}


class RateLimitMiddleware:
    """Counts every authenticated API request against its API key and its user (429 + Retry-After)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(_LIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
        if ctx is not None:
            try:
                await self._check(request, ctx)
            except RateLimited as exc:
                response = JSONResponse(
                    exc.as_dict(), status_code=exc.status_code, headers={"Retry-After": str(exc.retry_after)}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _check(self, request: Request, ctx: ServiceContext) -> None:
        limiter = shared_limiter(request, ctx)
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            key_id, owner = await limiter.owner_of_key(ctx, credential.strip())
            await limiter.check(api_key=key_id, user_id=owner)
            return
        session = await read_session(request, ctx)
        if session is not None:
            await limiter.check(api_key=None, user_id=session.user_id)


def mount(app: FastAPI) -> None:
    app.include_router(router)
    # The generic POST /webhooks/{provider} was mounted first and would shadow this route; put it first.
    for route in reversed(stripe_router.routes):
        app.router.routes.insert(0, route)
    app.add_middleware(RateLimitMiddleware)
