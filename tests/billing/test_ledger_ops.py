"""Admin grants and adjustments, transactions and CSV, packages, expiry and the operator's analytics."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime, timedelta

from reelgate.db.queries.ledger import hold_credits, settle_hold
from reelgate.db.records import Generation
from reelgate.db.sql import Tx, query
from reelgate.domain.ledger import EntryKind
from reelgate.services import analytics, billing, expiry
from tests.conftest import Account, Running, make_account
from tests.helpers import assert_ledger_ok, credits, make_admin, seed_finished_job


async def _admin(running: Running) -> Account:
    admin = await make_account(running.ctx, credits=0)
    await make_admin(running.ctx, admin.id)
    return admin


async def test_packages_default_to_the_seed(running: Running) -> None:
    body = (await running.client.get("/api/v1/credits/packages")).json()
    assert [(p["id"], p["credits"], p["bonus"], p["price"], p["currency"]) for p in body["packages"]] == [
        ("starter", 1000, 0, 999, "usd"),
        ("standard", 2500, 200, 2499, "usd"),
        ("pro", 5000, 500, 4799, "usd"),
        ("enterprise", 10000, 1500, 8999, "usd"),
    ]


async def test_admin_grant_and_adjust_need_a_reason_and_never_overdraw(running: Running) -> None:
    admin, user = await _admin(running), await make_account(running.ctx, credits=100)
    url = "/api/v1/admin/credits"
    granted = await running.client.post(
        url, json={"email": user.email, "amount": 50, "reason": "apology", "kind": "grant"}, headers=admin.headers
    )
    assert granted.status_code == 200 and granted.json()["available"] == 150
    missing = await running.client.post(url, json={"user_id": user.id, "amount": 5}, headers=admin.headers)
    assert missing.status_code == 422 and missing.json()["error"]["details"]["field"] == "reason"
    blank = await running.client.post(
        url, json={"user_id": user.id, "amount": 5, "reason": "  "}, headers=admin.headers
    )
    assert blank.status_code == 422
    forbidden = await running.client.post(
        url, json={"user_id": user.id, "amount": 5, "reason": "x"}, headers=user.headers
    )
    assert forbidden.status_code == 403
    taken = await running.client.post(
        url, json={"user_id": user.id, "amount": -500, "reason": "chargeback cleanup"}, headers=admin.headers
    )
    assert taken.json() | {} == {**taken.json(), "requested": -500, "applied": -150, "available": 0}
    assert await credits(running.client, user.headers) == {"available": 0, "held": 0}
    notes = [t.note for t in (await billing.list_transactions(running.ctx, user.id))[0]]
    assert notes[:2] == [f"chargeback cleanup (by {admin.email})", f"apology (by {admin.email})"]
    await assert_ledger_ok(running.ctx)


async def test_transactions_paginate_filter_link_and_export(running: Running) -> None:
    user = await make_account(running.ctx, credits=100)
    for i in range(4):
        await billing.grant_credits(running.ctx, user.id, i + 1, reason=f"gift {i}")
    created = await running.client.post(
        "/api/v1/generations",
        json={"model": "sandbox-t2v", "prompt": "a lantern floating up", "duration": 2},
        headers=user.headers,
    )
    generation_id = created.json()["id"]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await running.client.get("/api/v1/credits/transactions", params=params, headers=user.headers)).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [t["kind"] for t in seen][-5:] == ["grant"] * 5  # four gifts and the sign-up grant, newest first
    assert seen[0]["kind"] == "hold" and seen[0]["generation_id"] == generation_id
    assert seen[0]["available_change"] == -seen[0]["amount"]
    only = await running.client.get(
        "/api/v1/credits/transactions", params={"generation_id": generation_id}, headers=user.headers
    )
    assert {t["generation_id"] for t in only.json()["data"]} == {generation_id}
    bad = await running.client.get("/api/v1/credits/transactions?kind=bogus", headers=user.headers)
    assert bad.status_code == 422
    exported = await running.client.get("/api/v1/credits/transactions.csv?kind=grant", headers=user.headers)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted(int(r["amount"]) for r in rows) == [1, 2, 3, 4, 100]


async def test_expiry_takes_only_expired_credits_oldest_first(running: Running) -> None:
    ctx = running.ctx
    user = await make_account(ctx, credits=100)  # the sign-up grant: it will be 100 days old
    backdate = query("UPDATE ledger_entries SET created_at = :at WHERE user_id = :user_id")

    def age_and_spend(tx: Tx) -> None:
        tx.run(backdate, {"at": datetime.now(UTC) - timedelta(days=100), "user_id": user.id})
        hold_credits(tx, user.id, 30, generation_id="gen_spent")
        settle_hold(tx, user.id, 30, generation_id="gen_spent", capture=True)

    await ctx.db.write(age_and_spend)
    await billing.grant_credits(ctx, user.id, 50, reason="recent gift")
    assert await expiry.expire_credits(ctx) == 0  # off by default
    ctx.config = dataclasses.replace(ctx.config, credit_expiry_days=90)
    # 30 of the old 100 were spent first, so 70 lapse; the recent 50 stay.
    assert await expiry.expire_credits(ctx) == 70
    assert await expiry.expire_credits(ctx) == 0
    assert await credits(running.client, user.headers) == {"available": 50, "held": 0}
    ctx.clock = lambda: datetime.now(UTC) + timedelta(days=91)
    assert await expiry.expire_credits(ctx) == 50
    expired = (await billing.list_transactions(ctx, user.id, billing.TransactionFilter(kinds=("expire",))))[0]
    assert [t.amount for t in expired] == [50, 70] and all(t.available_change < 0 for t in expired)
    await assert_ledger_ok(ctx)


async def test_analytics_equal_independent_sums(running: Running) -> None:
    a, b = await make_account(running.ctx, credits=1000), await make_account(running.ctx, credits=2000)
    jobs = [
        await seed_finished_job(running.ctx, a.id, "kling-v1-6", {"duration": 5}, 100, "succeeded"),
        await seed_finished_job(running.ctx, a.id, "kling-v1-6", {"duration": 10}, 200, "succeeded"),
        await seed_finished_job(running.ctx, a.id, "runway-gen-4-turbo", {"duration": 5}, 465, "failed"),
        await seed_finished_job(running.ctx, b.id, "runway-gen-4-turbo", {"duration": 10}, 930, "succeeded"),
        await seed_finished_job(running.ctx, b.id, "zeroscope-v2-xl", {"duration": 15}, 12, "succeeded"),
        await seed_finished_job(running.ctx, b.id, "kling-v1-6", {"duration": 5}, 100, "canceled"),
    ]
    summary = await analytics.summary(running.ctx, days=1)
    cost_per_second = {"kling-v1-6": 70_000, "runway-gen-4-turbo": 300_000}  # $0.07 and $0.30 per second
    charged = [j for j in jobs if j.status == "succeeded"]

    def cost(job: Generation) -> int:
        return 50_000 if job.model == "zeroscope-v2-xl" else cost_per_second[job.model] * job.params["duration"]

    revenue = sum(j.quote_total for j in charged) * 10_000  # one credit is US$0.01
    assert summary.totals.jobs == 4
    assert summary.totals.credits_charged == 100 + 200 + 930 + 12
    assert summary.totals.revenue_micros == revenue
    assert summary.totals.provider_cost_micros == sum(cost(j) for j in charged)
    assert summary.totals.margin_micros == revenue - sum(cost(j) for j in charged)
    by_model = {bucket.key: bucket.credits_charged for bucket in summary.per_model}
    assert by_model == {"kling-v1-6": 300, "runway-gen-4-turbo": 930, "zeroscope-v2-xl": 12}
    assert {bucket.key: bucket.jobs for bucket in summary.per_tier} == {"economy": 2, "premium": 1, "none": 1}
    assert [(bucket.key, bucket.jobs) for bucket in summary.per_provider] == [("pollo", 3), ("replicate", 1)]
    assert sum(bucket.revenue_micros for bucket in summary.per_day) == revenue
    for job in summary.jobs:
        assert job.margin_micros == job.revenue_micros - job.provider_cost_micros
    quality = {q.model: q for q in summary.models}
    assert (quality["kling-v1-6"].success_rate, quality["kling-v1-6"].canceled) == (1.0, 1)
    assert quality["runway-gen-4-turbo"].success_rate == 0.5
    assert quality["kling-v1-6"].avg_completion_seconds == (45 + 50) / 2
    users = {u.user_id: (u.jobs, u.credits_charged) for u in summary.users}
    assert users == {a.id: (2, 300), b.id: (2, 942)}
    assert (summary.refunds.jobs_refunded, summary.refunds.credits_released) == (2, 565)
    await assert_ledger_ok(running.ctx)

    admin = await _admin(running)
    over_api = (await running.client.get("/api/v1/admin/analytics?days=1", headers=admin.headers)).json()
    assert over_api["totals"]["credits_charged"] == 1242 and over_api["currency"] == "USD"
    assert (await running.client.get("/api/v1/admin/analytics", headers=a.headers)).status_code == 403


async def test_every_cost_rule_reaches_the_analytics(running: Running) -> None:
    """A price set as provider cost times a markup (ModelsLab) and a per-second cost scaled by resolution (Wan on
    RunPod) are costed as the catalog says, not as nothing or at the full-resolution rate."""
    user = await make_account(running.ctx, credits=5000)
    veo = await seed_finished_job(running.ctx, user.id, "veo3", {"duration": 8}, 782, "succeeded")
    wan = await seed_finished_job(
        running.ctx, user.id, "wan-2.2-runpod", {"duration": 5, "resolution": "480p"}, 15, "succeeded"
    )
    summary = await analytics.summary(running.ctx, days=1)
    costs = {job.generation_id: job.provider_cost_micros for job in summary.jobs}
    assert costs[veo.id] == 3_128_000  # its price, US$7.82, over the markup of 2.5
    assert costs[wan.id] == 46_980  # 5 s at US$0.02088 a second, times 0.45 at 480p
    assert summary.totals.provider_cost_micros == 3_128_000 + 46_980


async def test_generation_links_in_transactions_after_spending(running: Running) -> None:
    user = await make_account(running.ctx, credits=100)
    job = await seed_finished_job(running.ctx, user.id, "kling-v1-6", {"duration": 5}, 40, "succeeded")
    page, _ = await billing.list_transactions(running.ctx, user.id)
    assert [(t.kind, t.generation_id) for t in page[:2]] == [("capture", job.id), ("hold", job.id)]
    assert page[0].available_change == 0 and page[1].available_change == -40
    assert EntryKind.GRANT.value == page[-1].kind
