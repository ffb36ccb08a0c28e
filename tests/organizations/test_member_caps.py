"""Member spend caps on an organization's wallet: 20 concurrent submits never pass a member's daily cap (both
databases), a monthly cap refuses with its figures, and owners and admins see each member's spend."""

from __future__ import annotations

import asyncio

from reelgate.services import ledger
from tests.conftest import Account, Running
from tests.helpers import assert_ledger_ok
from tests.organizations.conftest import Mailbox, create_org, fund, join

PRICE = 4  # sandbox-t2v, 2 s at 720p


async def test_a_members_cap_holds_under_concurrent_submits(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client, ctx = running.client, running.ctx
    org_id = await create_org(client, alice)
    await join(running, mailbox, alice, org_id, bob, "member")
    await fund(running, org_id, 1000)
    caps = f"/api/v1/organizations/{org_id}/members/{bob.id}/caps"
    assert (await client.put(caps, json={"daily_cap": 3 * PRICE}, headers=bob.headers)).status_code == 403
    assert (await client.put(caps, json={"daily_cap": 3 * PRICE}, headers=alice.headers)).status_code == 200

    body = {"model": "sandbox-t2v", "prompt": "[hang] racing for the cap", "duration": 2, "organization": org_id}
    responses = await asyncio.gather(
        *(client.post("/api/v1/generations", json=body, headers=bob.headers) for _ in range(20))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == 3 and codes.count(402) == 17, codes
    for refused in (r for r in responses if r.status_code == 402):
        error = refused.json()["error"]
        assert error["code"] == "spend_cap_reached"
        assert error["details"] == {"scope": "member_day", "cap": 12, "spent": 12, "required": PRICE}
    wallet = await ledger.credits_of(ctx, org_id)
    assert (wallet.available, wallet.held) == (1000 - 3 * PRICE, 3 * PRICE)

    spend = await client.get(f"/api/v1/organizations/{org_id}/spend", headers=alice.headers)
    rows = {row["email"]: row for row in spend.json()["data"]}
    assert rows[bob.email]["spent_today"] == 12 and rows[bob.email]["daily_cap"] == 12
    assert rows[alice.email]["spent_today"] == 0 and rows[alice.email]["daily_cap"] is None
    assert (await client.get(f"/api/v1/organizations/{org_id}/spend", headers=bob.headers)).status_code == 403

    # Canceled jobs spent nothing; a monthly cap refuses the same way, with its own figures.
    for accepted in (r for r in responses if r.status_code == 202):
        await client.post(f"/api/v1/generations/{accepted.json()['id']}/cancel", headers=bob.headers)
    assert (await client.put(caps, json={"monthly_cap": 2 * PRICE}, headers=alice.headers)).status_code == 200
    for _ in range(2):
        assert (await client.post("/api/v1/generations", json=body, headers=bob.headers)).status_code == 202
    over = await client.post("/api/v1/generations", json=body, headers=bob.headers)
    assert over.status_code == 402
    assert over.json()["error"]["details"] == {"scope": "member_month", "cap": 8, "spent": 8, "required": PRICE}
    # The cap is on the wallet only: bob's own credits still pay.
    own = await client.post("/api/v1/generations", json={**body, "organization": None}, headers=bob.headers)
    assert own.status_code == 202
    await assert_ledger_ok(ctx)
