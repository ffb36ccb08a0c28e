"""FalProvider against the fal simulator: queue lifecycle, COMPLETED+error, Ed25519 webhooks, JWKS rotation."""

from __future__ import annotations

import json
import time

import pytest

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import ProviderConfig, ProviderRejected, RetryLater, SubmitOutcomeUnknown, WebhookRejected
from reelgate.providers.fal import FalProvider, app_id
from tests.providers.helpers import image, job_request
from tests.simulators.base import Fault

MODEL = "fal-ai/kling-video/v1.6/pro/text-to-video"


@pytest.fixture
async def provider(fal_sim):
    adapter = FalProvider(
        ProviderConfig(
            api_key="test-key", base_url=fal_sim.url, extra={"jwks_url": f"{fal_sim.url}/.well-known/jwks.json"}
        )
    )
    adapter.jwks.min_refresh = 0  # tests rotate keys back to back
    yield adapter
    await adapter.aclose()


def req(**overrides):
    values = {"model_ref": MODEL, "duration": 5, "negative_prompt": "blur", "seed": 3}
    values.update(overrides)
    return job_request(**values)


def test_app_id_drops_the_subpath():
    assert app_id(MODEL) == "fal-ai/kling-video"
    with pytest.raises(ProviderRejected):
        app_id("nonsense")


async def test_submit_status_result(provider, fal_sim):
    hook = "http://127.0.0.1:9/webhooks/fal?t=x"
    result = await provider.submit(req(webhook_url=hook, start_image=image("https://img/a.png")))
    [sent] = fal_sim.requests_to("submit")
    assert sent.path == f"/{MODEL}" and sent.headers.get("authorization") is None  # logged without secrets
    assert sent.query["fal_webhook"] == hook + "&fal_app=fal-ai%2Fkling-video"
    assert sent.json() == {
        "prompt": "a lighthouse at dusk",
        "negative_prompt": "blur",
        "duration": "5",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "seed": 3,
        "image_url": "https://img/a.png",
    }
    app, _, request_id = result.provider_job_id.partition("#")
    assert app == "fal-ai/kling-video"
    assert (await provider.status(result.provider_job_id)).state is ProviderState.QUEUED
    fal_sim.run(request_id)
    assert (await provider.status(result.provider_job_id)).state is ProviderState.RUNNING
    assert fal_sim.requests_to("status")[-1].path == f"/fal-ai/kling-video/requests/{request_id}/status"
    fal_sim.complete(request_id)
    done = await provider.status(result.provider_job_id)
    assert done.state is ProviderState.SUCCEEDED and done.output.url.endswith(f"/files/{request_id}.mp4")
    assert done.output.content_type == "video/mp4"


async def test_failure_is_completed_with_error_and_cancel(provider, fal_sim):
    job = (await provider.submit(req())).provider_job_id
    fal_sim.fail(job.partition("#")[2], "NSFW content detected in the output")
    failed = await provider.status(job)
    assert (failed.state, failed.error_code) == (ProviderState.FAILED, ProviderRejected.CONTENT_POLICY)
    other = (await provider.submit(req())).provider_job_id
    await provider.cancel(other)
    assert fal_sim.jobs[other.partition("#")[2]].state == "canceled"
    await provider.cancel(other)  # ALREADY_COMPLETED is not an error


async def test_errors_carry_intent(provider, fal_sim):
    fal_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(req())
    # 403 "Exhausted balance" (docs/providers/fal.md#limits-and-errors)
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT
    fal_sim.out_of_credit = False
    fal_sim.faults.add("submit", Fault.error(429, retry_after="4"))
    with pytest.raises(RetryLater) as retry:
        await provider.submit(req())
    assert retry.value.after == 4
    fal_sim.faults.add("submit", Fault.stall(0.2))
    fal_sim.faults.add("submit", Fault.reset())
    await provider.submit(req())  # the stalled one still answers
    with pytest.raises(SubmitOutcomeUnknown):
        await provider.submit(req())


async def test_signed_webhook_from_simulator_is_accepted(provider, fal_sim, receiver):
    job = (await provider.submit(req(webhook_url=receiver.url + "/webhooks/fal?t=tok"))).provider_job_id
    fal_sim.complete(job.partition("#")[2])
    [delivery] = receiver.wait_for(1)
    assert delivery.query == {"t": "tok", "fal_app": "fal-ai/kling-video"}
    event = await provider.verify_and_parse_webhook(delivery.headers, delivery.body, delivery.query)
    assert event.update.provider_job_id == job  # the same id submit stored
    assert event.update.state is ProviderState.SUCCEEDED and event.update.output.url.endswith(".mp4")
    assert provider.jwks.fetches == 1


async def test_error_webhook_and_forgeries(provider, fal_sim, receiver):
    job = (await provider.submit(req(webhook_url=receiver.url))).provider_job_id
    fal_sim.fail(job.partition("#")[2], "CUDA out of memory")
    [delivery] = receiver.wait_for(1)
    event = await provider.verify_and_parse_webhook(delivery.headers, delivery.body, delivery.query)
    assert event.update.state is ProviderState.FAILED and "422" in event.update.error_message
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(delivery.headers, delivery.body.replace(b"ERROR", b"OK"), {})
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(fal_sim.webhooks.build(delivery.body, corrupt=True), delivery.body, {})
    stale = fal_sim.webhooks.build(delivery.body, timestamp=int(time.time()) - 301)
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(stale, delivery.body, {})
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook({}, delivery.body, {})


async def test_key_rotation_refetches_the_jwks_once(provider, fal_sim):
    body = json.dumps({"request_id": "r1", "status": "OK", "payload": {"video": {"url": "https://v/1.mp4"}}}).encode()
    await provider.verify_and_parse_webhook(fal_sim.webhooks.build(body), body, {})
    assert provider.jwks.fetches == 1
    await provider.verify_and_parse_webhook(fal_sim.webhooks.build(body), body, {})
    assert provider.jwks.fetches == 1  # cached within the TTL
    fal_sim.rotate()
    fal_sim.serve_old_keys = False
    event = await provider.verify_and_parse_webhook(fal_sim.webhooks.build(body), body, {})
    assert event.update.output.url == "https://v/1.mp4" and provider.jwks.fetches == 2
    # A forgery makes one refetch at most and then fails; the cache keeps the current key.
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(fal_sim.webhooks.build(body, corrupt=True), body, {})
    assert provider.jwks.fetches == 3
    provider.jwks.min_refresh = 3600
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(fal_sim.webhooks.build(body, corrupt=True), body, {})
    assert provider.jwks.fetches == 3  # rate-limited: forged webhooks cannot hammer the JWKS


async def test_expired_cache_is_refreshed(provider, fal_sim):
    body = json.dumps({"request_id": "r2", "status": "OK", "payload": {"video": {"url": "https://v/2.mp4"}}}).encode()
    provider.jwks.ttl = 0
    await provider.verify_and_parse_webhook(fal_sim.webhooks.build(body), body, {})
    await provider.verify_and_parse_webhook(fal_sim.webhooks.build(body), body, {})
    assert provider.jwks.fetches >= 2
