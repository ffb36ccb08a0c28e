"""A paid generation through the HTTP API at each real provider: by webhook, and with every webhook lost."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from reelgate.db.sql import query
from tests.e2e_providers.conftest import Harness, Start
from tests.helpers import generation_row


async def _download(h: Harness, final: dict[str, object]) -> bytes:
    response = await h.client.get(str(final["video_url"]), headers=h.headers)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    return response.content


async def test_success_by_webhook(database_url: str, e2e: Start, video_bytes: bytes) -> None:
    h = await e2e(database_url=database_url)
    before = await h.credits()
    generation_id = await h.create()
    assert await h.credits() == {"available": before["available"] - h.price, "held": h.price}
    job = await h.started(generation_id)
    # The callback carries our generation id and an unguessable token: RunPod signs nothing
    # (docs/providers/runpod.md#webhooks).
    query = parse_qs(urlsplit(job.webhook_url or "").query)
    assert query["g"] == [generation_id] and len(query["t"][0]) >= 32

    h.sim.run(job.id, progress=40)
    h.sim.complete(job.id)
    final = await h.final(generation_id)

    assert final["status"] == "succeeded", final
    assert final["credits_charged"] == h.price and final["credits_refunded"] == 0
    assert final["output"]["width"] == 160 and final["output"]["height"] == 96
    assert final["thumbnail_url"]
    # Polling was 5 minutes away: the result came by webhook.
    assert h.sim.requests_to("status") == []
    await h.webhooks_idle()
    assert {d.status for d in h.sim.webhooks.deliveries} == {200}
    # Outputs are copied into our storage at once: the provider's copy going away changes nothing.
    h.sim.expire_outputs = 410
    assert await _download(h, final) == video_bytes
    assert await h.credits() == {"available": before["available"] - h.price, "held": 0}
    await h.check_ledger()


async def test_success_with_every_webhook_lost(database_url: str, e2e: Start, video_bytes: bytes) -> None:
    h = await e2e(polling=True, database_url=database_url)
    h.sim.webhooks.controls.drop = -1
    generation_id = await h.create()
    job = await h.started(generation_id)

    h.sim.run(job.id, progress=40)
    if h.provider != "pollo":  # Pollo reports no progress (docs/providers/pollo.md#progress)
        await h.wait_for(generation_id, lambda b: b["progress"] == 40)
    h.sim.complete(job.id)
    final = await h.final(generation_id)

    assert final["status"] == "succeeded", final
    assert final["credits_charged"] == h.price
    assert h.sim.webhooks.dropped and not h.sim.webhooks.deliveries
    assert h.sim.requests_to("status")
    assert await _download(h, final) == video_bytes
    await h.check_ledger()


_SET_LEASE = query("UPDATE generations SET lease_owner = :owner, lease_until = :until WHERE id = :id")


@pytest.mark.parametrize("provider_name", ["runpod"])
async def test_runpod_inline_base64_is_staged_in_the_object_store(e2e: Start) -> None:
    """The LTX-2 worker returns `{"video": base64}`: the row keeps a key under the object store's staging
    prefix (any worker on any host can read it), never the base64 nor a local path."""
    h = await e2e()
    h.sim.webhooks.controls.hold = True
    generation_id = await h.create()
    job = await h.started(generation_id)
    h.sim.complete(job.id)
    # Hold the worker back: look at the row between the webhook and the store step.
    held_until = h.ctx.clock().replace(year=2100)
    await h.ctx.db.write(lambda tx: tx.run(_SET_LEASE, {"id": generation_id, "owner": "test", "until": held_until}))
    h.sim.webhooks.release()
    await h.webhooks_idle()
    stored = await h.wait_status(generation_id, "storing")
    assert stored["progress"] == 100
    row = await generation_row(h.ctx, generation_id)
    output = dict(row.raw_provider or {})["output"]
    assert set(output) == {"staged", "content_type"}
    assert output["staged"].startswith("staging/")
    assert len(str(row.raw_provider)) < 5000  # the payload keeps "<N characters>" in place of the video
    assert await h.ctx.store.size_of(output["staged"]) == len(h.sim.video)

    await h.ctx.db.write(lambda tx: tx.run(_SET_LEASE, {"id": generation_id, "owner": None, "until": None}))
    h.ctx.wake(generation_id)
    final = await h.final(generation_id)
    assert final["status"] == "succeeded", final
    assert await h.ctx.store.size_of(output["staged"]) is None  # removed once stored
    await h.check_ledger()
