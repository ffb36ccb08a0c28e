"""ModelsLabProvider against the ModelsLab simulator: routes per model, key in the body, eta, errors, webhooks."""

from __future__ import annotations

import json

import pytest

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import ProviderConfig, ProviderRejected, RetryLater, SubmitOutcomeUnknown, WebhookRejected
from reelgate.providers.modelslab import ModelsLabProvider
from tests.providers.helpers import image, job_request
from tests.simulators.base import Fault

HOOK = "http://127.0.0.1:9/webhooks/modelslab?t=x"


@pytest.fixture
async def provider(modelslab_sim):
    adapter = ModelsLabProvider(ProviderConfig(api_key="test-key", base_url=modelslab_sim.url + "/api"))
    yield adapter
    await adapter.aclose()


def req(model_ref, **overrides):
    values = {"model_ref": model_ref, "duration": 8, "webhook_url": HOOK, "seed": 7}
    values.update(overrides)
    return job_request(**values)


@pytest.mark.parametrize(
    ("model_ref", "with_image", "path", "model_id"),
    [
        ("veo3", False, "/api/v7/video-fusion/text-to-video", "veo3"),
        ("veo2", True, "/api/v7/video-fusion/image-to-video", "veo2"),
        ("seedance-t2v", False, "/api/v7/video-fusion/text-to-video", "seedance-t2v"),
        ("v7:kling-v2-5", False, "/api/v7/video-fusion/text-to-video", "kling-v2-5"),
        ("text2video_ultra", False, "/api/v6/video/text2video_ultra", "text2video_ultra"),
        ("wan2.2", False, "/api/v6/video/text2video", "wan2.2"),
        ("wan2.2", True, "/api/v6/video/img2video", "wan2.2"),
    ],
)
async def test_each_model_goes_to_its_route(provider, modelslab_sim, model_ref, with_image, path, model_id):
    start = image("https://img/a.png") if with_image else None
    result = await provider.submit(req(model_ref, start_image=start, negative_prompt="blur"))
    [sent] = modelslab_sim.requests_to("submit")
    body = sent.json()
    assert sent.path == path and body["model_id"] == model_id
    # docs/providers/modelslab.md#authentication: the key travels in the body and no header carries it.
    assert body["key"] == "test-key" and "authorization" not in sent.headers
    assert body["prompt"] == "a lighthouse at dusk" and body["negative_prompt"] == "blur" and body["seed"] == 7
    assert body["webhook"] == HOOK and body["track_id"] == "gen_1"
    if with_image:
        assert body["init_image"] == "https://img/a.png"
    if path.startswith("/api/v7"):
        assert (body["aspect_ratio"], body["resolution"], body["duration"]) == ("16:9", "720p", 8)
    else:
        assert (body["num_frames"], body["fps"], body["output_type"]) == (128, 16, "mp4")
    assert result.provider_job_id.isdigit() and "key" not in result.raw


async def test_fetch_maps_eta_future_links_success_and_both_failure_words(provider, modelslab_sim):
    job_id = (await provider.submit(req("veo3"))).provider_job_id
    running = await provider.status(job_id)
    assert running.state is ProviderState.RUNNING and running.poll_after_seconds == 12
    assert running.raw["future_links"] == [f"{modelslab_sim.url}/files/{job_id}.mp4"]
    [fetch] = modelslab_sim.requests_to("status")
    assert fetch.path == f"/api/v6/video/fetch/{job_id}" and fetch.json() == {"key": "test-key"}
    modelslab_sim.complete(job_id)
    done = await provider.status(job_id)
    assert done.state is ProviderState.SUCCEEDED and done.output.url.endswith(f"/files/{job_id}.mp4")
    other = (await provider.submit(req("veo3"))).provider_job_id
    modelslab_sim.fail(other, "NSFW content detected")
    failed = await provider.status(other)
    assert (failed.state, failed.error_code) == (ProviderState.FAILED, ProviderRejected.CONTENT_POLICY)


def test_success_without_output_uses_future_links_or_waits(provider):
    from reelgate.providers.modelslab import parse_video

    linked = parse_video({"status": "success", "id": 5, "output": [], "future_links": ["https://cdn/x.mp4"]})
    assert linked.output.url == "https://cdn/x.mp4"
    empty = parse_video({"status": "success", "id": 5, "output": []})
    assert empty.state is ProviderState.RUNNING and empty.poll_after_seconds == 5.0
    failed = parse_video({"status": "failed", "id": 5, "messege": "timeout"})
    assert (failed.state, failed.error_message) == (ProviderState.FAILED, "timeout")


@pytest.mark.parametrize("soft", [False, True], ids=["http-status", "http-200-status-error"])
async def test_out_of_credit_and_queue_limit(provider, modelslab_sim, soft):
    modelslab_sim.soft_errors = soft
    modelslab_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(req("veo3"))
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT
    modelslab_sim.out_of_credit = False
    modelslab_sim.queue_limit = 1
    await provider.submit(req("veo3"))
    with pytest.raises(RetryLater) as retry:
        await provider.submit(req("veo3"))
    assert retry.value.after == 30  # docs/providers/modelslab.md#limits-and-errors: `retry_after` in the 429 body


async def test_transport_and_auth_errors(provider, modelslab_sim):
    modelslab_sim.faults.add("submit", Fault.reset())
    with pytest.raises(SubmitOutcomeUnknown):
        await provider.submit(req("wan2.2"))
    modelslab_sim.faults.add("status", Fault.error(503))
    with pytest.raises(RetryLater):
        await provider.status("1")
    modelslab_sim.api_key = "rotated"
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(req("wan2.2"))
    assert info.value.code == ProviderRejected.AUTH


async def test_unsigned_webhooks_parse_success_and_failed(provider, modelslab_sim, receiver):
    assert provider.unsigned_webhooks
    ok = (await provider.submit(req("veo3", webhook_url=receiver.url))).provider_job_id
    bad = (await provider.submit(req("veo3", webhook_url=receiver.url))).provider_job_id
    modelslab_sim.complete(ok)
    modelslab_sim.fail(bad, "out of memory")
    events = [await provider.verify_and_parse_webhook(r.headers, r.body, r.query) for r in receiver.wait_for(2)]
    by_id = {e.update.provider_job_id: e for e in events}
    assert by_id[ok].update.output.url.endswith(f"{ok}.mp4") and by_id[ok].delivery_id == f"{ok}:success"
    assert by_id[bad].update.state is ProviderState.FAILED and by_id[bad].update.error_message == "out of memory"
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook({}, json.dumps({"status": "weird"}).encode(), {})
