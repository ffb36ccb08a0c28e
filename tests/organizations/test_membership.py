"""Organizations through the HTTP API: invitations by email (a real SMTP server), every refused token,
roles, the last owner, removal, and ids of another organization (404)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import httpx

from reelgate.db.queries import organizations as org_queries
from tests.conftest import Account, Running, make_account
from tests.mail.conftest import pump
from tests.organizations.conftest import Mailbox, create_org, invitation_token


async def _invite(
    running: Running, mailbox: Mailbox, inviter: Account, org_id: str, email: str, role: str = "member"
) -> str:
    """Invites `email` and returns the token from the email that arrives."""
    before = len(mailbox.to(email))
    response = await running.client.post(
        f"/api/v1/organizations/{org_id}/invitations", json={"email": email, "role": role}, headers=inviter.headers
    )
    assert response.status_code == 201, response.text
    await pump(running.ctx, lambda: len(mailbox.to(email)) > before)
    got = mailbox.to(email)[-1]
    assert got.message["X-Reelgate-Kind"] == "organization_invitation"
    assert got.message["Subject"] == "You are invited to join Acme Films"
    token = invitation_token(got.text)
    assert f"/organizations/join?token={token}" in got.html
    return token


async def _accept(client: httpx.AsyncClient, account: Account, token: str) -> httpx.Response:
    return await client.post("/api/v1/organizations/invitations/accept", json={"token": token}, headers=account.headers)


async def _members(client: httpx.AsyncClient, account: Account, org_id: str) -> dict[str, str]:
    response = await client.get(f"/api/v1/organizations/{org_id}/members", headers=account.headers)
    assert response.status_code == 200, response.text
    return {m["email"]: m["role"] for m in response.json()["data"]}


async def _set_role(client: httpx.AsyncClient, actor: Account, member_path: str, target: Account, role: str) -> int:
    response = await client.patch(f"{member_path}/{target.id}", json={"role": role}, headers=actor.headers)
    return response.status_code


async def test_invitation_joins_only_the_invited_account_once(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client = running.client
    carol = await make_account(running.ctx, email="carol@example.com")
    org_id = await create_org(client, alice)
    token = await _invite(running, mailbox, alice, org_id, bob.email, "admin")
    # Only the hash is stored.
    stored = await running.ctx.db.read(
        lambda tx: org_queries.invitation_by_hash(tx, hashlib.sha256(token.encode()).hexdigest())
    )
    assert stored is not None and stored.email == bob.email and stored.token_hash != token

    # Another address's account is refused, and nothing joined; the link still works for the invited account.
    refused = await _accept(client, carol, token)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert (await client.get(f"/api/v1/organizations/{org_id}", headers=carol.headers)).status_code == 404

    joined = await _accept(client, bob, token)
    assert joined.status_code == 200, joined.text
    assert joined.json() == {"organization_id": org_id, "role": "admin"}
    assert await _members(client, bob, org_id) == {alice.email: "owner", bob.email: "admin"}
    listed = await client.get("/api/v1/organizations", headers=bob.headers)
    assert [(o["id"], o["role"]) for o in listed.json()["data"]] == [(org_id, "admin")]

    # Used once: a second use is refused, even by the invited account.
    again = await _accept(client, bob, token)
    assert again.status_code == 404
    assert (await _accept(client, carol, token)).status_code == 404
    assert (await _accept(client, carol, "not-a-token")).status_code == 404
    assert set(await _members(client, alice, org_id)) == {alice.email, bob.email}


async def test_an_expired_invitation_joins_nobody(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client, ctx = running.client, running.ctx
    org_id = await create_org(client, alice)
    token = await _invite(running, mailbox, alice, org_id, bob.email)
    real_clock = ctx.clock
    ctx.clock = lambda: real_clock() + timedelta(days=7, seconds=1)
    try:
        assert (await _accept(client, bob, token)).status_code == 404
    finally:
        ctx.clock = real_clock
    assert await _members(client, alice, org_id) == {alice.email: "owner"}
    assert (await client.get(f"/api/v1/organizations/{org_id}", headers=bob.headers)).status_code == 404


async def test_roles_the_last_owner_and_removal(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client = running.client
    carol = await make_account(running.ctx, email="carol@example.com")
    org_id = await create_org(client, alice)
    assert (await _accept(client, bob, await _invite(running, mailbox, alice, org_id, bob.email))).status_code == 200
    assert (
        await _accept(client, carol, await _invite(running, mailbox, alice, org_id, carol.email))
    ).status_code == 200

    # A plain member can look but not manage.
    assert (await client.get(f"/api/v1/organizations/{org_id}", headers=bob.headers)).json()["role"] == "member"
    forbidden = await client.post(
        f"/api/v1/organizations/{org_id}/invitations", json={"email": "x@example.com"}, headers=bob.headers
    )
    assert forbidden.status_code == 403
    member_path = f"/api/v1/organizations/{org_id}/members"
    assert (await client.delete(f"{member_path}/{carol.id}", headers=bob.headers)).status_code == 403

    # The last owner can be neither demoted nor removed, nor leave.
    demote = await client.patch(f"{member_path}/{alice.id}", json={"role": "admin"}, headers=alice.headers)
    assert demote.status_code == 409
    assert (await client.delete(f"{member_path}/{alice.id}", headers=alice.headers)).status_code == 409

    # An admin manages members but cannot make an owner.
    promote = await client.patch(f"{member_path}/{bob.id}", json={"role": "admin"}, headers=alice.headers)
    assert promote.status_code == 200 and promote.json()["role"] == "admin"
    assert (
        await client.patch(f"{member_path}/{carol.id}", json={"role": "owner"}, headers=bob.headers)
    ).status_code == 403
    # With a second owner, the first may step down.
    assert (
        await client.patch(f"{member_path}/{carol.id}", json={"role": "owner"}, headers=alice.headers)
    ).status_code == 200
    assert (
        await client.patch(f"{member_path}/{alice.id}", json={"role": "member"}, headers=alice.headers)
    ).status_code == 200
    assert await _members(client, carol, org_id) == {alice.email: "member", bob.email: "admin", carol.email: "owner"}

    # Removed: from the next request on, the organization is not found for bob.
    assert (await client.delete(f"{member_path}/{bob.id}", headers=carol.headers)).status_code == 204
    for path in (f"/api/v1/organizations/{org_id}", member_path):
        assert (await client.get(path, headers=bob.headers)).status_code == 404
    assert (await client.get("/api/v1/organizations", headers=bob.headers)).json()["data"] == []
    # A member may leave.
    assert (await client.delete(f"{member_path}/{alice.id}", headers=alice.headers)).status_code == 204
    assert await _members(client, carol, org_id) == {carol.email: "owner"}


async def test_another_organizations_ids_are_not_found(
    running: Running, alice: Account, bob: Account, mailbox: Mailbox
) -> None:
    client = running.client
    mine = await create_org(client, alice)
    theirs = await create_org(client, bob, "Other Co")
    base = f"/api/v1/organizations/{theirs}"
    answers = [
        await client.get(base, headers=alice.headers),
        await client.get(f"{base}/members", headers=alice.headers),
        await client.get(f"{base}/invitations", headers=alice.headers),
        await client.post(f"{base}/invitations", json={"email": "x@example.com"}, headers=alice.headers),
        await client.patch(f"{base}/members/{bob.id}", json={"role": "member"}, headers=alice.headers),
        await client.delete(f"{base}/members/{bob.id}", headers=alice.headers),
        # A member of one organization acting on another organization's member through their own.
        await client.delete(f"/api/v1/organizations/{mine}/members/{bob.id}", headers=alice.headers),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert await _members(client, bob, theirs) == {bob.email: "owner"}
