"""/api/v1/admin: credit grants and adjustments with a reason, and the operator's analytics."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query
from pydantic import Field

from reelgate.api.deps import AdminUser, Ctx
from reelgate.api.schemas import Strict
from reelgate.domain.errors import ValidationFailed
from reelgate.services import accounts, analytics, billing, password_reset

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

# One grant or adjustment moves at most this many credits. Balances are signed 64-bit integers in the database
# (up to 9.2 × 10^18): capped single amounts keep every sum millions of operations away from overflowing.
MAX_CREDIT_CHANGE = 10**12


class CreditChange(Strict):
    user_id: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    amount: int = Field(ge=-MAX_CREDIT_CHANGE, le=MAX_CREDIT_CHANGE)
    reason: str = Field(min_length=1, max_length=500)
    kind: Literal["grant", "adjust"] = "adjust"


@router.post("/credits")
async def change_credits(body: CreditChange, admin: AdminUser, ctx: Ctx) -> dict[str, Any]:
    if body.user_id is None and body.email is None:
        raise ValidationFailed("user_id", "Name the account by user_id or email.")
    user_id = body.user_id or (await accounts.find_user_by_email(ctx, body.email or "")).id
    change = billing.grant_credits if body.kind == "grant" else billing.adjust_credits
    result = await change(ctx, user_id, body.amount, reason=body.reason, actor_id=admin.id)
    return {"user_id": user_id, "kind": body.kind, **asdict(result)}


@router.post("/users/{user_id}/password-reset", status_code=202)
async def send_password_reset(user_id: str, admin: AdminUser, ctx: Ctx) -> dict[str, Any]:
    """Emails the account a single-use link (one hour) to set a new password; the worker sends it."""
    await password_reset.send_reset_link(ctx, user_id)
    return {"user_id": user_id, "queued": True}


@router.get("/analytics")
async def get_analytics(admin: AdminUser, ctx: Ctx, days: Annotated[int, Query(ge=1, le=3660)] = 30) -> dict[str, Any]:
    result = await analytics.summary(ctx, days=days)
    body = asdict(result)
    body["since"], body["until"] = result.since.isoformat(), result.until.isoformat()
    return body


@router.get("/payments")
async def list_payments(
    admin: AdminUser,
    ctx: Ctx,
    user_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    rows = await billing.list_payments(ctx, user_id, limit=limit)
    return {
        "data": [
            {
                "id": p.id,
                "user_id": p.user_id,
                "package": p.package,
                "credits": p.credits,
                "amount": p.amount,
                "currency": p.currency,
                "status": p.status,
                "amount_refunded": p.amount_refunded,
                "amount_disputed": p.amount_disputed,
                "credits_reversed": p.credits_reversed,
                "credits_unrecovered": p.credits_unrecovered,
                "stripe_session_id": p.stripe_session_id,
                "created_at": p.created_at.isoformat(),
                "paid_at": p.paid_at.isoformat() if p.paid_at else None,
            }
            for p in rows
        ]
    }


def mount(app: FastAPI) -> None:
    app.include_router(router)
