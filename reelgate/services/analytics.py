"""The operator's numbers, computed from the ledger, the generations and the payments (never a second copy)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reelgate.db.queries import analytics as analytics_queries
from reelgate.db.records import Generation, LedgerEntry, Payment
from reelgate.db.sql import Tx
from reelgate.domain.catalog import ModelSpec
from reelgate.domain.errors import NotFound
from reelgate.domain.jobs import GenerationStatus
from reelgate.services.context import ServiceContext
from reelgate.services.provider_costs import MICROS, job_provider_cost_micros, to_work_out

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

    def add(self, charged: Charged) -> None:
        self.jobs += charged.jobs
        self.credits_charged += charged.credits
        self.revenue_micros += charged.revenue_micros
        self.provider_cost_micros += charged.provider_cost_micros
        self.margin_micros += charged.revenue_micros - charged.provider_cost_micros


@dataclass(frozen=True)
class Charged:
    """Jobs of one day, model, provider, tier and user, summed: one job's margin, or a group's the database summed."""

    day: str
    model: str
    provider: str
    tier: str
    user_id: str
    jobs: int
    credits: int
    revenue_micros: int
    provider_cost_micros: int

    @classmethod
    def one(cls, job: JobMargin) -> Charged:
        return cls(
            job.day,
            job.model,
            job.provider,
            job.tier,
            job.user_id,
            1,
            job.credits_charged,
            job.revenue_micros,
            job.provider_cost_micros,
        )


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


NEWEST_JOBS = 200  # the jobs listed one by one


async def summary(ctx: ServiceContext, *, days: int = 30, until: datetime | None = None) -> Summary:
    """Revenue, costs and margins of the jobs charged in the last `days` days, with quality and sales."""
    end = until or ctx.clock()
    start = end - timedelta(days=days)
    # The database sums the window's jobs per group. Only jobs without a recorded provider cost, served by a model
    # that can cost something, are read one by one to work their cost out (jobs from before costs were recorded);
    # any other job without a record cost nothing the catalog knows of.
    facts = await ctx.db.read(lambda tx: _facts(ctx, tx, start, end), snapshot=True)
    # On a thread: those older jobs can be many, and working out each one's cost takes a while.
    return await asyncio.to_thread(_summarized, ctx, facts, start, end)


def _summarized(ctx: ServiceContext, facts: _Facts, start: datetime, end: datetime) -> Summary:
    credit_micros = int(ctx.catalog.credit_unit.value * MICROS)
    totals = Bucket("all")
    groups: dict[str, dict[str, Bucket]] = {"day": {}, "model": {}, "provider": {}, "tier": {}}
    users: dict[str, UserTotal] = {}
    for charged in _charged(ctx, facts, credit_micros):
        totals.add(charged)
        for name, key in (
            ("day", charged.day),
            ("model", charged.model),
            ("provider", charged.provider),
            ("tier", charged.tier),
        ):
            groups[name].setdefault(key, Bucket(key)).add(charged)
        user = users.setdefault(charged.user_id, UserTotal(charged.user_id))
        user.jobs += charged.jobs
        user.credits_charged += charged.credits
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
        jobs=[job_margin(ctx, entry, generation, credit_micros) for entry, generation in facts.newest],
        models=_quality(facts.outcomes),
        users=_users(users, facts.payments, facts.emails),
        sales=_sales(facts.payments),
        refunds=facts.refunds,
    )


def _charged(ctx: ServiceContext, facts: _Facts, credit_micros: int) -> Iterator[Charged]:
    """The window's charged jobs: the database's groups, and one by one those whose cost had to be worked out."""
    tiers = {model: _tier(ctx, model) for model in {group.model for group in facts.groups}}
    for group in facts.groups:
        if not group.cost_recorded and group.served_model in facts.worked_out:
            continue  # among facts.unrecorded, each with its own cost
        yield Charged(
            day=group.day,
            model=group.model,
            provider=group.provider,
            tier=tiers[group.model],
            user_id=group.user_id,
            jobs=group.jobs,
            credits=group.credits,
            revenue_micros=group.credits * credit_micros,
            provider_cost_micros=group.provider_cost_micros,  # 0 in a group without records: nothing to cost
        )
    for entry, generation in facts.unrecorded:
        yield Charged.one(job_margin(ctx, entry, generation, credit_micros))


def _tier(ctx: ServiceContext, model_id: str) -> str:
    spec = _spec(ctx, model_id)
    return spec.tier if spec is not None and spec.tier else NO_TIER


def job_margin(ctx: ServiceContext, entry: LedgerEntry, generation: Generation, credit_micros: int) -> JobMargin:
    """One capture's revenue, provider cost and margin: the revenue page's figures, and a project's spend."""
    revenue = entry.amount * credit_micros
    # A fallback's provider cost is what the operator paid; the user paid the chosen model's quote. Jobs finished
    # before costs were recorded are worked out the same way as the record.
    cost = generation.provider_cost_micros or job_provider_cost_micros(ctx.catalog, generation)
    return JobMargin(
        generation_id=generation.id,
        user_id=generation.user_id,
        model=generation.model,
        provider=generation.provider,
        tier=_tier(ctx, generation.model),
        day=entry.created_at.date().isoformat(),
        credits_charged=entry.amount,
        revenue_micros=revenue,
        provider_cost_micros=cost,
        margin_micros=revenue - cost,
    )


def _quality(outcomes: list[analytics_queries.Outcomes]) -> list[ModelQuality]:
    per_model: dict[str, ModelQuality] = {}
    timed: dict[str, tuple[int, int]] = {}  # model -> (successes with an end, their durations in microseconds)
    for row in outcomes:
        quality = per_model.setdefault(row.model, ModelQuality(row.model))
        if row.status == GenerationStatus.SUCCEEDED:
            quality.succeeded += row.jobs
            timed[row.model] = (row.timed, row.timed_micros)
        elif row.status in (GenerationStatus.FAILED, GenerationStatus.EXPIRED):
            quality.failed += row.jobs
        elif row.status == GenerationStatus.CANCELED:
            quality.canceled += row.jobs
    for model, quality in per_model.items():
        quality.finished = quality.succeeded + quality.failed + quality.canceled
        judged = quality.succeeded + quality.failed
        quality.success_rate = round(quality.succeeded / judged, 4) if judged else None
        count, micros = timed.get(model, (0, 0))
        if count:
            quality.avg_completion_seconds = round(micros / count / MICROS, 3)
    return [per_model[k] for k in sorted(per_model)]


def _users(users: dict[str, UserTotal], payments: list[Payment], emails: dict[str, str]) -> list[UserTotal]:
    for payment in payments:
        user = users.setdefault(payment.user_id, UserTotal(payment.user_id))
        user.payments += 1
        user.amount_paid += payment.amount
        user.credits_purchased += payment.credits
    for user in users.values():
        user.email = emails.get(user.user_id, "")
    return sorted(users.values(), key=lambda u: (-u.credits_charged, -u.amount_paid, u.user_id))


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


@dataclass(frozen=True)
class _Facts:
    """Everything the summary is computed from, read in one snapshot."""

    groups: list[analytics_queries.ChargedGroup]
    worked_out: frozenset[str]  # serving models whose jobs without a recorded cost are costed one by one
    unrecorded: list[tuple[LedgerEntry, Generation]]  # those jobs
    newest: list[tuple[LedgerEntry, Generation]]
    outcomes: list[analytics_queries.Outcomes]
    payments: list[Payment]
    refunds: Refunds
    emails: dict[str, str]


def _facts(ctx: ServiceContext, tx: Tx, start: datetime, end: datetime) -> _Facts:
    groups = analytics_queries.charged_groups_between(tx, start, end)
    worked_out = to_work_out(ctx.catalog, (group.served_model for group in groups if not group.cost_recorded))
    payments = analytics_queries.payments_paid_between(tx, start, end)
    users = {group.user_id for group in groups} | {payment.user_id for payment in payments}
    return _Facts(
        groups=groups,
        worked_out=worked_out,
        unrecorded=analytics_queries.captures_without_recorded_cost(tx, start, end, worked_out),
        newest=analytics_queries.newest_captures_between(tx, start, end, NEWEST_JOBS),
        outcomes=analytics_queries.outcomes_per_model_between(tx, start, end),
        payments=payments,
        refunds=_refunds(tx, start, end),
        emails=analytics_queries.emails_of(tx, users),
    )


def _refunds(tx: Tx, start: datetime, end: datetime) -> Refunds:
    jobs_refunded, credits_released = analytics_queries.releases_between(tx, start, end)
    result = Refunds(jobs_refunded=jobs_refunded, credits_released=credits_released)
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
