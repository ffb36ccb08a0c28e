"""Signed client webhooks: exactly once per endpoint after failures and retries, a delivery log, redelivery."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.client_webhooks.conftest import Receiver, pump
from tests.conftest import Account, Running
from tests.helpers import wait_for_terminal

HANG = "a red fox that never finishes [hang]"


async def add_endpoint(
    running: Running, account: Account, receiver: Receiver, path: str, **extra: Any
) -> dict[str, Any]:
    response = await running.client.post(
        "/api/v1/webhook-endpoints", headers=account.headers, json={"url": f"{receiver.url}{path}", **extra}
    )
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    assert endpoint["secret"].startswith("whsec_")
    receiver.secrets[path] = [endpoint["secret"]]
    return endpoint


async def canceled_generation(running: Running, account: Account, **extra: Any) -> str:
    body = {"model": "sandbox-t2v", "prompt": HANG, "duration": 1, **extra}
    created = await running.client.post("/api/v1/generations", headers=account.headers, json=body)
    assert created.status_code == 202, created.text
    generation_id: str = created.json()["id"]
    canceled = await running.client.post(f"/api/v1/generations/{generation_id}/cancel", headers=account.headers)
    assert canceled.json()["status"] == "canceled"
    return generation_id


async def test_each_event_exactly_once_per_endpoint_after_failures(
    running: Running, alice: Account, receiver: Receiver
) -> None:
    flaky = await add_endpoint(running, alice, receiver, "/flaky")
    await add_endpoint(running, alice, receiver, "/slow")
    receiver.fail("/flaky", "500", "500")
    receiver.fail("/slow", "stall")
    callback_secret = (await running.client.get("/api/v1/callback-secret", headers=alice.headers)).json()["secret"]
    receiver.secrets["/callback"] = [callback_secret]

    first = await canceled_generation(running, alice, callback_url=f"{receiver.url}/callback")
    second = await canceled_generation(running, alice)

    def complete() -> bool:
        return (
            len(receiver.accepted_on("/flaky")) == 2
            and len(receiver.accepted_on("/slow")) == 2
            and len(receiver.accepted_on("/callback")) == 1
        )

    await pump(running.ctx, complete)
    await asyncio.sleep(0.5)  # nothing more may arrive: a late duplicate would show here
    await pump(running.ctx, lambda: True)
    assert receiver.rejected == []
    for path in ("/flaky", "/slow", "/callback"):
        assert all(count == 1 for count in receiver.accepted_on(path).values()), receiver.accepted

    by_generation = {p["data"]["id"]: p for (path, _), p in receiver.payloads.items() if path == "/flaky"}
    assert set(by_generation) == {first, second}
    payload = by_generation[first]
    assert payload["type"] == "generation.canceled"
    assert payload["data"]["status"] == "canceled" and payload["data"]["credits_refunded"] == 2
    # The same webhook-id on every try of one delivery: the failures and the success share it.
    flaky_ids = [r.headers["webhook-id"] for r in receiver.requests if r.path == "/flaky"]
    assert len(flaky_ids) == 4 and len(set(flaky_ids)) == 2

    log = await running.client.get(f"/api/v1/webhook-endpoints/{flaky['id']}/deliveries", headers=alice.headers)
    deliveries = log.json()["data"]
    assert sorted(d["event"]["generation_id"] for d in deliveries) == sorted([first, second])
    assert all(d["status"] == "succeeded" for d in deliveries)
    codes = sorted([a["status_code"] for a in d["attempt_log"]] for d in deliveries)
    assert codes in ([[204], [500, 500, 204]], [[500, 204], [500, 204]])
    slow_log = (await running.client.get("/api/v1/webhook-deliveries", headers=alice.headers)).json()["data"]
    assert any(a["error"] and "no answer" in a["error"] for d in slow_log for a in d["attempt_log"])
    callbacks = await running.client.get(
        "/api/v1/webhook-deliveries", headers=alice.headers, params={"callbacks_only": "true"}
    )
    assert [d["event"]["generation_id"] for d in callbacks.json()["data"]] == [first]


async def test_manual_redelivery_resends_the_same_message(running: Running, alice: Account, receiver: Receiver) -> None:
    endpoint = await add_endpoint(running, alice, receiver, "/hook")
    await canceled_generation(running, alice)
    await pump(running.ctx, lambda: len(receiver.accepted_on("/hook")) == 1)
    log = await running.client.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=alice.headers)
    delivery = log.json()["data"][0]
    redone = await running.client.post(f"/api/v1/webhook-deliveries/{delivery['id']}/redeliver", headers=alice.headers)
    assert redone.status_code == 202 and redone.json()["status"] == "pending"
    await pump(running.ctx, lambda: receiver.accepted_on("/hook").get(delivery["id"]) == 2)
    after = (await running.client.get(f"/api/v1/webhook-deliveries/{delivery['id']}", headers=alice.headers)).json()
    assert after["status"] == "succeeded" and after["attempts"] == 2


async def test_endpoints_are_scoped_rotated_and_deleted(
    running: Running, alice: Account, bob: Account, receiver: Receiver
) -> None:
    endpoint = await add_endpoint(running, alice, receiver, "/rotating", events=["generation.canceled"])
    for method, path in [
        ("GET", f"/api/v1/webhook-endpoints/{endpoint['id']}"),
        ("DELETE", f"/api/v1/webhook-endpoints/{endpoint['id']}"),
        ("POST", f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret"),
        ("GET", f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries"),
    ]:
        assert (await running.client.request(method, path, headers=bob.headers)).status_code == 404
    assert (await running.client.get("/api/v1/webhook-endpoints", headers=bob.headers)).json()["data"] == []
    listed = (await running.client.get("/api/v1/webhook-endpoints", headers=alice.headers)).json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]

    rotated = await running.client.post(
        f"/api/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=alice.headers
    )
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]
    # A receiver still on the old secret and one already on the new both verify during the grace period.
    for secrets in ([endpoint["secret"]], [new_secret]):
        receiver.secrets["/rotating"] = secrets
        receiver.accepted.clear()
        await canceled_generation(running, alice)
        await pump(running.ctx, lambda: len(receiver.accepted_on("/rotating")) == 1)
    assert receiver.rejected == []

    assert (
        await running.client.delete(f"/api/v1/webhook-endpoints/{endpoint['id']}", headers=alice.headers)
    ).status_code == 204
    before = len(receiver.requests)
    await canceled_generation(running, alice)
    await pump(running.ctx, lambda: True)
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == before


async def test_the_worker_delivers_success_and_failure_events(
    running: Running, alice: Account, receiver: Receiver
) -> None:
    await add_endpoint(running, alice, receiver, "/all")
    ok = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "a red fox in the snow", "duration": 1},
    )
    bad = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "a fox that fails [fail]", "duration": 1},
    )
    for created in (ok, bad):
        await wait_for_terminal(running.client, created.json()["id"], alice.headers)
    for _ in range(200):  # the embedded worker's periodic job sends them; no pumping here
        if len(receiver.accepted_on("/all")) == 2:
            break
        await asyncio.sleep(0.05)
    types = {p["data"]["id"]: p["type"] for p in receiver.payloads.values()}
    assert types == {ok.json()["id"]: "generation.succeeded", bad.json()["id"]: "generation.failed"}
    succeeded = next(p for p in receiver.payloads.values() if p["type"] == "generation.succeeded")
    assert succeeded["data"]["video_url"].endswith(f"/api/v1/generations/{ok.json()['id']}/content")
