"""OpenRouterProvider against its simulator: the submit body, states, the output by signed URL or by the keyed
content endpoint, errors, and signed webhooks; and the simulator checked against the official SDK."""

from __future__ import annotations

import json
import time

import pytest
from openrouter import OpenRouter, errors, utils

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import ProviderConfig, ProviderRejected, RetryLater, WebhookRejected
from reelgate.providers.openrouter import OpenRouterProvider, signature
from tests.providers.helpers import image, job_request
from tests.providers_wave2.conftest import OPENROUTER_SECRET
from tests.simulators.base import Fault


@pytest.fixture
async def openrouter(openrouter_sim, tmp_path):
    config = ProviderConfig(
        api_key="test-key",
        base_url=openrouter_sim.url + "/api/v1",
        webhook_secret=OPENROUTER_SECRET,
        extra={"spool_dir": str(tmp_path)},
    )
    adapter = OpenRouterProvider(config)
    yield adapter
    await adapter.aclose()


def veo(**overrides):
    values = {"model_ref": "google/veo-3.1", "duration": 8, "resolution": "1080p", "width": 1920, "height": 1080}
    return job_request(**{**values, **overrides})


async def test_submit_body_and_lifecycle_by_polling(openrouter, openrouter_sim, receiver):
    request = veo(
        seed=42,
        audio=True,
        start_image=image("https://img.example/first.png"),
        end_image=image(),
        webhook_url=receiver.url,
        resolution="4k",
    )
    job_id = (await openrouter.submit(request)).provider_job_id
    assert job_id.startswith("gen-vid-")
    [sent] = openrouter_sim.requests_to("submit")
    assert sent.path == "/api/v1/videos"
    body = sent.json()
    assert body.pop("frame_images")[0] == {
        "type": "image_url",
        "image_url": {"url": "https://img.example/first.png"},
        "frame_type": "first_frame",
    }
    assert body == {
        "model": "google/veo-3.1",
        "prompt": "a lighthouse at dusk",
        "duration": 8,
        "resolution": "4K",
        "aspect_ratio": "16:9",
        "seed": 42,
        "generate_audio": True,
        "callback_url": receiver.url,
    }
    assert (await openrouter.status(job_id)).state is ProviderState.QUEUED
    openrouter_sim.run(job_id)
    assert (await openrouter.status(job_id)).state is ProviderState.RUNNING
    openrouter_sim.complete(job_id)
    done = await openrouter.status(job_id)
    # The signed URL needs no key: the services fetch it through the SSRF guard.
    assert done.state is ProviderState.SUCCEEDED and done.progress == 100
    assert done.output is not None and done.output.url == openrouter_sim.jobs[job_id].output


async def test_no_signed_url_reads_the_content_endpoint_with_the_key(openrouter, openrouter_sim, tmp_path):
    openrouter_sim.signed_urls = False
    job_id = (await openrouter.submit(veo())).provider_job_id
    openrouter_sim.complete(job_id)
    done = await openrouter.status(job_id)
    assert done.output is not None and done.output.url is None and done.output.content_type == "video/mp4"
    with open(done.output.path, "rb") as f:
        assert f.read() == openrouter_sim.video
    [fetched] = openrouter_sim.requests_to("content")
    assert fetched.query == {"index": "0"}  # with the key: the simulator answers 401 without it


async def test_without_a_signing_secret_no_webhook_is_asked_for(openrouter_sim, receiver):
    adapter = OpenRouterProvider(ProviderConfig(api_key="test-key", base_url=openrouter_sim.url + "/api/v1"))
    try:
        await adapter.submit(veo(webhook_url=receiver.url))
        assert "callback_url" not in openrouter_sim.requests_to("submit")[0].json()
        with pytest.raises(WebhookRejected):
            await adapter.verify_and_parse_webhook({}, b"{}", {})
    finally:
        await adapter.aclose()


async def test_failed_expired_and_cancelled(openrouter, openrouter_sim):
    failed_id = (await openrouter.submit(veo())).provider_job_id
    openrouter_sim.fail(failed_id, "Request blocked by the safety filter")
    failed = await openrouter.status(failed_id)
    assert (failed.state, failed.error_code) == (ProviderState.FAILED, ProviderRejected.CONTENT_POLICY)
    assert failed.error_message == "Request blocked by the safety filter"

    expired_id = (await openrouter.submit(veo())).provider_job_id
    openrouter_sim.expire(expired_id)
    expired = await openrouter.status(expired_id)
    assert (expired.state, expired.error_code) == (ProviderState.FAILED, ProviderRejected.FAILED)
    assert "expired" in (expired.error_message or "")

    cancelled_id = (await openrouter.submit(veo())).provider_job_id
    await openrouter.cancel(cancelled_id)  # no cancel endpoint: nothing is sent, we stop polling
    assert [r.route for r in openrouter_sim.requests] == ["submit", "status", "submit", "status", "submit"]
    openrouter_sim.cancel_job(cancelled_id)
    assert (await openrouter.status(cancelled_id)).state is ProviderState.CANCELED


async def test_errors_map_to_intent(openrouter, openrouter_sim):
    openrouter_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as broke:
        await openrouter.submit(veo())
    assert broke.value.code == ProviderRejected.OUT_OF_CREDIT
    openrouter_sim.out_of_credit = False
    openrouter_sim.faults.add("submit", Fault.error(429, {"error": {"code": 429, "message": "slow down"}}, "7"))
    with pytest.raises(RetryLater) as later:
        await openrouter.submit(veo())
    assert later.value.after == 7
    bad_key = OpenRouterProvider(ProviderConfig(api_key="wrong", base_url=openrouter_sim.url + "/api/v1"))
    try:
        with pytest.raises(ProviderRejected) as auth:
            await bad_key.submit(veo())
        assert auth.value.code == ProviderRejected.AUTH
    finally:
        await bad_key.aclose()
    with pytest.raises(ProviderRejected) as missing:
        await openrouter.status("gen-vid-0-missing")
    assert missing.value.code == ProviderRejected.NOT_FOUND


async def test_signed_webhooks(openrouter, openrouter_sim, receiver):
    job_id = (await openrouter.submit(veo(webhook_url=receiver.url))).provider_job_id
    openrouter_sim.complete(job_id)
    [delivery] = receiver.wait_for(1)
    assert delivery.headers["x-openrouter-idempotency-key"] == f"{job_id}-completed"
    event = await openrouter.verify_and_parse_webhook(delivery.headers, delivery.body, delivery.query)
    assert event.delivery_id == f"{job_id}-completed" and event.update.state is ProviderState.SUCCEEDED
    # The event's URLs need the key: the video came from the configured host's content endpoint.
    assert event.update.output is not None and event.update.output.path
    assert not openrouter_sim.requests_to("status")

    forged = {**delivery.headers, "x-openrouter-signature": f"t={int(time.time())},v1={'0' * 64}"}
    stale_at = str(int(time.time()) - 3600)
    stale = {"x-openrouter-signature": f"t={stale_at},v1={signature(OPENROUTER_SECRET, stale_at, delivery.body)}"}
    for headers in (forged, stale, {}):
        with pytest.raises(WebhookRejected):
            await openrouter.verify_and_parse_webhook(headers, delivery.body, {})

    failed_id = (await openrouter.submit(veo(webhook_url=receiver.url))).provider_job_id
    openrouter_sim.fail(failed_id, "upstream error")
    second = receiver.wait_for(2)[1]
    assert json.loads(second.body)["type"] == "video.generation.failed"
    update = (await openrouter.verify_and_parse_webhook(second.headers, second.body, {})).update
    assert (update.state, update.error_message) == (ProviderState.FAILED, "upstream error")


def test_simulator_speaks_the_official_sdk(openrouter_sim):
    """The simulator, driven by the official `openrouter` SDK (the checks the other simulators get)."""
    no_retries = utils.RetryConfig("none", utils.BackoffStrategy(1, 1, 1, 1), False)
    client = OpenRouter(api_key="test-key", server_url=openrouter_sim.url + "/api/v1", retry_config=no_retries)
    [model] = client.video_generation.list_videos_models().data
    assert model.id == "google/veo-3.1" and model.supported_durations == [4, 6, 8]

    frame = {"type": "image_url", "image_url": {"url": "https://img.example/a.png"}, "frame_type": "first_frame"}
    job = client.video_generation.generate(model="google/veo-3.1", prompt="a fox", duration=4, frame_images=[frame])
    assert job.status == "pending" and job.id.startswith("gen-vid-")
    assert openrouter_sim.requests_to("submit")[0].json()["frame_images"] == [frame]
    openrouter_sim.run(job.id)
    assert client.video_generation.get_generation(job_id=job.id).status == "in_progress"
    openrouter_sim.complete(job.id)
    done = client.video_generation.get_generation(job_id=job.id)
    assert done.status == "completed" and done.urls and done.unsigned_urls and done.usage is not None
    assert client.video_generation.get_video_content(job_id=job.id, index=0).read() == openrouter_sim.video

    openrouter_sim.out_of_credit = True
    with pytest.raises(errors.PaymentRequiredResponseError) as broke:
        client.video_generation.generate(model="google/veo-3.1", prompt="a fox")
    assert broke.value.data.error.code == 402
    with pytest.raises(errors.UnauthorizedResponseError):
        OpenRouter(api_key="wrong", server_url=openrouter_sim.url + "/api/v1").video_generation.get_generation(
            job_id=job.id
        )
    with pytest.raises(errors.NotFoundResponseError):
        client.video_generation.get_generation(job_id="gen-vid-0-missing")
