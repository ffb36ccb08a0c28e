"""The analytics summary and a project's spend have the database sum charged jobs per group: every figure equals
the one worked out job by job from every capture, for costs recorded with the job, costs worked out from the
catalog (jobs from before costs were recorded, a fallback's route) and a model that costs nothing."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from reelgate.db.codec import decode_row
from reelgate.db.records import Generation, LedgerEntry
from reelgate.db.sql import Tx, columns, query
from reelgate.services import analytics, budgets
from reelgate.services.provider_costs import MICROS
from tests.conftest import Running, make_account
from tests.helpers import seed_finished_job

_CAPTURES = query(
    f"SELECT {columns(LedgerEntry, 'e')}, {columns(Generation, 'g')} FROM ledger_entries e "
    "JOIN generations g ON g.id = e.generation_id WHERE e.kind = 'capture' ORDER BY e.id DESC"
)
_GENERATIONS = query(f"SELECT {columns(Generation)} FROM generations", row=Generation)
_RELEASES = query("SELECT amount FROM ledger_entries WHERE kind = 'release'")
_RECORD = query(
    "UPDATE generations SET provider_cost_micros = :cost, served_model = :served, created_at = :created, "
    "completed_at = :completed WHERE id = :id"
)
_CAPTURED_AT = query("UPDATE ledger_entries SET created_at = :at WHERE generation_id = :id AND kind = 'capture'")
_STATUS = query("UPDATE generations SET status = :status, completed_at = NULL WHERE id = :id")


async def _business(running: Running) -> None:
    """Charged jobs over three days, two users and four providers, costed each way there is."""
    ctx, now = running.ctx, datetime.now(UTC)
    a, b = await make_account(ctx, credits=5000), await make_account(ctx, credits=5000)
    day, hour = timedelta(days=1), timedelta(hours=1)
    # (payer, model, params, price, status, recorded provider cost, the fallback that served it, charged how long ago)
    plan: list[tuple[str, str, dict[str, Any], int, str, int, str | None, timedelta]] = [
        (a.id, "kling-v1-6", {"duration": 5}, 100, "succeeded", 123_456, None, 3 * day),
        (a.id, "kling-v1-6", {"duration": 10}, 200, "succeeded", 0, None, 3 * day + 2 * hour),
        (a.id, "kling-v1-6", {"duration": 5}, 100, "succeeded", 0, "pollo-v1-6", day),
        (b.id, "runway-gen-4-turbo", {"duration": 10}, 930, "succeeded", 1_000_000, None, day),
        (b.id, "sandbox-t2v", {"duration": 5}, 7, "succeeded", 0, None, hour),
        (b.id, "zeroscope-v2-xl", {"duration": 15}, 12, "succeeded", 0, None, hour),
        (b.id, "kling-v1-6", {"duration": 5}, 100, "failed", 0, None, timedelta(0)),
        (a.id, "veo3", {"duration": 8}, 782, "canceled", 0, None, timedelta(0)),
    ]
    jobs = [
        (await seed_finished_job(ctx, payer, model, params, price, status), cost, served, ago)
        for payer, model, params, price, status, cost, served, ago in plan
    ]
    running_job = await seed_finished_job(ctx, a.id, "veo3", {"duration": 8}, 782, "failed")

    def record(tx: Tx) -> None:
        for n, (job, cost, served, ago) in enumerate(jobs):
            completed = now - ago
            took = timedelta(seconds=40 + 7 * n, microseconds=123_457 * (n + 1))  # durations with microseconds
            tx.run(
                _RECORD,
                {"cost": cost, "served": served, "created": completed - took, "completed": completed, "id": job.id},
            )
            tx.run(_CAPTURED_AT, {"at": completed, "id": job.id})
        tx.run(_STATUS, {"status": "processing", "id": running_job.id})  # still in flight: counted nowhere

    await ctx.db.write(record)


def _every_capture(tx: Tx) -> list[tuple[LedgerEntry, Generation]]:
    """Every capture with its job, newest first: what the figures are worked out from, job by job."""
    width = len(LedgerEntry.__dataclass_fields__)
    return [
        (decode_row(LedgerEntry, tx.dialect, row[:width]), decode_row(Generation, tx.dialect, row[width:]))
        for row in tx.all(_CAPTURES)
    ]


def _bucket(key: str, jobs: list[analytics.JobMargin]) -> analytics.Bucket:
    bucket = analytics.Bucket(key)
    for job in jobs:
        bucket.add(analytics.Charged.one(job))
    return bucket


def _per(jobs: list[analytics.JobMargin], field: str) -> list[dict[str, Any]]:
    grouped: dict[str, list[analytics.JobMargin]] = defaultdict(list)
    for job in jobs:
        grouped[getattr(job, field)].append(job)
    return [asdict(_bucket(key, grouped[key])) for key in sorted(grouped)]


async def test_the_summary_equals_its_figures_worked_out_job_by_job(running: Running) -> None:
    await _business(running)
    ctx = running.ctx
    summary = await analytics.summary(ctx, days=30)

    def everything(tx: Tx) -> tuple[list[tuple[LedgerEntry, Generation]], list[Generation], list[int]]:
        return _every_capture(tx), tx.all(_GENERATIONS), [int(amount) for (amount,) in tx.all(_RELEASES)]

    captures, generations, releases = await ctx.db.read(everything)
    credit_micros = int(ctx.catalog.credit_unit.value * MICROS)
    jobs = [analytics.job_margin(ctx, entry, generation, credit_micros) for entry, generation in captures]
    costs = {job.generation_id: job.provider_cost_micros for job in jobs}
    # Each way a cost is known is present: recorded, worked out from the catalog (also through a fallback), none.
    assert sorted(costs.values())[:2] == [0, 50_000] and 123_456 in costs.values() and 1_000_000 in costs.values()
    assert len({job.day for job in jobs}) >= 3

    assert asdict(summary.totals) == asdict(_bucket("all", jobs))
    assert [asdict(b) for b in summary.per_day] == _per(jobs, "day")
    assert [asdict(b) for b in summary.per_model] == _per(jobs, "model")
    assert [asdict(b) for b in summary.per_provider] == _per(jobs, "provider")
    assert [asdict(b) for b in summary.per_tier] == _per(jobs, "tier")
    assert summary.jobs == jobs  # newest first
    users = {u.user_id: (u.jobs, u.credits_charged, u.email) for u in summary.users}
    emails = {u.user_id: u.email for u in summary.users}
    assert users == {
        user: (
            sum(1 for j in jobs if j.user_id == user),
            sum(j.credits_charged for j in jobs if j.user_id == user),
            emails[user],
        )
        for user in {j.user_id for j in jobs}
    }
    assert all(email.endswith("@example.com") for email in emails.values())
    assert (summary.refunds.jobs_refunded, summary.refunds.credits_released) == (len(releases), sum(releases))

    quality = {q.model: q for q in summary.models}
    assert set(quality) == {g.model for g in generations}  # a model with only a job in flight is listed, at zero
    assert (quality["veo3"].finished, quality["veo3"].canceled, quality["veo3"].success_rate) == (1, 1, None)
    for model, q in quality.items():
        mine = [g for g in generations if g.model == model]
        succeeded = [g for g in mine if g.status == "succeeded"]
        failed = [g for g in mine if g.status in ("failed", "expired")]
        assert (q.succeeded, q.failed) == (len(succeeded), len(failed))
        durations = [(g.completed_at - g.created_at).total_seconds() for g in succeeded if g.completed_at]
        assert q.avg_completion_seconds == (round(sum(durations) / len(durations), 3) if durations else None)


async def test_a_projects_spend_equals_its_jobs_margins(running: Running) -> None:
    await _business(running)
    ctx = running.ctx
    captures = await ctx.db.read(_every_capture)
    credit_micros = int(ctx.catalog.credit_unit.value * MICROS)
    per_project: dict[tuple[str, str], list[analytics.JobMargin]] = defaultdict(list)
    for entry, generation in captures:
        per_project[(generation.user_id, generation.project_id)].append(
            analytics.job_margin(ctx, entry, generation, credit_micros)
        )
    assert len(per_project) == 2
    for (user_id, project_id), jobs in per_project.items():
        spend = await budgets.project_spend(ctx, user_id, project_id)
        revenue, cost = sum(j.revenue_micros for j in jobs), sum(j.provider_cost_micros for j in jobs)
        assert (spend.revenue_micros, spend.provider_cost_micros) == (revenue, cost)
        assert spend.margin_micros == revenue - cost
        assert spend.captured == sum(j.credits_charged for j in jobs)
