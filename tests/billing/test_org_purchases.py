"""Purchases for an organization's wallet through the Stripe simulator: only its owners and admins buy for it,
the credits go to the wallet (never the buyer's own account) exactly once, and refunds take them back from the
wallet."""

from __future__ import annotations

from typing import Any

from reelgate.db.codec import utc_now
from reelgate.db.queries import organizations as org_queries
from reelgate.db.records import OrganizationMember
from tests.billing.conftest import Shop
from tests.conftest import Account
from tests.web.test_pages import sign_up


async def _organization(shop: Shop, owner: Account, **members: Account) -> str:
    created = await shop.client.post("/api/v1/organizations", json={"name": "Acme Films"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    org_id = str(created.json()["id"])
    # Members join by invitation elsewhere (tests/organizations); here they are seated directly.
    for role, member in members.items():
        row = OrganizationMember(organization_id=org_id, user_id=member.id, role=role, created_at=utc_now())
        await shop.ctx.db.write(lambda tx, row=row: org_queries.add_member(tx, row))
    return org_id


async def _wallet(shop: Shop, org_id: str, reader: Account) -> dict[str, int]:
    answer = await shop.client.get(f"/api/v1/organizations/{org_id}", headers=reader.headers)
    assert answer.status_code == 200, answer.text
    credits: dict[str, int] = answer.json()["credits"]
    return credits


async def _buy(shop: Shop, buyer: Account, org_id: str, package: str = "starter") -> Any:
    return await shop.client.post(
        "/api/v1/credits/checkout", json={"package": package, "organization": org_id}, headers=buyer.headers
    )


async def test_an_admin_buys_credits_for_the_wallet_granted_once(shop: Shop) -> None:
    owner, admin = await shop.account(credits=0), await shop.account(credits=0)
    org_id = await _organization(shop, owner, admin=admin)
    started = await _buy(shop, admin, org_id)
    assert started.status_code == 200, started.text
    session_id = started.json()["id"]
    sent = shop.sim.sessions[session_id]
    assert sent["metadata"]["user_id"] == admin.id and sent["metadata"]["account_id"] == org_id

    shop.sim.webhooks.controls.duplicate = 2
    shop.sim.complete(session_id)
    await shop.deliveries_done()
    assert await _wallet(shop, org_id, owner) == {"available": 1000, "held": 0}
    assert await shop.balance(admin) == {"available": 0, "held": 0}  # the buyer's own account is apart

    listed = await shop.client.get(f"/api/v1/organizations/{org_id}/payments", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    [payment] = listed.json()["data"]
    assert (payment["user_id"], payment["account_id"], payment["status"]) == (admin.id, org_id, "paid")
    await shop.check()


async def test_a_refund_takes_the_credits_back_from_the_wallet(shop: Shop) -> None:
    owner = await shop.account(credits=0)
    org_id = await _organization(shop, owner)
    started = await _buy(shop, owner, org_id, "tiny")  # 50 credits
    session_id = started.json()["id"]
    shop.sim.complete(session_id)
    await shop.deliveries_done()
    assert await _wallet(shop, org_id, owner) == {"available": 50, "held": 0}

    shop.sim.refund(session_id)
    await shop.deliveries_done()
    assert await _wallet(shop, org_id, owner) == {"available": 0, "held": 0}
    listed = await shop.client.get(f"/api/v1/organizations/{org_id}/payments", headers=owner.headers)
    assert listed.json()["data"][0]["credits_reversed"] == 50
    await shop.check()


async def test_members_and_outsiders_cannot_buy_for_or_list_the_wallet(shop: Shop) -> None:
    owner, member, outsider = [await shop.account(credits=0) for _ in range(3)]
    org_id = await _organization(shop, owner, member=member)

    refused = await _buy(shop, member, org_id)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "forbidden"
    unknown = await _buy(shop, outsider, org_id)
    assert unknown.status_code == 404, unknown.text
    assert (await _buy(shop, owner, "org_doesnotexist")).status_code == 404
    assert shop.sim.sessions == {}  # no checkout was opened for any of them

    for reader, status in ((member, 403), (outsider, 404)):
        answer = await shop.client.get(f"/api/v1/organizations/{org_id}/payments", headers=reader.headers)
        assert answer.status_code == status, answer.text
    await shop.check()


async def test_the_studio_buys_for_an_organization_its_user_manages(shop: Shop) -> None:
    csrf = await sign_up(shop.client, "studio-buyer@example.com")
    made = await shop.client.post("/organizations", data={"name": "Studio Team", "csrf_token": csrf})
    assert made.status_code == 303, made.text
    org_id = made.headers["location"].split("/organizations/")[1].split("?")[0]

    teams = await shop.client.get("/organizations")
    assert f'<a href="/organizations/{org_id}">Studio Team</a>' in teams.text
    assert '<span class="badge">owner</span> <span class="muted">0 credits</span>' in teams.text

    page = await shop.client.get("/credits")
    assert f'<option value="{org_id}">Studio Team</option>' in page.text  # the wallets it may buy for
    bought = await shop.client.post(
        "/credits/checkout", data={"package_id": "tiny", "organization": org_id, "csrf_token": csrf}
    )
    assert bought.status_code == 303 and bought.headers["location"].startswith(shop.sim.url), bought.text
    [sent] = shop.sim.sessions.values()
    assert sent["metadata"]["account_id"] == org_id
    shop.sim.complete(str(sent["id"]))
    await shop.deliveries_done()
    wallet = await shop.client.get(f"/organizations/{org_id}")
    assert 'data-testid="org-wallet">50<' in wallet.text and 'href="/credits">Buy credits</a>' in wallet.text

    # Someone else's organization id in the form: refused, and no checkout opened.
    stranger = await shop.account(credits=0)
    theirs = await _organization(shop, stranger)
    refused = await shop.client.post(
        "/credits/checkout", data={"package_id": "tiny", "organization": theirs, "csrf_token": csrf}
    )
    assert refused.status_code == 303 and refused.headers["location"].startswith("/credits"), refused.text
    assert len(shop.sim.sessions) == 1
    await shop.check()
