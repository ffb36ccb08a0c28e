"""A user who can afford exactly k jobs fires many simultaneous submits: exactly k are accepted."""

from __future__ import annotations

import asyncio

from tests.conftest import Running, make_account
from tests.helpers import assert_ledger_ok, credits

PRICE = 4  # sandbox-t2v, 2 s at 720p


async def test_exactly_k_of_many_concurrent_submits_are_accepted(running: Running) -> None:
    k, attempts = 7, 36
    user = await make_account(running.ctx, credits=PRICE * k)
    body = {"model": "sandbox-t2v", "prompt": "[hang] racing for the last credit", "duration": 2}
    estimate = await running.client.post("/api/v1/estimate", json=body | {"prompt": None})
    assert estimate.json()["total"] == PRICE

    responses = await asyncio.gather(
        *(running.client.post("/api/v1/generations", headers=user.headers, json=body) for _ in range(attempts))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == k and codes.count(402) == attempts - k, codes
    for refused in (r for r in responses if r.status_code == 402):
        assert refused.json()["error"]["code"] == "insufficient_credits"
    assert await credits(running.client, user.headers) == {"available": 0, "held": PRICE * k}
    await assert_ledger_ok(running.ctx)
    for accepted in (r for r in responses if r.status_code == 202):
        await running.client.post(f"/api/v1/generations/{accepted.json()['id']}/cancel", headers=user.headers)
    assert await credits(running.client, user.headers) == {"available": PRICE * k, "held": 0}
    await assert_ledger_ok(running.ctx)
