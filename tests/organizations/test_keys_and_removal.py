"""Organization API keys act as the organization (its wallet pays); revoking one stops it at once, and removing a
member takes away the wallet, the organization's keys they made and the sight of its generations, from the next
request on (both databases)."""

from __future__ import annotations

import httpx

from reelgate.services import ledger
from tests.conftest import Account, Running, make_account
from tests.helpers import assert_ledger_ok, wait_for_terminal
from tests.organizations.conftest import Mailbox, create_org, fund, join

JOB = {"model": "sandbox-t2v", "prompt": "a kite over the dunes", "duration": 5}


async def _org_key(client: httpx.AsyncClient, org_id: str, maker: Account) -> dict[str, str]:
    made = await client.post(f"/api/v1/organizations/{org_id}/api-keys", json={"name": "ci"}, headers=maker.headers)
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}", "_id": made.json()["id"]}


def _auth(key: dict[str, str]) -> dict[str, str]:
    return {"Authorization": key["Authorization"]}


async def test_organization_keys_pay_from_the_wallet_until_revoked(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client, ctx = running.client, running.ctx
    carol = await make_account(ctx, email="carol@example.com")
    org_id = await create_org(client, alice)
    other_org = await create_org(client, carol, "Other Co")
    await join(running, mailbox, alice, org_id, bob, "admin")
    await fund(running, org_id, 100)

    key = await _org_key(client, org_id, bob)
    made = await client.post("/api/v1/generations", json=JOB, headers=_auth(key))
    assert made.status_code == 202, made.text
    assert made.json()["organization"] == org_id
    quote = made.json()["credits_quoted"]
    await wait_for_terminal(client, made.json()["id"], _auth(key))
    assert (await ledger.credits_of(ctx, org_id)).captured == quote
    assert (await ledger.credits_of(ctx, bob.id)).available == 100
    # The key sees the organization's generations, and pays from no other wallet.
    seen = await client.get(f"/api/v1/organizations/{org_id}/generations", headers=_auth(key))
    assert [g["id"] for g in seen.json()["data"]] == [made.json()["id"]]
    elsewhere = await client.post("/api/v1/generations", json={**JOB, "organization": other_org}, headers=_auth(key))
    assert elsewhere.status_code == 404

    listed = await client.get(f"/api/v1/organizations/{org_id}/api-keys", headers=alice.headers)
    assert [(k["id"], k["created_by"], k["revoked"]) for k in listed.json()["data"]] == [(key["_id"], bob.id, False)]
    revoked = await client.delete(f"/api/v1/organizations/{org_id}/api-keys/{key['_id']}", headers=alice.headers)
    assert revoked.status_code == 204
    assert (await client.post("/api/v1/generations", json=JOB, headers=_auth(key))).status_code == 401
    # Another organization's key id is not found; a plain member cannot make keys.
    assert (
        await client.delete(f"/api/v1/organizations/{other_org}/api-keys/{key['_id']}", headers=alice.headers)
    ).status_code == 404
    await join(running, mailbox, alice, org_id, carol, "member")
    refused = await client.post(f"/api/v1/organizations/{org_id}/api-keys", json={"name": "x"}, headers=carol.headers)
    assert refused.status_code == 403
    await assert_ledger_ok(ctx)


async def test_removal_revokes_the_wallet_the_keys_and_the_generations_at_once(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client, ctx = running.client, running.ctx
    carol = await make_account(ctx, email="carol@example.com")
    org_id = await create_org(client, alice)
    await join(running, mailbox, alice, org_id, bob, "admin")
    await join(running, mailbox, alice, org_id, carol, "member")
    await fund(running, org_id, 100)
    key = await _org_key(client, org_id, bob)
    on_wallet = await client.post("/api/v1/generations", json={**JOB, "organization": org_id}, headers=carol.headers)
    assert on_wallet.status_code == 202
    await wait_for_terminal(client, on_wallet.json()["id"], carol.headers)
    assert (await client.get(f"/api/v1/organizations/{org_id}", headers=carol.headers)).status_code == 200

    for member in (bob, carol):
        removed = await client.delete(f"/api/v1/organizations/{org_id}/members/{member.id}", headers=alice.headers)
        assert removed.status_code == 204

    # The very next requests: the wallet, the organization, its generations and the key are gone for them.
    again = await client.post("/api/v1/generations", json={**JOB, "organization": org_id}, headers=carol.headers)
    assert again.status_code == 404
    for path in ("", "/members", "/generations"):
        assert (await client.get(f"/api/v1/organizations/{org_id}{path}", headers=carol.headers)).status_code == 404
    assert (await client.post("/api/v1/generations", json=JOB, headers=_auth(key))).status_code == 401
    listed = await client.get(f"/api/v1/organizations/{org_id}/api-keys", headers=alice.headers)
    assert [k["revoked"] for k in listed.json()["data"]] == [True]
    # What carol made stays hers, and the wallet kept only what her job cost.
    assert (await client.get(f"/api/v1/generations/{on_wallet.json()['id']}", headers=carol.headers)).status_code == 200
    quote = on_wallet.json()["credits_quoted"]
    assert (await ledger.credits_of(ctx, org_id)).available == 100 - quote
    await assert_ledger_ok(ctx)
