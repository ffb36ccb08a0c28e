"""RunwayProvider, LumaProvider and VeoProvider against their simulators."""

from __future__ import annotations

import base64
import json

import pytest

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import ProviderConfig, ProviderRejected, RetryLater, SubmitOutcomeUnknown, WebhookRejected
from reelgate.providers.luma import LumaProvider
from reelgate.providers.runway import RunwayProvider
from reelgate.providers.veo import VeoProvider
from tests.providers.helpers import PNG_1PX, image, job_request
from tests.simulators.base import Fault


@pytest.fixture
async def runway(runway_sim):
    adapter = RunwayProvider(ProviderConfig(api_key="test-key", base_url=runway_sim.url))
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def luma(luma_sim):
    adapter = LumaProvider(ProviderConfig(api_key="test-key", base_url=luma_sim.url + "/dream-machine/v1"))
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def veo(veo_sim, tmp_path):
    adapter = VeoProvider(ProviderConfig(api_key="test-key", base_url=veo_sim.url, extra={"spool_dir": str(tmp_path)}))
    yield adapter
    await adapter.aclose()


async def test_runway_text_and_image_routes(runway, runway_sim):
    await runway.submit(job_request(model_ref="gen4.5", duration=5, seed=9))
    await runway.submit(
        job_request(model_ref="gen4_turbo", start_image=image("https://i/a.png"), end_image=image("https://i/b.png"))
    )
    await runway.submit(
        job_request(model_ref="gen4_turbo", aspect_ratio="9:16", width=720, height=1280, start_image=image())
    )
    t2v, both, inline = (r.json() for r in runway_sim.requests_to("submit"))
    assert t2v == {
        "model": "gen4.5",
        "promptText": "a lighthouse at dusk",
        "ratio": "1280:720",
        "duration": 5,
        "seed": 9,
    }
    assert both["promptImage"] == [
        {"uri": "https://i/a.png", "position": "first"},
        {"uri": "https://i/b.png", "position": "last"},
    ]
    assert inline["ratio"] == "720:1280" and inline["promptImage"].startswith("data:image/png;base64,")
    paths = [r.path for r in runway_sim.requests_to("submit")]
    assert paths == ["/v1/text_to_video", "/v1/image_to_video", "/v1/image_to_video"]
    assert all(r.headers["x-runway-version"] == "2024-11-06" for r in runway_sim.requests)


async def test_runway_task_states_and_cancel(runway, runway_sim):
    ids = [(await runway.submit(job_request(model_ref="gen4.5"))).provider_job_id for _ in range(4)]
    assert (await runway.status(ids[0])).state is ProviderState.QUEUED
    runway_sim.throttle(ids[0])
    assert (await runway.status(ids[0])).state is ProviderState.QUEUED
    runway_sim.run(ids[1], progress=35)
    running = await runway.status(ids[1])
    assert (running.state, running.progress) == (ProviderState.RUNNING, 35)
    runway_sim.complete(ids[1])
    assert (await runway.status(ids[1])).output.url.endswith(f"{ids[1]}.mp4")
    runway_sim.failure_code = "SAFETY.INPUT.TEXT"
    runway_sim.fail(ids[2], "Prompt rejected")
    failed = await runway.status(ids[2])
    assert (failed.state, failed.error_code) == (ProviderState.FAILED, ProviderRejected.CONTENT_POLICY)
    await runway.cancel(ids[3])
    assert (await runway.status(ids[3])).state is ProviderState.CANCELED
    await runway.cancel("gone")  # 404 on cancel is not an error


async def test_runway_errors(runway, runway_sim):
    runway_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as info:
        await runway.submit(job_request(model_ref="gen4.5"))
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT
    runway_sim.out_of_credit = False
    runway_sim.faults.add("submit", Fault.error(429, retry_after="6"))
    with pytest.raises(RetryLater) as retry:
        await runway.submit(job_request(model_ref="gen4.5"))
    assert retry.value.after == 6
    runway_sim.faults.add("submit", Fault.malformed())
    with pytest.raises(SubmitOutcomeUnknown):
        await runway.submit(job_request(model_ref="gen4.5"))


async def test_luma_lifecycle_and_callbacks(luma, luma_sim, receiver):
    req = job_request(model_ref="ray-2", duration=5, start_image=image("https://i/a.png"), webhook_url=receiver.url)
    job_id = (await luma.submit(req)).provider_job_id
    [sent] = luma_sim.requests_to("submit")
    assert sent.path == "/dream-machine/v1/generations/video"
    assert sent.json() == {
        "model": "ray-2",
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "16:9",
        "duration": "5s",
        "resolution": "720p",
        "callback_url": receiver.url,
        "keyframes": {"frame0": {"type": "image", "url": "https://i/a.png"}},
    }
    assert (await luma.status(job_id)).state is ProviderState.QUEUED
    luma_sim.run(job_id)
    luma_sim.complete(job_id)
    events = [await luma.verify_and_parse_webhook(r.headers, r.body, r.query) for r in receiver.wait_for(2)]
    assert [e.update.state for e in events] == [ProviderState.RUNNING, ProviderState.SUCCEEDED]
    assert events[1].update.output.url.endswith(f"{job_id}.mp4") and events[1].delivery_id == f"{job_id}:succeeded"
    assert luma.unsigned_webhooks
    with pytest.raises(WebhookRejected):
        await luma.verify_and_parse_webhook({}, b"{not json", {})
    await luma.cancel(job_id)  # no cancel endpoint (docs/providers/luma.md#cancel): nothing is sent
    assert not luma_sim.requests_to("delete")


async def test_luma_failure_credit_and_health(luma, luma_sim):
    job_id = (await luma.submit(job_request(model_ref="ray-2", duration=9))).provider_job_id
    assert luma_sim.requests_to("submit")[0].json()["duration"] == "9s"
    luma_sim.fail(job_id, "Prompt failed moderation")
    failed = await luma.status(job_id)
    assert (failed.state, failed.error_code) == (ProviderState.FAILED, ProviderRejected.CONTENT_POLICY)
    assert (await luma.health()).healthy
    luma_sim.out_of_credit = True
    assert (await luma.health()).out_of_credit
    with pytest.raises(ProviderRejected) as info:
        await luma.submit(job_request(model_ref="ray-2"))
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT


async def test_veo_operation_lifecycle_and_download(veo, veo_sim):
    req = job_request(
        model_ref="veo-3.0-generate-001",
        duration=8,
        negative_prompt="text",
        seed=5,
        start_image=image(),
        options={"personGeneration": "allow_adult"},
    )
    name = (await veo.submit(req)).provider_job_id
    [sent] = veo_sim.requests_to("submit")
    assert sent.path == "/v1beta/models/veo-3.0-generate-001:predictLongRunning"
    assert sent.json() == {
        "instances": [
            {
                "prompt": "a lighthouse at dusk",
                "image": {"bytesBase64Encoded": base64.b64encode(PNG_1PX).decode(), "mimeType": "image/png"},
            }
        ],
        "parameters": {
            "sampleCount": 1,
            "durationSeconds": 8,
            "aspectRatio": "16:9",
            "resolution": "720p",
            "negativePrompt": "text",
            "personGeneration": "allow_adult",
        },
    }
    assert name.startswith("models/veo-3.0-generate-001/operations/")
    assert (await veo.status(name)).state is ProviderState.RUNNING
    op_id = name.rpartition("/")[2]
    veo_sim.complete(op_id)
    done = await veo.status(name)
    assert done.state is ProviderState.SUCCEEDED and open(done.output.path, "rb").read() == veo_sim.video
    [download] = veo_sim.requests_to("download")
    assert download.path == f"/v1beta/files/{veo_sim.jobs[op_id].extra['file_id']}:download"  # never host "x"
    veo_sim.inline = True
    assert (await veo.status(name)).output.base64_data == base64.b64encode(veo_sim.video).decode()


async def test_veo_failures_and_errors(veo, veo_sim):
    ids = [(await veo.submit(job_request(model_ref="veo-2.0-generate-001"))).provider_job_id for _ in range(2)]
    veo_sim.fail(ids[0].rpartition("/")[2], "internal error")
    assert (await veo.status(ids[0])).error_message == "internal error"
    veo_sim.filtered = True
    veo_sim.complete(ids[1].rpartition("/")[2])
    filtered = await veo.status(ids[1])
    assert (filtered.state, filtered.error_code) == (ProviderState.FAILED, ProviderRejected.CONTENT_POLICY)
    veo_sim.faults.add("submit", Fault.error(429, body=json.loads(json.dumps(veo_sim.out_of_credit_body))))
    with pytest.raises(RetryLater):  # RESOURCE_EXHAUSTED is a quota, retried later
        await veo.submit(job_request(model_ref="veo-2.0-generate-001"))
    with pytest.raises(ProviderRejected) as info:
        await veo.status("models/veo-2.0-generate-001/operations/missing")
    assert info.value.code == ProviderRejected.NOT_FOUND
