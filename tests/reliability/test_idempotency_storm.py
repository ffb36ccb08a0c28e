"""Scenario 2, idempotency storm: one key fired 50× at once and 50× in sequence makes one generation and one hold;
replays get the first response; a different body is refused; keys are scoped per user."""

from __future__ import annotations

import asyncio

from tests.conftest import Running, make_account
from tests.helpers import assert_ledger_ok, credits

BODY = {"model": "sandbox-t2v", "prompt": "[hang] exactly one of these, please", "duration": 2}


async def test_same_key_concurrently_and_in_sequence(running: Running) -> None:
    user = await make_account(running.ctx, credits=100)
    headers = {**user.headers, "Idempotency-Key": "storm-1"}
    burst = await asyncio.gather(
        *(running.client.post("/api/v1/generations", headers=headers, json=BODY) for _ in range(50))
    )
    assert {r.status_code for r in burst} == {202}, {r.status_code: r.text for r in burst}
    ids = {r.json()["id"] for r in burst}
    assert len(ids) == 1
    for _ in range(50):
        again = await running.client.post("/api/v1/generations", headers=headers, json=BODY)
        assert again.status_code == 202 and again.json()["id"] in ids
        assert again.headers.get("idempotent-replayed") == "true"
    price = burst[0].json()["credits_quoted"]
    assert await credits(running.client, user.headers) == {"available": 100 - price, "held": price}
    listed = (await running.client.get("/api/v1/generations", headers=user.headers)).json()["data"]
    assert [g["id"] for g in listed] == list(ids)

    changed = await running.client.post("/api/v1/generations", headers=headers, json={**BODY, "duration": 3})
    assert changed.status_code == 422 and changed.json()["error"]["code"] == "idempotency_key_reused"

    other = await make_account(running.ctx, credits=100)
    theirs = await running.client.post(
        "/api/v1/generations", headers={**other.headers, "Idempotency-Key": "storm-1"}, json=BODY
    )
    assert theirs.status_code == 202 and theirs.json()["id"] not in ids
    for gid in [*ids, theirs.json()["id"]]:
        owner = user if gid in ids else other
        await running.client.post(f"/api/v1/generations/{gid}/cancel", headers=owner.headers)
    await assert_ledger_ok(running.ctx)
