"""Organizations run on both databases, with the real SMTP server of the mail tests in the test process."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Account
from tests.mail.conftest import Mailbox, fast_retries, mailbox, settings  # noqa: F401 - fixtures used here

__all__ = ["Mailbox", "create_org", "invitation_token"]


async def create_org(client: httpx.AsyncClient, owner: Account, name: str = "Acme Films") -> str:
    response = await client.post("/api/v1/organizations", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "owner"
    return str(response.json()["id"])


def invitation_token(text: str) -> str:
    found = re.search(r"http://testserver/organizations/join\?token=([A-Za-z0-9_\-]+)", text)
    assert found, text
    return found.group(1)
