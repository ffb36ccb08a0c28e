"""Campaigns: a project's budget set through the API, enforced at submit (also under concurrent submits), freed by
released holds, and its spend report agreeing with the ledger. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from reelgate.db.queries import ledger as ledger_queries
from reelgate.services import analytics
from tests.conftest import Account, Running, make_account
from tests.helpers import assert_ledger_ok, credits, generation_row, make_admin, wait_for_terminal

HANGING = {"model": "sandbox-t2v", "prompt": "a kite over the dunes [hang]", "duration": 1, "resolution": "480p"}
QUICK = {"model": "sandbox-t2v", "prompt": "a paper boat", "duration": 1, "resolution": "480p"}
PRICE = 2  # credits of either order: 1 s at 2 credits a second, 480p


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    details: dict[str, Any] = body["error"]["details"]
    return details


async def _campaign(client: httpx.AsyncClient, account: Account, budget: int | None) -> str:
    made = await client.post(
        "/api/v1/projects", headers=account.headers, json={"name": "Spring launch", "budget_credits": budget}
    )
    assert made.status_code == 201, made.text
    assert made.json()["budget_credits"] == budget
    return str(made.json()["id"])


async def _submit(client: httpx.AsyncClient, account: Account, order: dict[str, Any], project: str) -> httpx.Response:
    return await client.post("/api/v1/generations", headers=account.headers, json={**order, "project_id": project})


async def _spend(client: httpx.AsyncClient, account: Account, project: str) -> dict[str, Any]:
    detail = await client.get(f"/api/v1/projects/{project}", headers=account.headers)
    assert detail.status_code == 200, detail.text
    spend: dict[str, Any] = detail.json()["spend"]
    return spend


async def test_budget_is_set_changed_removed_and_validated(running: Running, alice: Account, bob: Account) -> None:
    client = running.client
    project = await _campaign(client, alice, 50)
    url = f"/api/v1/projects/{project}"
    for bad in (0, -5, 2.5, "10", True, 10**13):
        refused = await client.patch(url, headers=alice.headers, json={"budget_credits": bad})
        assert _error(refused, 422, "validation_error")["field"].startswith("budget_credits"), refused.text
    refused = await client.post("/api/v1/projects", headers=alice.headers, json={"name": "x", "budget_credits": 0})
    _error(refused, 422, "validation_error")

    changed = await client.patch(url, headers=alice.headers, json={"budget_credits": 80})
    assert changed.status_code == 200 and changed.json()["budget_credits"] == 80
    renamed = await client.patch(url, headers=alice.headers, json={"name": "Spring launch 2"})
    assert renamed.json()["budget_credits"] == 80  # left out: unchanged
    assert (await _spend(client, alice, project))["budget_credits"] == 80
    removed = await client.patch(url, headers=alice.headers, json={"budget_credits": None})
    assert removed.status_code == 200 and removed.json()["budget_credits"] is None

    # Another user's project reads as not found, for reading and for changing its budget.
    assert (await client.get(url, headers=bob.headers)).status_code == 404
    _error(await client.patch(url, headers=bob.headers, json={"budget_credits": 1000}), 404, "not_found")
    assert (await client.get(url, headers=alice.headers)).json()["budget_credits"] is None


async def test_over_budget_is_refused_with_the_figures_and_a_release_frees_it(running: Running, alice: Account) -> None:
    client = running.client
    project = await _campaign(client, alice, 5 * PRICE - 1)  # affords 4 jobs, not 5
    held = [await _submit(client, alice, HANGING, project) for _ in range(4)]
    assert [r.status_code for r in held] == [202] * 4
    before = await credits(client, alice.headers)

    refused = await _submit(client, alice, HANGING, project)
    details = _error(refused, 402, "budget_exceeded")
    assert details == {"project_id": project, "budget": 5 * PRICE - 1, "spent": 0, "held": 4 * PRICE, "required": PRICE}
    assert await credits(client, alice.headers) == before  # nothing held
    listed = await client.get(f"/api/v1/generations?project_id={project}&limit=100", headers=alice.headers)
    assert len(listed.json()["data"]) == 4  # nothing inserted

    # An idempotent replay of an accepted request is answered as before, over budget or not.
    keyed = {**alice.headers, "Idempotency-Key": "campaign-replay"}
    await client.patch(f"/api/v1/projects/{project}", headers=alice.headers, json={"budget_credits": 5 * PRICE})
    first = await client.post("/api/v1/generations", headers=keyed, json={**HANGING, "project_id": project})
    assert first.status_code == 202, first.text
    replay = await client.post("/api/v1/generations", headers=keyed, json={**HANGING, "project_id": project})
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.json()["id"] == first.json()["id"]
    _error(await _submit(client, alice, HANGING, project), 402, "budget_exceeded")

    # A canceled job's released hold frees its share of the budget.
    canceled = await client.post(f"/api/v1/generations/{held[0].json()['id']}/cancel", headers=alice.headers)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text
    assert (await _submit(client, alice, HANGING, project)).status_code == 202
    spend = await _spend(client, alice, project)
    assert spend["credits_held"] == 5 * PRICE and spend["credits_remaining"] == 0
    assert spend["generations"]["canceled"] == 1 and sum(spend["generations"].values()) == 6
    await assert_ledger_ok(running.ctx)


async def test_concurrent_submits_never_pass_the_budget(running: Running) -> None:
    client = running.client
    account = await make_account(running.ctx, credits=1000)
    project = await _campaign(client, account, 5 * PRICE)  # affords exactly 5
    answers = await asyncio.gather(*(_submit(client, account, HANGING, project) for _ in range(20)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * 5 + [402] * 15, [r.text for r in answers if r.status_code not in (202, 402)]
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 402} == {"budget_exceeded"}
    spend = await _spend(client, account, project)
    assert spend["credits_held"] == 5 * PRICE and spend["credits_captured"] == 0
    assert (await credits(client, account.headers))["held"] == 5 * PRICE
    await assert_ledger_ok(running.ctx)


async def test_spend_report_agrees_with_the_ledger(running: Running, alice: Account) -> None:
    client = running.client
    await make_admin(running.ctx, alice.id)
    project = await _campaign(client, alice, 100)
    other = await _campaign(client, alice, None)
    done = [await _submit(client, alice, QUICK, project) for _ in range(2)]
    finals = [await wait_for_terminal(client, r.json()["id"], alice.headers) for r in done]
    assert [f["status"] for f in finals] == ["succeeded", "succeeded"]
    failed = await _submit(client, alice, {**QUICK, "prompt": "a storm [fail]"}, project)
    assert (await wait_for_terminal(client, failed.json()["id"], alice.headers))["status"] == "failed"
    running_job = await _submit(client, alice, HANGING, project)
    assert (await _submit(client, alice, QUICK, other)).status_code == 202  # another project's spend stays out

    ids = {f["id"] for f in finals} | {failed.json()["id"], running_job.json()["id"]}
    entries = await running.ctx.db.read(lambda tx: ledger_queries.entries_of(tx, alice.id, limit=1000))
    per_kind: dict[str, int] = {}
    for entry in entries:
        if entry.generation_id in ids:
            per_kind[entry.kind] = per_kind.get(entry.kind, 0) + entry.amount
    spend = await _spend(client, alice, project)
    assert spend["credits_captured"] == per_kind["capture"] == 2 * PRICE
    assert spend["credits_held"] == per_kind["hold"] - per_kind["capture"] - per_kind["release"] == PRICE
    assert spend["credits_remaining"] == 100 - 3 * PRICE
    assert spend["generations"]["succeeded"] == 2 and spend["generations"]["failed"] == 1
    assert sum(spend["generations"].values()) == 4

    # Provider cost and margin: the revenue report's own computation, over the same captures.
    summary = await analytics.summary(running.ctx, days=1)
    mine = [job for job in summary.jobs if job.generation_id in ids]
    assert spend["revenue_micros"] == sum(job.revenue_micros for job in mine) > 0
    assert spend["provider_cost_micros"] == sum(job.provider_cost_micros for job in mine)
    assert spend["margin_micros"] == sum(job.margin_micros for job in mine)
    assert (await generation_row(running.ctx, running_job.json()["id"])).project_id == project


async def test_provider_cost_and_margin_are_for_operators_only(running: Running, alice: Account) -> None:
    client = running.client
    project = await _campaign(client, alice, 10)
    spend = await _spend(client, alice, project)
    assert spend["credits_captured"] == 0 and spend["credits_remaining"] == 10
    assert spend["revenue_micros"] is None and spend["provider_cost_micros"] is None and spend["margin_micros"] is None


async def test_a_move_carries_its_spend_and_is_never_refused_by_a_budget(running: Running, alice: Account) -> None:
    client = running.client
    loose = await _campaign(client, alice, None)
    made = await _submit(client, alice, QUICK, loose)
    video = await wait_for_terminal(client, made.json()["id"], alice.headers)
    assert video["status"] == "succeeded"
    project = await _campaign(client, alice, PRICE + 1)
    assert (await _submit(client, alice, HANGING, project)).status_code == 202

    # The move takes the project past its budget: allowed (a budget caps new spending, not past spending).
    moved = await client.post(
        "/api/v1/generations/move", headers=alice.headers, json={"ids": [video["id"]], "project_id": project}
    )
    assert moved.status_code == 200 and moved.json()["succeeded"] == [video["id"]], moved.text
    spend = await _spend(client, alice, project)
    assert (spend["credits_captured"], spend["credits_held"], spend["credits_remaining"]) == (PRICE, PRICE, 0)
    assert (await _spend(client, alice, loose))["credits_captured"] == 0
    details = _error(await _submit(client, alice, {**HANGING, "duration": 1}, project), 402, "budget_exceeded")
    assert (details["spent"], details["held"]) == (PRICE, PRICE)
