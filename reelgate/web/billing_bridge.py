"""The studio's view of payments and analytics: the billing services when installed, plain ledger queries if not."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reelgate.services import admin
from reelgate.services.context import ServiceContext
from reelgate.web import revenue_chart

# Payments and analytics are separate features; the studio works (packages shown, no checkout) without them.
try:
    from reelgate.services import billing
except ImportError:  # pragma: no cover - depends on which features are installed
    billing = None
try:
    from reelgate.services import analytics
except ImportError:  # pragma: no cover
    analytics = None

MICROS = Decimal(1_000_000)


@dataclass(frozen=True)
class Package:
    id: str
    credits: int
    bonus: int
    price: Decimal
    currency: str
    popular: bool = False

    @property
    def total(self) -> int:
        return self.credits + self.bonus


# The four default packages in US$0.01 credits, shown only while reelgate.services.billing is absent.
FALLBACK_PACKAGES = (
    Package("starter", 1000, 0, Decimal("9.99"), "USD"),
    Package("standard", 2500, 200, Decimal("24.99"), "USD"),
    Package("pro", 5000, 500, Decimal("47.99"), "USD", popular=True),
    Package("enterprise", 10000, 1500, Decimal("89.99"), "USD"),
)


def packages(ctx: ServiceContext) -> tuple[list[Package], bool]:
    """The packages on sale, and whether checkout works (billing installed and Stripe configured)."""
    if billing is None:
        return list(FALLBACK_PACKAGES), False
    sold = [
        # billing prices are in minor units (cents), as Stripe's unit_amount.
        Package(p.id, p.credits, p.bonus, Decimal(p.price) / 100, p.currency.upper(), p.popular)
        for p in billing.packages(ctx)
    ]
    return sold, bool(ctx.config.stripe_secret_key)


async def checkout_url(
    ctx: ServiceContext, user_id: str, package_id: str, base_url: str, organization: str | None = None
) -> str | None:
    """Stripe Checkout's URL for the package (for the user's own account, or for an organization's wallet that the
    user manages), or None when payments are not installed."""
    if billing is None:
        return None
    started = await billing.start_checkout(
        ctx,
        user_id,
        package_id,
        success_url=f"{base_url}/credits?checkout=success",
        cancel_url=f"{base_url}/credits?checkout=canceled",
        organization=organization,
    )
    return str(started.url)


@dataclass(frozen=True)
class Line:
    kind: str
    change: int  # what it did to the spendable balance
    note: str
    created_at: Any


async def transactions(ctx: ServiceContext, user_id: str) -> list[Line]:
    if billing is not None:
        rows, _ = await billing.list_transactions(ctx, user_id, limit=100)
        return [Line(t.kind, t.available_change, t.note or (t.generation_id or ""), t.created_at) for t in rows]
    lines = []
    for t in await admin.list_transactions(ctx, user_id, limit=100):
        # Holds take from the balance; captures settle a hold (already taken); releases give it back.
        change = {"hold": -t.amount, "capture": 0, "expire": -t.amount}.get(t.kind, t.amount)
        lines.append(Line(t.kind, change, t.note or (t.generation_id or ""), t.created_at))
    return lines


async def grant(ctx: ServiceContext, admin_user_id: str, user_id: str, amount: int, reason: str) -> None:
    if billing is not None:
        await billing.grant_credits(ctx, user_id, amount, reason=reason, actor_id=admin_user_id)
    else:
        await admin.grant_credits(ctx, admin_user_id, user_id, amount, reason)


def _money(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS).quantize(Decimal("0.01"))


def _row(b: Any) -> dict[str, Any]:
    return {
        "key": b.key,
        "jobs": b.jobs,
        "credits": b.credits_charged,
        "revenue": _money(b.revenue_micros),
        "cost": _money(b.provider_cost_micros),
        "margin": _money(b.margin_micros),
        "margin_percent": (Decimal(b.margin_micros * 100) / b.revenue_micros).quantize(Decimal("0.1"))
        if b.revenue_micros
        else None,
    }


@dataclass(frozen=True)
class Breakdowns:
    """The revenue page's figures over one period, all from one computation: the headline is the sum of the
    rows of each table."""

    totals: dict[str, Any] | None
    tables: dict[str, list[dict[str, Any]]]
    chart: revenue_chart.Chart | None


async def breakdowns(ctx: ServiceContext, days: int = 30) -> Breakdowns:
    """Revenue, cost and margin over the last `days` days: in total, per provider, tier and model, and the chart of
    them per day (analytics installed)."""
    if analytics is None:
        return Breakdowns(None, {}, None)
    summary = await analytics.summary(ctx, days=days)
    chart = revenue_chart.revenue_chart(summary.per_day, last_day=summary.until.date(), days=days)
    tables = {
        title: [_row(b) for b in buckets]
        for title, buckets in (
            ("Provider", summary.per_provider),
            ("Tier", summary.per_tier),
            ("Model", summary.per_model),
        )
    }
    return Breakdowns(_row(summary.totals), tables, chart)
