"""Webhook URLs go through the SSRF guard: private addresses are refused at registration and before sending."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.client_webhooks.conftest import Receiver, pump
from tests.client_webhooks.test_delivery import add_endpoint, canceled_generation
from tests.conftest import Account, Running


async def test_private_urls_are_refused_at_registration(running: Running, alice: Account) -> None:
    for url in (
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/hook",
        "http://localhost/hook",
        "ftp://x.io/",
    ):
        response = await running.client.post("/api/v1/webhook-endpoints", headers=alice.headers, json={"url": url})
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["details"]["field"] == "url"
    refused = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "a red fox in the snow", "callback_url": "http://10.0.0.1/cb"},
    )
    assert refused.status_code == 422


async def test_a_loopback_endpoint_is_never_called_without_the_allow_list(
    running: Running, alice: Account, receiver: Receiver
) -> None:
    endpoint = await add_endpoint(running, alice, receiver, "/private")
    # The operator removes loopback from the allow-list: the guard now runs before every connection.
    running.ctx.config = replace(running.ctx.config, fetch_allow_hosts=frozenset())
    refused = await running.client.post(
        "/api/v1/webhook-endpoints", headers=alice.headers, json={"url": f"{receiver.url}/other"}
    )
    assert refused.status_code == 422

    await canceled_generation(running, alice)

    async def failed() -> bool:
        log = await running.client.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=alice.headers)
        data = log.json()["data"]
        return bool(data) and data[0]["status"] == "failed"

    for _ in range(100):
        await pump(running.ctx, lambda: True)
        if await failed():
            break
        await asyncio.sleep(0.05)
    log = await running.client.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=alice.headers)
    delivery = log.json()["data"][0]
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert "SSRF guard" in delivery["last_error"] and delivery["last_status_code"] is None
    assert receiver.requests == []
