"""ReplicateProvider against the Replicate simulator over loopback HTTP, webhooks via standardwebhooks."""

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
from reelgate.providers.replicate import ABORTED, ReplicateProvider, parse_progress
from tests.providers.helpers import PNG_1PX, image, job_request
from tests.simulators.base import Fault

FLUX = "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"
ZEROSCOPE = "9f747673945c62801b13b84701c783929c0ee784e4748ec062204894dda1a351"


@pytest.fixture
async def provider(replicate_sim):
    config = ProviderConfig(api_key="test-key", base_url=replicate_sim.url, webhook_secret=replicate_sim.webhook_secret)
    adapter = ReplicateProvider(config)
    yield adapter
    await adapter.aclose()


def wan_request(**overrides):
    values = {
        "model_ref": "wan-video/wan-2.2-t2v-fast",
        "duration": 5,
        "resolution": "480p",
        "width": 854,
        "height": 480,
        "seed": 3,
        "negative_prompt": "blurry",
    }
    values.update(overrides)
    return job_request(**values)


async def test_wan_by_model_name(provider, replicate_sim):
    result = await provider.submit(wan_request(webhook_url="http://127.0.0.1:9/hook"))
    [sent] = replicate_sim.requests_to("submit")
    assert sent.path == "/v1/models/wan-video/wan-2.2-t2v-fast/predictions"
    assert sent.json() == {
        "input": {
            "prompt": "a lighthouse at dusk",
            "negative_prompt": "blurry",
            "seed": 3,
            "resolution": "480p",
            "aspect_ratio": "16:9",
            "num_frames": 81,
            "frames_per_second": 16,
        },
        "webhook": "http://127.0.0.1:9/hook",
        "webhook_events_filter": ["start", "completed"],
    }
    assert result.provider_job_id in replicate_sim.jobs


async def test_wan_i2v_sends_image_as_url_or_data_url(provider, replicate_sim):
    await provider.submit(wan_request(model_ref="wan-video/wan-2.2-i2v-fast", start_image=image("https://i/x.png")))
    await provider.submit(wan_request(model_ref="wan-video/wan-2.2-i2v-fast", start_image=image(), duration=10))
    first, second = (r.json()["input"] for r in replicate_sim.requests_to("submit"))
    assert first["image"] == "https://i/x.png"
    assert second["image"] == "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
    assert second["num_frames"] == 121  # capped at Wan's longest clip


async def test_zeroscope_and_flux_by_version(provider, replicate_sim):
    await provider.submit(job_request(model_ref=ZEROSCOPE, duration=15, width=1024, height=576, seed=None))
    await provider.submit(
        job_request(
            model_ref=f"black-forest-labs/flux-schnell:{FLUX}",
            kind="image",
            aspect_ratio="1:1",
            seed=9,
            options={"output_format": "png"},
        )
    )
    zeroscope, flux = replicate_sim.requests_to("submit")
    assert zeroscope.path == flux.path == "/v1/predictions"
    assert zeroscope.json()["version"] == ZEROSCOPE
    assert zeroscope.json()["input"] == {
        "prompt": "a lighthouse at dusk",
        "num_frames": 360,
        "fps": 24,
        "width": 1024,
        "height": 576,
    }
    assert flux.json()["version"] == FLUX
    assert flux.json()["input"] == {
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "1:1",
        "output_format": "png",
        "num_outputs": 1,
        "seed": 9,
    }
    assert "webhook" not in flux.json()


def test_progress_from_tqdm_logs():
    logs = "loading\n  0%|          | 0/50 [00:00<?, ?it/s]\n 46%|####6     | 23/50 [00:05<00:06,  4.1it/s]\nsaving"
    assert parse_progress(logs) == 46
    assert parse_progress("100%|##########| 30/30 [00:09<00:00]") == 100
    assert parse_progress("no bars here") is None and parse_progress(None) is None


async def test_status_maps_every_state(provider, replicate_sim):
    ids = [(await provider.submit(wan_request())).provider_job_id for _ in range(6)]
    assert (await provider.status(ids[0])).state is ProviderState.QUEUED
    replicate_sim.run(ids[0])
    replicate_sim.set_logs(ids[0], " 10%|#         | 5/50 [00:01<00:09]\n 62%|######    | 31/50 [00:06<00:03]")
    running = await provider.status(ids[0])
    assert (running.state, running.progress) == (ProviderState.RUNNING, 62)
    replicate_sim.complete(ids[1])
    done = await provider.status(ids[1])
    assert done.state is ProviderState.SUCCEEDED and done.output.url == f"{replicate_sim.url}/files/{ids[1]}.mp4"
    replicate_sim.complete(ids[2], output=["https://x/1.webp", "https://x/2.webp"])
    assert (await provider.status(ids[2])).output.url == "https://x/1.webp"
    replicate_sim.fail(ids[3], "NSFW content detected. Try running it again, or try a different prompt.")
    nsfw = await provider.status(ids[3])
    assert (nsfw.state, nsfw.error_code) == (ProviderState.FAILED, ProviderRejected.CONTENT_POLICY)
    replicate_sim.abort(ids[4])
    aborted = await provider.status(ids[4])
    assert (aborted.state, aborted.error_code) == (ProviderState.FAILED, ABORTED)
    await provider.cancel(ids[5])
    assert [r.path for r in replicate_sim.requests_to("cancel")] == [f"/v1/predictions/{ids[5]}/cancel"]
    assert (await provider.status(ids[5])).state is ProviderState.CANCELED
    replicate_sim.fail(ids[0], "CUDA error")
    plain = await provider.status(ids[0])
    assert plain.error_code == ProviderRejected.FAILED


async def test_errors_carry_intent(provider, replicate_sim):
    replicate_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(wan_request())
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT
    assert (await provider.health()).out_of_credit
    replicate_sim.out_of_credit = False
    replicate_sim.faults.add("submit", Fault.error(429, {"detail": "Request was throttled."}, retry_after="2"))
    with pytest.raises(RetryLater) as retry:
        await provider.submit(wan_request())
    assert retry.value.after == 2
    replicate_sim.faults.add("submit", Fault.error(500))
    with pytest.raises(RetryLater):
        await provider.submit(wan_request())
    replicate_sim.faults.add("submit", Fault.error(422, {"detail": "num_frames must be <= 121"}))
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(wan_request())
    assert info.value.code == ProviderRejected.BAD_INPUT
    replicate_sim.faults.add("submit", Fault.reset())
    with pytest.raises(SubmitOutcomeUnknown):
        await provider.submit(wan_request())
    with pytest.raises(ProviderRejected) as info:
        await provider.status("does-not-exist")
    assert info.value.code == ProviderRejected.NOT_FOUND
    assert replicate_sim.jobs == {}


async def test_start_and_completed_webhooks_verify_and_stay_distinct(provider, replicate_sim, receiver):
    job_id = (await provider.submit(wan_request(webhook_url=f"{receiver.url}/webhooks/replicate"))).provider_job_id
    replicate_sim.run(job_id)  # "logs" is not in our filter: no delivery
    replicate_sim.complete(job_id)
    start, completed = receiver.wait_for(2)
    events = [await provider.verify_and_parse_webhook(r.headers, r.body, r.query) for r in (start, completed)]
    assert [e.update.state for e in events] == [ProviderState.QUEUED, ProviderState.SUCCEEDED]
    assert events[0].delivery_id != events[1].delivery_id
    assert events[1].delivery_id == f"{completed.headers['webhook-id']}:succeeded"


async def test_duplicate_deliveries_share_one_delivery_id(provider, replicate_sim, receiver):
    replicate_sim.webhooks.controls.duplicate = 2
    job_id = (await provider.submit(wan_request(webhook_url=receiver.url))).provider_job_id
    replicate_sim.fail(job_id, "boom")
    received = receiver.wait_for(6)
    ids = {(await provider.verify_and_parse_webhook(r.headers, r.body, {})).delivery_id for r in received}
    assert len(ids) == 2


async def test_reordered_webhooks_still_verify(provider, replicate_sim, receiver):
    replicate_sim.webhooks.controls.hold = True
    job_id = (await provider.submit(wan_request(webhook_url=receiver.url))).provider_job_id
    replicate_sim.complete(job_id)
    replicate_sim.webhooks.release(reverse=True)
    first, second = receiver.wait_for(2)
    first_event = await provider.verify_and_parse_webhook(first.headers, first.body, {})
    second_event = await provider.verify_and_parse_webhook(second.headers, second.body, {})
    assert first_event.update.state is ProviderState.SUCCEEDED
    assert second_event.update.state is ProviderState.QUEUED


@pytest.mark.parametrize("control", ["bad_signature", "stale_seconds"])
async def test_forged_or_stale_webhooks_are_rejected(provider, replicate_sim, receiver, control):
    setattr(replicate_sim.webhooks.controls, control, True if control == "bad_signature" else 600)
    job_id = (await provider.submit(wan_request(webhook_url=receiver.url))).provider_job_id
    replicate_sim.complete(job_id)
    for delivery in receiver.wait_for(2):
        with pytest.raises(WebhookRejected):
            await provider.verify_and_parse_webhook(delivery.headers, delivery.body, {})


async def test_tampered_body_missing_headers_and_missing_secret_are_rejected(provider, replicate_sim):
    body = json.dumps({"id": "p1", "model": "m", "version": "v", "status": "succeeded", "output": "https://a/b"})
    headers = replicate_sim.webhooks.build(body.encode(), "msg_1")
    assert (await provider.verify_and_parse_webhook(headers, body.encode(), {})).update.output.url == "https://a/b"
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(headers, body.replace("https://a/b", "https://evil/b").encode(), {})
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook({"webhook-id": "msg_1"}, body.encode(), {})
    future = replicate_sim.webhooks.build(body.encode(), "msg_2", timestamp=int(time.time()) + 900)
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook(future, body.encode(), {})
    unsigned = ReplicateProvider(ProviderConfig(api_key="k"))
    with pytest.raises(WebhookRejected):
        await unsigned.verify_and_parse_webhook(headers, body.encode(), {})


async def test_aborted_webhook_parses_without_the_sdk_model(provider, replicate_sim):
    body = json.dumps({"id": "p9", "status": "aborted", "error": None}).encode()
    event = await provider.verify_and_parse_webhook(replicate_sim.webhooks.build(body, "msg_9"), body, {})
    assert (event.update.state, event.update.error_code) == (ProviderState.FAILED, ABORTED)


async def test_health(provider, replicate_sim):
    assert (await provider.health()).healthy
    replicate_sim.api_key = "rotated"
    report = await provider.health()
    assert (report.healthy, report.detail) == (False, "auth")


async def test_simulator_output_controls(provider, replicate_sim):
    import httpx

    job_id = (await provider.submit(wan_request())).provider_job_id
    replicate_sim.complete(job_id)
    url = (await provider.status(job_id)).output.url
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == replicate_sim.video
        replicate_sim.expire_outputs = 410
        assert (await client.get(url)).status_code == 410
    replicate_sim.output_url_override = "http://169.254.169.254/latest/"
    other = (await provider.submit(wan_request())).provider_job_id
    replicate_sim.complete(other)
    assert (await provider.status(other)).output.url == "http://169.254.169.254/latest/"
