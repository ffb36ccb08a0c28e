"""/api/v1/admin: credit grants and adjustments with a reason, and the operator's analytics."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query
from pydantic import Field

from reelgate.api.deps import AdminUser, Ctx
from reelgate.api.presenters import payment_out
from reelgate.api.schemas import Strict
from reelgate.db.records import AuditEntry, User
from reelgate.domain.errors import ValidationFailed
from reelgate.services import accounts, analytics, billing, password_reset, user_admin

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

# One grant or adjustment moves at most this many credits. Balances are signed 64-bit integers in the database
# (up to 9.2 × 10^18): capped single amounts keep every sum millions of operations away from overflowing.
MAX_CREDIT_CHANGE = 10**12


class CreditChange(Strict):
    user_id: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    # An organization's wallet instead of a user's account.
    organization_id: str | None = Field(default=None, max_length=40)
    amount: int = Field(ge=-MAX_CREDIT_CHANGE, le=MAX_CREDIT_CHANGE)
    reason: str = Field(min_length=1, max_length=500)
    kind: Literal["grant", "adjust"] = "adjust"


@router.post("/credits")
async def change_credits(body: CreditChange, admin: AdminUser, ctx: Ctx) -> dict[str, Any]:
    named = [name for name in (body.user_id, body.email, body.organization_id) if name is not None]
    if len(named) != 1:
        raise ValidationFailed("user_id", "Name the account by one of user_id, email or organization_id.")
    if body.organization_id is not None:
        account_id = body.organization_id
    else:
        account_id = body.user_id or (await accounts.find_user_by_email(ctx, body.email or "")).id
    change = billing.grant_credits if body.kind == "grant" else billing.adjust_credits
    result = await change(ctx, account_id, body.amount, reason=body.reason, actor_id=admin.id)
    await user_admin.record_credit_change(ctx, admin.id, account_id, body.amount, reason=body.reason, kind=body.kind)
    out = {"organization_id": account_id} if body.organization_id is not None else {"user_id": account_id}
    return {**out, "kind": body.kind, **asdict(result)}


@router.post("/users/{user_id}/password-reset", status_code=202)
async def send_password_reset(user_id: str, admin: AdminUser, ctx: Ctx) -> dict[str, Any]:
    """Emails the account a single-use link (one hour) to set a new password; the worker sends it."""
    await password_reset.send_reset_link(ctx, user_id)
    await user_admin.record_reset_link(ctx, admin.id, user_id)
    return {"user_id": user_id, "queued": True}


class UserAction(Strict):
    reason: str = Field(default="", max_length=500)


def _user_out(user: User, changed: bool) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "is_admin": user.is_admin,
        "disabled": user.disabled,
        "changed": changed,
    }


UserId = Annotated[str, Path(max_length=40)]


@router.post("/users/{user_id}/disable")
async def disable_user(user_id: UserId, admin: AdminUser, ctx: Ctx, body: UserAction | None = None) -> dict[str, Any]:
    """Disables a user: their sessions end and their API keys answer 401 at once; running jobs finish."""
    changed = await user_admin.set_disabled(ctx, admin.id, user_id, True, reason=body.reason if body else "")
    return _user_out(await accounts.get_user(ctx, user_id), changed)


@router.post("/users/{user_id}/enable")
async def enable_user(user_id: UserId, admin: AdminUser, ctx: Ctx, body: UserAction | None = None) -> dict[str, Any]:
    changed = await user_admin.set_disabled(ctx, admin.id, user_id, False, reason=body.reason if body else "")
    return _user_out(await accounts.get_user(ctx, user_id), changed)


@router.post("/users/{user_id}/promote")
async def promote_user(user_id: UserId, admin: AdminUser, ctx: Ctx) -> dict[str, Any]:
    changed = await user_admin.set_admin(ctx, admin.id, user_id, True)
    return _user_out(await accounts.get_user(ctx, user_id), changed)


@router.post("/users/{user_id}/demote")
async def demote_user(user_id: UserId, admin: AdminUser, ctx: Ctx) -> dict[str, Any]:
    changed = await user_admin.set_admin(ctx, admin.id, user_id, False)
    return _user_out(await accounts.get_user(ctx, user_id), changed)


def _entry_out(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "actor_id": entry.actor_id,
        "action": entry.action,
        "user_id": entry.target_user_id,
        "email": entry.target_email,
        "detail": entry.detail,
        "data": entry.data,
        "created_at": entry.created_at.isoformat(),
    }


@router.get("/audit")
async def list_audit(
    admin: AdminUser,
    ctx: Ctx,
    user_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """What administrators did to users and their credits, newest first."""
    return {"data": [_entry_out(e) for e in await user_admin.audit_log(ctx, user_id=user_id, limit=limit)]}


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
    return {"data": [payment_out(p) for p in rows]}


def mount(app: FastAPI) -> None:
    app.include_router(router)
