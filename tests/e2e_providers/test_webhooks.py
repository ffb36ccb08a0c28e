"""Webhooks that are duplicated, reordered, stale or forged change nothing they should not."""

from __future__ import annotations

import json
import time

import pytest

from reelgate.db.sql import query
from tests.e2e_providers.conftest import Harness, Start, wire_body, with_query
from tests.helpers import generation_row

_SUCCEEDED_EVENTS = query(
    "SELECT count(*) FROM generation_events WHERE generation_id = :id AND to_status = 'succeeded'"
)


async def _succeeded_events(h: Harness, generation_id: str) -> int:
    return int(await h.ctx.db.read(lambda tx: tx.scalar(_SUCCEEDED_EVENTS, {"id": generation_id})))


async def test_duplicate_webhooks_settle_once(e2e: Start) -> None:
    h = await e2e()
    before = await h.credits()
    h.sim.webhooks.controls.duplicate = 2  # every delivery arrives three times, as a vendor retry would
    generation_id = await h.create()
    job = await h.started(generation_id)
    h.sim.complete(job.id)
    final = await h.final(generation_id)
    await h.webhooks_idle()

    assert final["status"] == "succeeded" and final["credits_charged"] == h.price
    completions = [d for d in h.sim.webhooks.deliveries if d.body == h.sim.webhooks.deliveries[-1].body]
    assert len(completions) == 3 and {d.status for d in completions} == {200}
    assert await _succeeded_events(h, generation_id) == 1
    assert len(h.sim.requests_to("output")) <= 1  # fetched once (RunPod's video is inline)
    assert await h.credits() == {"available": before["available"] - h.price, "held": 0}
    await h.check_ledger()


async def test_reordered_and_stale_webhooks_change_nothing(e2e: Start) -> None:
    """A "running" update delivered after the completion, and a failure after success, are ignored."""
    h = await e2e()
    generation_id = await h.create()
    job = await h.started(generation_id)
    url = job.webhook_url or ""
    h.sim.run(job.id, progress=50)
    running = wire_body(h.sim, job)

    h.sim.webhooks.controls.hold = True
    h.sim.webhooks.send(url, "progress", running)
    h.sim.complete(job.id)
    h.sim.webhooks.release(reverse=True)  # the completion lands first, the progress report after it
    final = await h.final(generation_id)
    await h.webhooks_idle()
    assert final["status"] == "succeeded" and final["progress"] == 100, final
    assert {d.status for d in h.sim.webhooks.deliveries} == {200}

    # A genuine-looking failure for the same job, long after it succeeded.
    with h.sim.lock:
        job.state, job.error = "failed", "late failure"
    late = wire_body(h.sim, job)
    response = await h.post_webhook(url, late, h.sim.webhooks.build(late))
    assert response.status_code == 200 and response.json()["result"] in ("ignored", "applied")
    again = await h.get(generation_id)
    assert again["status"] == "succeeded" and again["credits_charged"] == h.price and again["error"] is None
    assert await _succeeded_events(h, generation_id) == 1
    await h.check_ledger()


FORGERIES = ["wrong_token", "no_token", "other_generation", "other_account", "bad_signature", "stale_timestamp"]


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_webhooks_are_refused_and_change_nothing(e2e: Start, forgery: str) -> None:
    h = await e2e()
    if h.provider == "runpod" and forgery in ("bad_signature", "stale_timestamp"):
        # RunPod signs nothing (docs/providers/runpod.md#webhooks).
        pytest.skip("RunPod signs nothing: its only proof is the token, tested by the other cases")
    before = await h.credits()
    generation_id = await h.create()
    other_id = await h.create()
    job = await h.started(generation_id)
    url = job.webhook_url or ""
    h.sim.webhooks.controls.hold = True
    h.sim.complete(job.id)  # the genuine completion waits until the forgery was refused
    body = wire_body(h.sim, job)

    headers = h.sim.webhooks.build(body)
    if forgery == "wrong_token":
        url = with_query(url, t="A" * 32)
    elif forgery == "no_token":
        url = with_query(url, t=None)
    elif forgery == "other_generation":
        url = with_query(url, g=other_id)  # a real token, but of another generation
    elif forgery == "other_account":
        url = with_query(url, a="0123456789abcdef")  # the token signs the account the job was sent with
    elif forgery == "bad_signature":
        headers = h.sim.webhooks.build(body, corrupt=True)
    else:
        headers = h.sim.webhooks.build(body, timestamp=int(time.time()) - 3600)
    response = await h.post_webhook(url, body, headers)

    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthorized" and set(error) == {"code", "message", "details"}
    for gid in (generation_id, other_id):
        unchanged = await h.get(gid)
        assert unchanged["status"] in ("queued", "submitting", "processing"), unchanged
        assert unchanged["progress"] < 100 and unchanged["credits_charged"] == 0
    assert await h.credits() == {"available": before["available"] - 2 * h.price, "held": 2 * h.price}

    h.sim.webhooks.release()
    final = await h.final(generation_id)
    assert final["status"] == "succeeded" and final["credits_charged"] == h.price
    await h.client.post(f"/api/v1/generations/{other_id}/cancel", headers=h.headers)
    await h.check_ledger()


async def test_webhook_for_an_unknown_generation_is_refused(e2e: Start) -> None:
    h = await e2e()
    body = json.dumps({"id": "job-1", "taskId": "job-1", "status": "succeeded"}).encode()
    url = f"{h.public_url}/webhooks/{h.provider}?g=gen_does_not_exist&t=whatever"
    response = await h.post_webhook(url, body, h.sim.webhooks.build(body))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


_SET_STORED_TOKEN = query("UPDATE generations SET webhook_token = :token WHERE id = :id")
_MOVE_ACCOUNT = query("UPDATE generations SET provider_account = :account WHERE id = :id")


async def test_an_address_handed_out_before_signing_still_works(e2e: Start) -> None:
    """Jobs sent before webhook addresses were signed carry the random token stored with them."""
    h = await e2e()
    generation_id = await h.create()
    job = await h.started(generation_id)
    assert (await generation_row(h.ctx, generation_id)).webhook_token is None  # a new job stores none
    await h.ctx.db.write(lambda tx: tx.run(_SET_STORED_TOKEN, {"token": "stored-token-0123", "id": generation_id}))
    h.sim.webhooks.controls.hold = True  # the simulator's own delivery (to the signed address) waits
    h.sim.complete(job.id)
    body = wire_body(h.sim, job)
    legacy = f"{h.public_url}/webhooks/{h.provider}?g={generation_id}&t=stored-token-0123"

    wrong = await h.post_webhook(with_query(legacy, t="stored-token-9999"), body, h.sim.webhooks.build(body))
    assert wrong.status_code == 401
    response = await h.post_webhook(legacy, body, h.sim.webhooks.build(body))
    assert response.status_code == 200 and response.json()["result"] == "applied", response.text
    h.sim.webhooks.release()
    final = await h.final(generation_id)
    assert final["status"] == "succeeded" and final["credits_charged"] == h.price
    await h.check_ledger()


async def test_a_job_moved_to_another_account_ignores_its_old_address(e2e: Start) -> None:
    """The token still checks, but the job now answers to another account: the update is not applied."""
    h = await e2e()
    generation_id = await h.create()
    job = await h.started(generation_id)
    moved = {"fingerprint": "fedcba9876543210", "base_url": h.sim.url}
    await h.ctx.db.write(lambda tx: tx.run(_MOVE_ACCOUNT, {"account": json.dumps(moved), "id": generation_id}))
    h.sim.webhooks.controls.hold = True
    h.sim.complete(job.id)
    body = wire_body(h.sim, job)

    response = await h.post_webhook(job.webhook_url or "", body, h.sim.webhooks.build(body))
    assert response.status_code == 200 and response.json()["result"] == "ignored", response.text
    row = await generation_row(h.ctx, generation_id)
    assert row.status == "processing" and row.credits_charged == 0
    await h.client.post(f"/api/v1/generations/{generation_id}/cancel", headers=h.headers)
    await h.check_ledger()
