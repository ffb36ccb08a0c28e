"""Generating on an organization's wallet through the API, on both databases: the hold, the capture and the
release move the wallet (not the member's own credits), 402 in the contract's shape when it is short, and the
organization's owners and admins see its generations."""

from __future__ import annotations

import httpx

from reelgate.services import ledger
from tests.conftest import Account, Running, make_account
from tests.helpers import assert_ledger_ok, wait_for_terminal
from tests.organizations.conftest import Mailbox, create_org, fund, join


async def _generate(
    client: httpx.AsyncClient, account: Account, org_id: str | None, prompt: str = "a paper boat"
) -> httpx.Response:
    body = {"model": "sandbox-t2v", "prompt": prompt, "duration": 5}
    if org_id is not None:
        body["organization"] = org_id
    return await client.post("/api/v1/generations", json=body, headers=account.headers)


async def _wallet(running: Running, org_id: str) -> tuple[int, int, int]:
    credits = await ledger.credits_of(running.ctx, org_id)
    return credits.available, credits.held, credits.captured


async def test_hold_capture_and_release_hit_the_organizations_wallet(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client, ctx = running.client, running.ctx
    org_id = await create_org(client, alice)
    await join(running, mailbox, alice, org_id, bob, "member")
    await fund(running, org_id, 100)

    made = await _generate(client, bob, org_id)
    assert made.status_code == 202, made.text
    job = made.json()
    assert job["organization"] == org_id
    quote = job["credits_quoted"]
    assert quote > 0
    done = await wait_for_terminal(client, job["id"], bob.headers)
    assert done["status"] == "succeeded" and done["credits_charged"] == quote
    assert await _wallet(running, org_id) == (100 - quote, 0, quote)
    # The member's own credits never moved; the member still owns the generation.
    assert (await ledger.credits_of(ctx, bob.id)).available == 100
    assert (await client.get(f"/api/v1/generations/{job['id']}", headers=bob.headers)).status_code == 200

    failed = await _generate(client, bob, org_id, "a boat [fail]")
    assert failed.status_code == 202
    ended = await wait_for_terminal(client, failed.json()["id"], bob.headers)
    assert ended["status"] == "failed" and ended["credits_refunded"] == quote
    assert await _wallet(running, org_id) == (100 - quote, 0, quote)

    # Without the field, the member's own account pays.
    own = await _generate(client, bob, None)
    assert own.status_code == 202 and own.json()["organization"] is None
    await wait_for_terminal(client, own.json()["id"], bob.headers)
    assert (await ledger.credits_of(ctx, bob.id)).available == 100 - quote
    assert await _wallet(running, org_id) == (100 - quote, 0, quote)
    await assert_ledger_ok(ctx)

    # Owners and admins see the organization's generations; the wallet's view does not list own-paid ones.
    listed = await client.get(f"/api/v1/organizations/{org_id}/generations", headers=alice.headers)
    assert listed.status_code == 200
    assert [g["id"] for g in listed.json()["data"]] == [failed.json()["id"], job["id"]]
    assert {g["user_id"] for g in listed.json()["data"]} == {bob.id}
    # A manager opens one of them by id, its video and thumbnail too; it stays its maker's to cancel or retry, and
    # what the member paid for themselves stays private.
    seen = await client.get(f"/api/v1/generations/{job['id']}", headers=alice.headers)
    assert seen.status_code == 200 and seen.json()["id"] == job["id"] and seen.json()["organization"] == org_id
    content = await client.get(f"/api/v1/generations/{job['id']}/content", headers=alice.headers)
    assert content.status_code == 200 and content.content
    assert (await client.post(f"/api/v1/generations/{job['id']}/retry", headers=alice.headers)).status_code == 404
    assert (await client.get(f"/api/v1/generations/{own.json()['id']}", headers=alice.headers)).status_code == 404


async def test_a_short_wallet_answers_402_and_outsiders_404(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client, ctx = running.client, running.ctx
    carol = await make_account(ctx, email="carol@example.com")
    org_id = await create_org(client, alice)
    await join(running, mailbox, alice, org_id, bob, "member")
    await fund(running, org_id, 1)

    short = await _generate(client, bob, org_id)
    assert short.status_code == 402, short.text
    error = short.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert error["details"]["available"] == 1 and error["details"]["required"] > 1
    # Nothing held anywhere, and bob's own 100 credits were not used instead.
    assert await _wallet(running, org_id) == (1, 0, 0)
    assert (await ledger.credits_of(ctx, bob.id)).available == 100

    # Another organization's id, or one that does not exist: 404, nothing held.
    for outsider, org in ((carol, org_id), (bob, "org_doesnotexist")):
        refused = await _generate(client, outsider, org)
        assert refused.status_code == 404, refused.text
    assert (await client.get(f"/api/v1/organizations/{org_id}/generations", headers=carol.headers)).status_code == 404
    assert (await ledger.credits_of(ctx, carol.id)).available == 100
    await assert_ledger_ok(ctx)
