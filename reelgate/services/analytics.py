"""The operator's numbers, computed from the ledger, the generations and the payments (never a second copy)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reelgate.db.queries import analytics as analytics_queries
from reelgate.db.records import Generation, LedgerEntry, Payment
from reelgate.db.sql import Tx
from reelgate.domain.catalog import ModelSpec
from reelgate.domain.errors import NotFound
from reelgate.domain.jobs import GenerationStatus
from reelgate.services.context import ServiceContext
from reelgate.services.provider_costs import MICROS, job_provider_cost_micros

NO_TIER = "none"


@dataclass
class Bucket:
    """Charged jobs grouped by a day, model, provider or tier; money in micros of the credit currency."""

    key: str
    jobs: int = 0
    credits_charged: int = 0
    revenue_micros: int = 0
    provider_cost_micros: int = 0
    margin_micros: int = 0

    def add(self, job: JobMargin) -> None:
        self.jobs += 1
        self.credits_charged += job.credits_charged
        self.revenue_micros += job.revenue_micros
        self.provider_cost_micros += job.provider_cost_micros
        self.margin_micros += job.margin_micros


@dataclass(frozen=True)
class JobMargin:
    generation_id: str
    user_id: str
    model: str
    provider: str
    tier: str
    day: str
    credits_charged: int
    revenue_micros: int
    provider_cost_micros: int  # 0 when the catalog gives no provider cost for the model
    margin_micros: int


@dataclass
class ModelQuality:
    model: str
    finished: int = 0
    succeeded: int = 0
    failed: int = 0  # failed or expired; cancellations are the user's choice and not counted against a model
    canceled: int = 0
    success_rate: float | None = None
    avg_completion_seconds: float | None = None


@dataclass
class UserTotal:
    user_id: str
    email: str = ""
    jobs: int = 0
    credits_charged: int = 0
    payments: int = 0
    amount_paid: int = 0  # minor units of the payments' currency
    credits_purchased: int = 0


@dataclass
class SalesDay:
    day: str
    currency: str
    payments: int = 0
    amount: int = 0  # minor units (cents)
    credits: int = 0


@dataclass
class Refunds:
    jobs_refunded: int = 0  # generations that ended in a release (failed, canceled, expired)
    credits_released: int = 0
    payments_reversed: int = 0  # payments refunded or disputed, with credits taken back
    amount_reversed: int = 0  # minor units
    credits_reversed: int = 0
    credits_unrecovered: int = 0  # what balances could not cover (those accounts are flagged)


@dataclass
class Summary:
    since: datetime
    until: datetime
    currency: str
    credit_value_micros: int
    totals: Bucket
    per_day: list[Bucket]
    per_model: list[Bucket]
    per_provider: list[Bucket]
    per_tier: list[Bucket]
    jobs: list[JobMargin]
    models: list[ModelQuality]
    users: list[UserTotal]
    sales: list[SalesDay]
    refunds: Refunds = field(default_factory=Refunds)


def _spec(ctx: ServiceContext, model_id: str) -> ModelSpec | None:
    try:
        return ctx.catalog.get(model_id)
    except NotFound:  # a model removed from the catalog keeps its history
        return None


def _sorted(buckets: dict[str, Bucket]) -> list[Bucket]:
    return [buckets[k] for k in sorted(buckets)]


async def summary(ctx: ServiceContext, *, days: int = 30, until: datetime | None = None) -> Summary:
    """Revenue, costs and margins of the jobs charged in the last `days` days, with quality and sales."""
    end = until or ctx.clock()
    start = end - timedelta(days=days)
    facts = await ctx.db.read(lambda tx: _facts(tx, start, end), snapshot=True)
    # Arithmetic over every job of the window, which takes a large business's summary most of a second: on a
    # thread, so that the event loop goes on answering everyone else meanwhile.
    return await asyncio.to_thread(_summarized, ctx, facts, start, end)


def _summarized(ctx: ServiceContext, facts: _Facts, start: datetime, end: datetime) -> Summary:
    credit_micros = int(ctx.catalog.credit_unit.value * MICROS)
    captures, created, payments, refunds, emails = facts
    jobs = [job_margin(ctx, entry, generation, credit_micros) for entry, generation in captures]
    totals = Bucket("all")
    groups: dict[str, dict[str, Bucket]] = {"day": {}, "model": {}, "provider": {}, "tier": {}}
    for job in jobs:
        totals.add(job)
        for name, key in (("day", job.day), ("model", job.model), ("provider", job.provider), ("tier", job.tier)):
            groups[name].setdefault(key, Bucket(key)).add(job)
    return Summary(
        since=start,
        until=end,
        currency=ctx.catalog.credit_unit.currency,
        credit_value_micros=credit_micros,
        totals=totals,
        per_day=_sorted(groups["day"]),
        per_model=_sorted(groups["model"]),
        per_provider=_sorted(groups["provider"]),
        per_tier=_sorted(groups["tier"]),
        jobs=jobs[:200],
        models=_quality(created),
        users=_users(jobs, payments, emails),
        sales=_sales(payments),
        refunds=refunds,
    )


def job_margin(ctx: ServiceContext, entry: LedgerEntry, generation: Generation, credit_micros: int) -> JobMargin:
    """One capture's revenue, provider cost and margin: the revenue page's figures, and a project's spend."""
    spec = _spec(ctx, generation.model)
    revenue = entry.amount * credit_micros
    # A fallback's provider cost is what the operator paid; the user paid the chosen model's quote. Jobs finished
    # before costs were recorded are worked out the same way as the record.
    cost = generation.provider_cost_micros or job_provider_cost_micros(ctx.catalog, generation)
    return JobMargin(
        generation_id=generation.id,
        user_id=generation.user_id,
        model=generation.model,
        provider=generation.provider,
        tier=(spec.tier if spec is not None and spec.tier else NO_TIER),
        day=entry.created_at.date().isoformat(),
        credits_charged=entry.amount,
        revenue_micros=revenue,
        provider_cost_micros=cost,
        margin_micros=revenue - cost,
    )


def _quality(generations: list[Generation]) -> list[ModelQuality]:
    per_model: dict[str, ModelQuality] = {}
    durations: dict[str, list[float]] = defaultdict(list)
    for g in generations:
        quality = per_model.setdefault(g.model, ModelQuality(g.model))
        if g.status == GenerationStatus.SUCCEEDED:
            quality.succeeded += 1
            if g.completed_at is not None:
                durations[g.model].append((g.completed_at - g.created_at).total_seconds())
        elif g.status in (GenerationStatus.FAILED, GenerationStatus.EXPIRED):
            quality.failed += 1
        elif g.status == GenerationStatus.CANCELED:
            quality.canceled += 1
    for model, quality in per_model.items():
        quality.finished = quality.succeeded + quality.failed + quality.canceled
        judged = quality.succeeded + quality.failed
        quality.success_rate = round(quality.succeeded / judged, 4) if judged else None
        if durations[model]:
            quality.avg_completion_seconds = round(sum(durations[model]) / len(durations[model]), 3)
    return [per_model[k] for k in sorted(per_model)]


def _users(jobs: list[JobMargin], payments: list[Payment], emails: dict[str, str]) -> list[UserTotal]:
    totals: dict[str, UserTotal] = {}
    for job in jobs:
        user = totals.setdefault(job.user_id, UserTotal(job.user_id, emails.get(job.user_id, "")))
        user.jobs += 1
        user.credits_charged += job.credits_charged
    for payment in payments:
        user = totals.setdefault(payment.user_id, UserTotal(payment.user_id, emails.get(payment.user_id, "")))
        user.payments += 1
        user.amount_paid += payment.amount
        user.credits_purchased += payment.credits
    return sorted(totals.values(), key=lambda u: (-u.credits_charged, -u.amount_paid, u.user_id))


def _sales(payments: list[Payment]) -> list[SalesDay]:
    days: dict[tuple[str, str], SalesDay] = {}
    for payment in payments:
        assert payment.paid_at is not None
        key = (payment.paid_at.date().isoformat(), payment.currency)
        day = days.setdefault(key, SalesDay(*key))
        day.payments += 1
        day.amount += payment.amount
        day.credits += payment.credits
    return [days[k] for k in sorted(days)]


_Facts = tuple[list[tuple[LedgerEntry, Generation]], list[Generation], list[Payment], "Refunds", dict[str, str]]


def _facts(tx: Tx, start: datetime, end: datetime) -> _Facts:
    """Everything the summary is computed from, read in one snapshot."""
    released = analytics_queries.released_amounts_between(tx, start, end)
    return (
        analytics_queries.captures_between(tx, start, end),
        analytics_queries.generations_created_between(tx, start, end),
        analytics_queries.payments_paid_between(tx, start, end),
        _refunds(tx, start, end, released),
        analytics_queries.user_emails(tx),
    )


def _refunds(tx: Tx, start: datetime, end: datetime, released: list[int]) -> Refunds:
    result = Refunds(jobs_refunded=len(released), credits_released=sum(released))
    result.credits_reversed = -sum(
        amount for _ref, amount in analytics_queries.payment_reversals_between(tx, start, end)
    )
    for payment in analytics_queries.payments_reversed_between(tx, start, end):
        result.payments_reversed += 1
        result.amount_reversed += min(payment.amount, payment.amount_refunded + payment.amount_disputed)
        result.credits_unrecovered += payment.credits_unrecovered
    return result


async def database_figures(ctx: ServiceContext) -> tuple[list[tuple[str, str, int]], int]:
    """(status, model, count) of every generation, and the credits held across accounts, for /metrics."""

    def read(tx: Tx) -> tuple[list[tuple[str, str, int]], int]:
        return analytics_queries.generations_per_status_and_model(tx), analytics_queries.total_held(tx)

    return await ctx.db.read(read, snapshot=True)
