"""PolloProvider against the Pollo simulator: the tiers' payloads, polling, X-Webhook-* verification."""

from __future__ import annotations

import base64
import json
import time

import pytest

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import (
    ProviderConfig,
    ProviderRejected,
    RetryLater,
    SubmitOutcomeUnknown,
    WebhookRejected,
)
from reelgate.providers.pollo import PolloProvider
from tests.providers.helpers import PNG_1PX, image, job_request
from tests.simulators.base import Fault
from tests.simulators.pollo import sign

HOOK = "http://127.0.0.1:9/webhooks/pollo?t=x"


@pytest.fixture
async def provider(pollo_sim):
    adapter = PolloProvider(
        ProviderConfig(api_key="test-key", base_url=pollo_sim.url, webhook_secret=pollo_sim.webhook_secret)
    )
    yield adapter
    await adapter.aclose()


def tier_request(model_ref, **overrides):
    values = {"model_ref": model_ref, "kind": "i2v", "duration": 5, "webhook_url": HOOK}
    values.update(overrides)
    return job_request(**values)


@pytest.mark.parametrize(
    ("model_ref", "overrides", "expected"),
    [
        (
            "kling-ai/kling-v1-6",
            {"negative_prompt": "text", "start_image": image("https://i/a.png"), "end_image": image("https://i/b.png")},
            {
                "prompt": "a lighthouse at dusk",
                "negativePrompt": "text",
                "image": "https://i/a.png",
                "imageTail": "https://i/b.png",
                "length": 5,
                "strength": 50,
                "mode": "std",
            },
        ),
        (
            "pollo/pollo-v1-6",
            {"seed": 1234, "options": {"mode": "pro"}},
            {"prompt": "a lighthouse at dusk", "resolution": "720p", "mode": "pro", "length": 5, "seed": 1234},
        ),
        (
            "kling-ai/kling-v2-5-turbo",
            {"duration": 10, "options": {"strength": 70}},
            {"prompt": "a lighthouse at dusk", "strength": 70, "length": 10},
        ),
        (
            "runway/runway-gen-4-turbo",
            {
                "resolution": "1080p",
                "width": 1920,
                "height": 1080,
                "options": {"motionStrength": 4},
                "start_image": image("https://i/a.png"),
            },
            {
                "prompt": "a lighthouse at dusk",
                "image": "https://i/a.png",
                "resolution": "1920x1080",
                "duration": 5,
                "motionStrength": 4,
            },
        ),
    ],
    ids=["economy", "basic", "pro", "premium"],
)
async def test_each_tier_sends_seed_001_payload(provider, pollo_sim, model_ref, overrides, expected):
    result = await provider.submit(tier_request(model_ref, **overrides))
    [sent] = pollo_sim.requests_to("submit")
    assert sent.path == f"/generation/{model_ref}"
    assert sent.json() == {"input": expected, "webhookUrl": HOOK}
    assert "x-api-key" not in sent.headers
    assert pollo_sim.jobs[result.provider_job_id].extra["model"] == model_ref


async def test_basic_tier_draws_a_seed_and_inlines_images(provider, pollo_sim):
    await provider.submit(tier_request("pollo/pollo-v1-6", start_image=image()))
    sent = pollo_sim.requests_to("submit")[0].json()["input"]
    assert 0 <= sent["seed"] < 10000  # a random seed below 10000 when none is given
    assert sent["image"] == "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()


async def test_unknown_model_is_bad_input(provider, pollo_sim):
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(tier_request("minimax/video-01"))
    assert info.value.code == ProviderRejected.BAD_INPUT and pollo_sim.requests == []


@pytest.mark.parametrize("envelope", [False, True])
async def test_status_maps_every_state(provider, pollo_sim, envelope):
    pollo_sim.envelope = envelope
    ids = [(await provider.submit(tier_request("kling-ai/kling-v1-6"))).provider_job_id for _ in range(3)]
    assert (await provider.status(ids[0])).state is ProviderState.QUEUED
    pollo_sim.run(ids[0])
    assert (await provider.status(ids[0])).state is ProviderState.RUNNING
    pollo_sim.complete(ids[1])
    done = await provider.status(ids[1])
    assert done.state is ProviderState.SUCCEEDED and done.output.url == f"{pollo_sim.url}/files/{ids[1]}.mp4"
    pollo_sim.fail(ids[2], "The content violates our content policy")
    failed = await provider.status(ids[2])
    assert (failed.state, failed.error_code) == (ProviderState.FAILED, ProviderRejected.CONTENT_POLICY)
    assert [r.path for r in pollo_sim.requests_to("status")][0] == f"/generation/{ids[0]}/status"


async def test_cancel_is_a_documented_no_op(provider, pollo_sim):
    job_id = (await provider.submit(tier_request("kling-ai/kling-v1-6"))).provider_job_id
    await provider.cancel(job_id)
    assert len(pollo_sim.requests) == 1  # only the submit: Pollo has no cancel endpoint


async def test_errors_carry_intent(provider, pollo_sim):
    pollo_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(tier_request("pollo/pollo-v1-6"))
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT
    pollo_sim.out_of_credit = False
    pollo_sim.faults.add("submit", Fault.error(429, retry_after="11"))
    with pytest.raises(RetryLater) as retry:
        await provider.submit(tier_request("pollo/pollo-v1-6"))
    assert retry.value.after == 11
    pollo_sim.faults.add("submit", Fault.reset())
    with pytest.raises(SubmitOutcomeUnknown):
        await provider.submit(tier_request("pollo/pollo-v1-6"))
    pollo_sim.faults.add("status", Fault.error(502))
    with pytest.raises(RetryLater):
        await provider.status("t1")
    with pytest.raises(ProviderRejected) as info:
        await provider.status("missing")
    assert info.value.code == ProviderRejected.NOT_FOUND
    pollo_sim.api_key = "rotated"
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(tier_request("pollo/pollo-v1-6"))
    assert info.value.code == ProviderRejected.AUTH
    assert (await provider.health()).detail == "auth"


async def test_signed_webhook_from_simulator_is_accepted(provider, pollo_sim, receiver):
    job_id = (await provider.submit(tier_request("kling-ai/kling-v1-6", webhook_url=receiver.url))).provider_job_id
    pollo_sim.webhooks.controls.duplicate = 1
    pollo_sim.complete(job_id)
    events = [await provider.verify_and_parse_webhook(r.headers, r.body, r.query) for r in receiver.wait_for(2)]
    assert {e.delivery_id for e in events} == {f"{job_id}:succeeded"}
    assert events[0].update.output.url.endswith(f"/files/{job_id}.mp4")


@pytest.mark.parametrize("control", ["bad_signature", "stale_seconds"])
async def test_forged_or_stale_webhooks_are_rejected(provider, pollo_sim, receiver, control):
    setattr(pollo_sim.webhooks.controls, control, True if control == "bad_signature" else 301)
    job_id = (await provider.submit(tier_request("kling-ai/kling-v1-6", webhook_url=receiver.url))).provider_job_id
    pollo_sim.fail(job_id, "boom")
    [delivery] = receiver.wait_for(1)
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(delivery.headers, delivery.body, {})


async def test_tampered_future_and_unsigned_webhooks_are_rejected(provider, pollo_sim):
    body = json.dumps({"taskId": "t1", "status": "succeed", "url": "https://cdn/v.mp4"}).encode()
    headers = pollo_sim.webhooks.build(body, "wh_1")
    assert (await provider.verify_and_parse_webhook(headers, body, {})).update.output.url == "https://cdn/v.mp4"
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(headers, body.replace(b"cdn", b"evil"), {})
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(
            pollo_sim.webhooks.build(body, "wh_2", timestamp=int(time.time()) + 400), body, {}
        )
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook({"X-Webhook-Id": "wh_1"}, body, {})
    with pytest.raises(WebhookRejected):
        await PolloProvider(ProviderConfig(api_key="k")).verify_and_parse_webhook(headers, body, {})


async def test_raw_secret_without_prefix_is_used_as_bytes(pollo_sim):
    adapter = PolloProvider(ProviderConfig(api_key="k", webhook_secret="plain-secret"))
    body = json.dumps({"taskId": "t2", "status": "failed", "failMsg": "timeout"}).encode()
    ts = str(int(time.time()))
    headers = {
        "X-Webhook-Id": "wh_3",
        "X-Webhook-Timestamp": ts,
        "X-Webhook-Signature": sign("plain-secret", "wh_3", ts, body),
    }
    event = await adapter.verify_and_parse_webhook(headers, body, {})
    assert (event.update.state, event.update.error_message) == (ProviderState.FAILED, "timeout")
