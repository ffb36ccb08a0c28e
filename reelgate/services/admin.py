"""Queries the studio's account and admin pages need: users, all generations, provider health, money."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from reelgate.db.queries import admin as admin_queries
from reelgate.db.queries import analytics as analytics_queries
from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.queries.users import user_exists
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound, ValidationFailed
from reelgate.domain.ids import new_id
from reelgate.domain.ledger import EntryKind
from reelgate.services import ledger
from reelgate.services.context import ServiceContext

_HEALTH_TIMEOUT = 3.0
MAX_GRANT = 1_000_000  # a typo guard: one click should not mint a fortune


@dataclass(frozen=True)
class UserRow:
    id: str
    email: str
    display_name: str
    is_admin: bool
    disabled: bool
    created_at: datetime
    available: int
    held: int
    captured: int


@dataclass(frozen=True)
class Transaction:
    id: int
    kind: str
    amount: int
    reference: str
    generation_id: str | None
    note: str
    created_at: datetime


@dataclass(frozen=True)
class ProviderHealth:
    name: str
    configured: bool
    healthy: bool
    detail: str
    models: int


@dataclass(frozen=True)
class RevenueSummary:
    credits_granted: int
    credits_purchased: int
    credits_captured: int
    credits_refunded: int
    generations_by_status: dict[str, int]
    currency: str


async def credits_of(ctx: ServiceContext, user_id: str) -> ledger.Credits:
    return await ledger.credits_of(ctx, user_id)


async def search_users(ctx: ServiceContext, query: str = "", *, limit: int = 50) -> list[UserRow]:
    rows = await ctx.db.read(lambda tx: admin_queries.users_with_balances(tx, query.strip(), limit=limit))
    return [
        UserRow(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            is_admin=user.is_admin,
            disabled=user.disabled,
            created_at=user.created_at,
            available=balance.available,
            held=balance.held,
            captured=balance.captured,
        )
        for user, balance in rows
    ]


async def list_transactions(ctx: ServiceContext, user_id: str, *, limit: int = 50) -> list[Transaction]:
    """A user's ledger, newest first: what the credits page shows as transaction history."""
    entries = await ctx.db.read(lambda tx: ledger_queries.entries_of(tx, user_id, limit=limit))
    return [
        Transaction(
            id=e.id,
            kind=e.kind,
            amount=e.amount,
            reference=e.reference,
            generation_id=e.generation_id,
            note=e.note,
            created_at=e.created_at,
        )
        for e in entries
    ]


async def grant_credits(ctx: ServiceContext, admin_user_id: str, user_id: str, amount: int, reason: str) -> None:
    """An administrator's gift of credits, recorded with who gave it and why."""
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("reason", "Say why these credits are granted.")
    if not 1 <= amount <= MAX_GRANT:
        raise ValidationFailed("amount", f"Grant between 1 and {MAX_GRANT} credits.", allowed={"max": MAX_GRANT})
    reference = f"admin-grant:{new_id('grt')}"
    note = f"{reason[:500]} (by {admin_user_id})"

    def grant(tx: Tx) -> None:
        if not user_exists(tx, user_id):
            raise NotFound("User not found.")
        ledger_queries.credit_account(tx, user_id, amount, kind=EntryKind.GRANT, reference=reference, note=note)

    await ctx.db.write(grant)


async def list_all_generations(
    ctx: ServiceContext, *, status: str = "", model: str = "", email: str = "", limit: int = 100
) -> list[tuple[Generation, str]]:
    """Every user's generations with the owner's email, newest first, for the admin's filterable table."""
    return await ctx.db.read(
        lambda tx: admin_queries.all_generations(tx, status=status, model=model, email=email, limit=limit)
    )


async def _health_of(ctx: ServiceContext, name: str) -> tuple[bool, str]:
    provider = ctx.providers.get(name)
    if not provider.configured():
        return False, "No credentials configured."
    try:
        report = await asyncio.wait_for(provider.health(), timeout=_HEALTH_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - a failing check is shown, never raised
        return False, f"{type(exc).__name__}: {exc}"[:300]
    if name in ctx.degraded_providers:
        return False, ctx.degraded_providers[name]
    if report.out_of_credit:
        return False, "Out of provider credit."
    return report.healthy, report.detail or ("OK" if report.healthy else "Unhealthy")


async def provider_health(ctx: ServiceContext) -> list[ProviderHealth]:
    names = sorted(set(ctx.providers.names()) | {spec.provider for spec in ctx.catalog.models})
    known = set(ctx.providers.names())
    results: list[ProviderHealth] = []
    for name in names:
        models = sum(1 for spec in ctx.catalog.models if spec.provider == name)
        if name not in known:
            results.append(ProviderHealth(name, False, False, "No adapter for this provider yet.", models))
            continue
        healthy, detail = await _health_of(ctx, name)
        results.append(ProviderHealth(name, ctx.providers.get(name).configured(), healthy, detail, models))
    return results


async def revenue_summary(ctx: ServiceContext) -> RevenueSummary:
    """Credits in and out since the start, from the ledger, and the generations per status. Money and margin
    over a period come from the analytics (the revenue page's headline and tables are one computation there)."""

    def read(tx: Tx) -> tuple[dict[str, int], dict[str, int]]:
        return analytics_queries.ledger_sums_per_kind(tx), analytics_queries.generations_per_status(tx)

    sums, by_status = await ctx.db.read(read, snapshot=True)
    return RevenueSummary(
        credits_granted=sums.get(EntryKind.GRANT.value, 0),
        credits_purchased=sums.get(EntryKind.PURCHASE.value, 0),
        credits_captured=sums.get(EntryKind.CAPTURE.value, 0),
        credits_refunded=sums.get(EntryKind.RELEASE.value, 0),
        generations_by_status=by_status,
        currency=ctx.catalog.credit_unit.currency,
    )
