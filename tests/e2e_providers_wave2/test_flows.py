"""Every wave-2 provider through the HTTP API: success, failure and refund, hostile webhooks, SSRF, cancel,
deadline; the ledger holds after each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reelgate.services.webhook_links import webhook_url
from tests.e2e_providers.conftest import METADATA_HOST, Connections, with_query
from tests.e2e_providers_wave2.conftest import ORDERS, SENDS_WEBHOOKS, SIGNED_WEBHOOKS, WAVE2, Start, Wave2Harness

# Poe's chat bots answer with the finished video, so there is no running job to cancel, expire or fail later.
ASYNC_JOBS = [p for p in WAVE2 if p != "poe"]
# Veo and OpenAI Videos outputs are downloaded from the configured API host with our key (the host in the
# response is ignored), so no provider-supplied URL is ever fetched; the socket guard checks it in every test.
# So is OpenRouter's when its webhook reports it; its polled signed URL is checked in tests/providers_wave2.
URL_OUTPUTS = [p for p in WAVE2 if p not in ("veo", "openai_videos", "openrouter")]
# Where a cancel lands at the provider; Luma, ModelsLab, EdenAI and Veo document none: we stop following.
CANCEL_ROUTES = {"runway": "cancel", "fal": "cancel", "openai_videos": "delete"}


async def _run_to_end(h: Wave2Harness, generation_id: str, *, fail: str | None = None) -> dict[str, Any]:
    if h.provider != "poe":
        job = await h.started(generation_id)
        if fail is None:
            h.sim.complete(job.id)
        else:
            h.sim.fail(job.id, fail)
    return await h.final(generation_id)


def _assert_refunded(final: dict[str, Any], price: int) -> None:
    assert final["credits_charged"] == 0 and final["credits_refunded"] == price, final
    assert final["credits_held"] == 0 and final["video_url"] is None


async def test_success_by_webhook_or_polling(wave2: Start, provider_name: str, video_bytes: bytes) -> None:
    by_webhook = provider_name in SENDS_WEBHOOKS
    h = await wave2(provider_name, polling=not by_webhook)
    before = await h.credits()
    generation_id = await h.create()
    final = await _run_to_end(h, generation_id)

    assert final["status"] == "succeeded", final
    assert final["credits_charged"] == h.price and final["credits_held"] == 0
    assert final["provider"] == provider_name and final["served_model"] == ORDERS[provider_name]["model"]
    content = await h.client.get(final["video_url"], headers=h.headers)
    assert content.status_code == 200 and content.content == video_bytes
    if by_webhook:
        await h.webhooks_idle()
        assert {d.status for d in h.sim.webhooks.deliveries} == {200}
        assert h.sim.requests_to("status") == []  # the result came by webhook: nothing was polled
    assert await h.credits() == {"available": before["available"] - h.price, "held": 0}
    spool = Path(h.ctx.config.provider_spool_dir)
    assert not [p for p in spool.rglob("*") if p.is_file()], "a downloaded output outlived its storing"
    await h.check_ledger()


async def test_provider_failure_fails_and_refunds(wave2: Start, provider_name: str) -> None:
    h = await wave2(provider_name, polling=provider_name not in SENDS_WEBHOOKS)
    before = await h.credits()
    if provider_name == "poe":
        h.sim.media_reply = "Sorry, I could not make that video."  # type: ignore[attr-defined]
    generation_id = await h.create()
    final = await _run_to_end(h, generation_id, fail="CUDA out of memory")

    assert final["status"] == "failed" and final["error"]["code"].startswith("provider_"), final
    _assert_refunded(final, h.price)
    assert await h.credits() == before
    await h.check_ledger()


async def _hostile_webhook_deliveries(h: Wave2Harness, generation_id: str) -> None:
    """Drops the genuine completion, posts forged copies (refused), then delivers the genuine one."""
    job = await h.started(generation_id)
    h.sim.webhooks.controls.drop = 1
    h.sim.complete(job.id)
    url, _, body = h.sim.webhooks.dropped[-1]
    genuine = h.sim.webhooks.build(body)
    forgeries = [(with_query(url, t="forged-token"), genuine), (with_query(url, t=None), genuine)]
    if h.provider in SIGNED_WEBHOOKS:
        forgeries.append((url, h.sim.webhooks.build(body, corrupt=True)))
    for forged_url, headers in forgeries:
        response = await h.post_webhook(forged_url, body, headers)
        assert response.status_code == 401, (forged_url, response.text)
        assert (await h.get(generation_id))["status"] == "processing"
    response = await h.post_webhook(url, body, genuine)
    assert response.status_code == 200 and response.json()["result"] == "applied", response.text
    final = await h.final(generation_id)
    assert final["status"] == "succeeded" and final["credits_charged"] == h.price, final


async def test_hostile_webhooks_change_nothing(wave2: Start, provider_name: str) -> None:
    h = await wave2(provider_name)
    before = await h.credits()
    generation_id = await h.create()
    if provider_name in SENDS_WEBHOOKS:
        await _hostile_webhook_deliveries(h, generation_id)
        assert await h.credits() == {"available": before["available"] - h.price, "held": 0}
        await h.check_ledger()
        return
    # A provider that never calls back: even a correctly tokened "success" is refused.
    if provider_name == "poe":
        await h.wait_status(generation_id, "processing")  # the reply is in; the first poll is minutes away
        body: dict[str, Any] = {"status": "completed", "video_url": f"{h.sim.url}/files/x.mp4"}
    else:
        job = await h.started(generation_id)
        h.sim.complete(job.id)
        body = h.sim.wire(job)
    url = webhook_url(h.ctx, await h.row(generation_id))  # the address reelgate would hand out, token and all
    response = await h.client.post(url, json=body)
    assert response.status_code == 401, response.text
    after = await h.get(generation_id)
    assert after["status"] == "processing" and after["video_url"] is None
    await h.client.post(f"/api/v1/generations/{generation_id}/cancel", headers=h.headers)
    assert await h.credits() == before
    await h.check_ledger()


@pytest.mark.parametrize("provider_name", URL_OUTPUTS)
async def test_output_url_to_the_metadata_address_is_never_fetched(
    wave2: Start, provider_name: str, connections: Connections
) -> None:
    h = await wave2(provider_name, polling=provider_name not in SENDS_WEBHOOKS)
    before = await h.credits()
    h.sim.output_url_override = f"http://{METADATA_HOST}/latest/meta-data/video.mp4"
    generation_id = await h.create()
    final = await _run_to_end(h, generation_id)

    assert final["status"] == "failed" and final["error"]["code"] == "unsafe_output_url", final
    _assert_refunded(final, h.price)
    assert not [a for a in connections.attempted if a[0] == METADATA_HOST]
    assert await h.credits() == before
    await h.check_ledger()


@pytest.mark.parametrize("provider_name", ASYNC_JOBS)
async def test_cancel_refunds_and_a_late_success_changes_nothing(wave2: Start, provider_name: str) -> None:
    h = await wave2(provider_name)
    before = await h.credits()
    generation_id = await h.create()
    job = await h.started(generation_id)
    response = await h.client.post(f"/api/v1/generations/{generation_id}/cancel", headers=h.headers)
    assert response.status_code == 200 and response.json()["status"] == "canceled", response.text
    _assert_refunded(response.json(), h.price)
    if provider_name in CANCEL_ROUTES:
        assert len(h.sim.requests_to(CANCEL_ROUTES[provider_name])) == 1

    if h.sim.jobs[job.id].state not in ("canceled", "failed"):
        h.sim.complete(job.id)  # the provider finished anyway; its webhook must not revive the job
        await h.webhooks_idle()
    again = await h.get(generation_id)
    assert again["status"] == "canceled" and again["credits_charged"] == 0
    assert await h.credits() == before
    await h.check_ledger()


@pytest.mark.parametrize("provider_name", ASYNC_JOBS)
async def test_deadline_expires_and_refunds(wave2: Start, provider_name: str) -> None:
    h = await wave2(provider_name, polling=True, deadline=2)
    before = await h.credits()
    generation_id = await h.create()
    await h.started(generation_id)  # the job never finishes at the provider
    final = await h.final(generation_id, timeout=30)
    assert final["status"] == "expired" and final["error"]["code"] == "deadline_exceeded", final
    _assert_refunded(final, h.price)
    assert await h.credits() == before
    await h.check_ledger()


async def test_openrouter_polled_signed_url_goes_through_the_ssrf_guard(wave2: Start, connections: Connections) -> None:
    """Followed by polling (its webhooks lost), OpenRouter's signed output URL is fetched like any provider URL."""
    h = await wave2("openrouter", polling=True)
    h.sim.webhooks.controls.drop = -1
    h.sim.output_url_override = f"http://{METADATA_HOST}/latest/meta-data/video.mp4"
    before = await h.credits()
    final = await _run_to_end(h, await h.create())
    assert final["status"] == "failed" and final["error"]["code"] == "unsafe_output_url", final
    _assert_refunded(final, h.price)
    assert not [a for a in connections.attempted if a[0] == METADATA_HOST]
    assert await h.credits() == before

    h.sim.output_url_override = None
    final = await _run_to_end(h, await h.create())
    assert final["status"] == "succeeded" and final["credits_charged"] == h.price, final
    assert [r.route for r in h.sim.requests if r.route == "output"], "the signed URL was fetched"
    await h.check_ledger()
