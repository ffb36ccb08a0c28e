"""The studio's webhooks page: an endpoint is created (secret shown once), deliveries are listed after a
generation ends, redelivery queues one more attempt, and another user sees none of it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelgate.settings import Settings
from tests.conftest import Running, make_settings, start_app
from tests.helpers import wait_for_terminal
from tests.web.test_pages import sign_up


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The endpoint is a closed loopback port, allow-listed for this test: deliveries are attempted and fail.
    return make_settings(tmp_path / "data", None, signup_credits=50, fetch_allow_hosts="127.0.0.1:9")


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async for value in start_app(settings):
        yield value


async def test_endpoints_and_delivery_log(running: Running) -> None:
    client = running.client
    csrf = await sign_up(client, "hooks@example.com")
    made = await client.post("/settings/webhooks", data={"url": "http://127.0.0.1:9/events", "csrf_token": csrf})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    secret = re.search(r'data-testid="new-webhook-secret"', made.text)
    assert secret and "whsec_" in made.text
    page = await client.get("/settings/webhooks")
    assert "http://127.0.0.1:9/events" in page.text and "whsec_" not in page.text

    created = await client.post(
        "/api/v1/generations",
        headers={"X-CSRF-Token": csrf},
        json={"model": "sandbox-t2v", "prompt": "a fox that rings a bell", "duration": 1},
    )
    assert created.status_code == 202, created.text
    await wait_for_terminal(client, created.json()["id"], {})
    page = await client.get("/settings/webhooks")
    assert "generation.succeeded" in page.text and created.json()["id"] in page.text
    delivery_id = re.search(r"/settings/webhooks/deliveries/([^/]+)/redeliver", page.text)
    assert delivery_id
    redone = await client.post(
        f"/settings/webhooks/deliveries/{delivery_id.group(1)}/redeliver", data={"csrf_token": csrf}
    )
    assert redone.status_code == 303

    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as other:
        other_csrf = await sign_up(other, "other-hooks@example.com")
        theirs = await other.get("/settings/webhooks")
        assert "127.0.0.1:9" not in theirs.text and created.json()["id"] not in theirs.text
        stolen = await other.post(
            f"/settings/webhooks/deliveries/{delivery_id.group(1)}/redeliver", data={"csrf_token": other_csrf}
        )
        assert stolen.status_code == 303
        after = await other.get(stolen.headers["location"])
        assert "Webhook delivery not found" in after.text
    forged = await client.post("/settings/webhooks", data={"url": "http://127.0.0.1:9/x", "csrf_token": "nope"})
    assert forged.status_code in (400, 403)
