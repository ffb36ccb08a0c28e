"""Organizations run on both databases, with the real SMTP server of the mail tests in the test process."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Account, Running, make_account
from tests.helpers import make_admin
from tests.mail.conftest import Mailbox, fast_retries, mailbox, pump, settings  # noqa: F401 - fixtures used here

__all__ = ["Mailbox", "create_org", "fund", "invitation_token", "join"]


async def create_org(client: httpx.AsyncClient, owner: Account, name: str = "Acme Films") -> str:
    response = await client.post("/api/v1/organizations", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "owner"
    return str(response.json()["id"])


def invitation_token(text: str) -> str:
    found = re.search(r"http://testserver/organizations/join\?token=([A-Za-z0-9_\-]+)", text)
    assert found, text
    return found.group(1)


async def join(running: Running, box: Mailbox, owner: Account, org_id: str, member: Account, role: str) -> None:
    """Invites `member` through the API and accepts the link from the email, as a person would."""
    before = len(box.to(member.email))
    invited = await running.client.post(
        f"/api/v1/organizations/{org_id}/invitations", json={"email": member.email, "role": role}, headers=owner.headers
    )
    assert invited.status_code == 201, invited.text
    await pump(running.ctx, lambda: len(box.to(member.email)) > before)
    token = invitation_token(box.to(member.email)[-1].text)
    accepted = await running.client.post(
        "/api/v1/organizations/invitations/accept", json={"token": token}, headers=member.headers
    )
    assert accepted.status_code == 200, accepted.text


async def fund(running: Running, org_id: str, amount: int) -> None:
    """An administrator's grant to the organization's wallet, through the admin API."""
    operator = await make_account(running.ctx, credits=0)
    await make_admin(running.ctx, operator.id)
    grant = {"organization_id": org_id, "amount": amount, "reason": "team credits", "kind": "grant"}
    answer = await running.client.post("/api/v1/admin/credits", json=grant, headers=operator.headers)
    assert answer.status_code == 200, answer.text
