"""PoeProvider and OpenAIVideosProvider against their simulators: chat bots, /v1/videos, enhancement, upstreams."""

from __future__ import annotations

import pytest

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import ProviderConfig, ProviderRejected, RetryLater, SubmitOutcomeUnknown
from reelgate.providers.openai_videos import OpenAIVideosProvider
from reelgate.providers.poe import PoeProvider
from reelgate.providers.transfer import first_video_url
from tests.providers.helpers import PNG_1PX, image, job_request
from tests.simulators.base import Fault


@pytest.fixture
async def poe(poe_sim, tmp_path):
    adapter = PoeProvider(
        ProviderConfig(api_key="test-key", base_url=poe_sim.url + "/v1", extra={"spool_dir": str(tmp_path)})
    )
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def videos(openai_videos_sim, tmp_path):
    adapter = OpenAIVideosProvider(
        ProviderConfig(api_key="test-key", base_url=openai_videos_sim.url + "/v1", extra={"spool_dir": str(tmp_path)})
    )
    yield adapter
    await adapter.aclose()


async def test_poe_chat_bot_is_synchronous(poe, poe_sim):
    result = await poe.submit(job_request(model_ref="Video-Generator-PRO", duration=15))
    [chat] = poe_sim.chats
    assert chat == {
        "model": "Video-Generator-PRO",
        "messages": [{"role": "user", "content": "a lighthouse at dusk"}],
        "stream": False,
    }
    update = await poe.status(result.provider_job_id)
    assert update.state is ProviderState.SUCCEEDED and update.output.url.startswith(poe_sim.url + "/files/chatcmpl-")
    assert len(poe_sim.requests) == 1  # status needs no call: the URL came with the reply


async def test_poe_chat_reply_without_url_fails_and_long_urls_are_kept(poe, poe_sim):
    poe_sim.media_reply = "Sorry, I can't make that video."
    with pytest.raises(ProviderRejected) as info:
        await poe.submit(job_request(model_ref="Video-Generator-PRO"))
    assert info.value.code == ProviderRejected.FAILED
    poe_sim.media_reply = "![video](https://cdn.poe.test/v/" + "a" * 300 + ".mp4?sig=1)"
    result = await poe.submit(job_request(model_ref="Video-Generator-PRO"))
    assert result.provider_job_id.startswith("chat#") and len(result.provider_job_id) <= 255
    assert (await poe.status(result.provider_job_id)).output.url.endswith(".mp4?sig=1")
    lost = await PoeProvider(ProviderConfig(api_key="k")).status(result.provider_job_id)
    assert lost.state is ProviderState.FAILED


def test_first_video_url_prefers_video_links():
    text = "See https://poe.com/about and [clip](https://cdn.x/v/abc.MP4?x=1)."
    assert first_video_url(text) == "https://cdn.x/v/abc.MP4?x=1"
    assert first_video_url("plain https://cdn.x/file/123.") == "https://cdn.x/file/123"
    assert first_video_url("nothing here") is None


async def test_poe_videos_bots_use_the_openai_videos_shape(poe, poe_sim):
    result = await poe.submit(job_request(model_ref="Veo-3", duration=8, start_image=image()))
    [sent] = poe_sim.requests_to("submit")
    assert sent.headers["content-type"].startswith("multipart/form-data")
    fields = poe_sim.jobs[result.provider_job_id].extra["fields"]
    assert {k: fields[k] for k in ("model", "prompt", "seconds", "size")} == {
        "model": "Veo-3",
        "prompt": "a lighthouse at dusk",
        "seconds": "8",
        "size": "1280x720",
    }
    assert fields["input_reference"]["size"] == len(PNG_1PX)
    poe_sim.run(result.provider_job_id, progress=40)
    running = await poe.status(result.provider_job_id)
    assert (running.state, running.progress) == (ProviderState.RUNNING, 40)
    poe_sim.complete(result.provider_job_id)
    done = await poe.status(result.provider_job_id)
    assert done.output.path and open(done.output.path, "rb").read() == poe_sim.video
    await poe.cancel(result.provider_job_id)  # DELETE, best effort


async def test_poe_enhance_prompt_uses_a_text_bot(poe, poe_sim):
    enhanced = await poe.enhance_prompt("a fox in snow")
    assert enhanced.startswith("Cinematic dolly shot: a fox in snow")
    [chat] = poe_sim.chats
    assert chat["model"] == "GPT-4o-Mini" and chat["messages"][0]["role"] == "system"
    poe_sim.text_reply = "   "
    assert await poe.enhance_prompt("a fox in snow") == "a fox in snow"


async def test_poe_errors(poe, poe_sim):
    poe_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as info:
        await poe.submit(job_request(model_ref="Video-Generator-PRO"))
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT
    assert (await poe.health()).out_of_credit is False  # /models still answers
    poe_sim.out_of_credit = False
    poe_sim.faults.add("chat", Fault.error(429, retry_after="2"))
    with pytest.raises(RetryLater):
        await poe.submit(job_request(model_ref="Video-Generator-PRO"))
    poe_sim.faults.add("chat", Fault.reset())
    with pytest.raises(SubmitOutcomeUnknown):
        await poe.submit(job_request(model_ref="Video-Generator-PRO"))


async def test_openai_videos_lifecycle_and_failures(videos, openai_videos_sim):
    result = await videos.submit(job_request(model_ref="sora-2", duration=4, width=720, height=1280))
    assert result.provider_job_id.startswith("video_")
    assert (await videos.status(result.provider_job_id)).state is ProviderState.QUEUED
    openai_videos_sim.complete(result.provider_job_id)
    done = await videos.status(result.provider_job_id)
    assert done.state is ProviderState.SUCCEEDED and done.output.content_type == "video/mp4"
    assert [r.query for r in openai_videos_sim.requests_to("content")] == [{"variant": "video"}]
    again = await videos.status(result.provider_job_id)  # the spooled file is reused, not fetched twice
    assert again.output.path == done.output.path and len(openai_videos_sim.requests_to("content")) == 1
    bad = (await videos.submit(job_request(model_ref="sora-2"))).provider_job_id
    openai_videos_sim.fail(bad, "Your request was blocked by our moderation system")
    failed = await videos.status(bad)
    assert (failed.state, failed.error_code) == (ProviderState.FAILED, ProviderRejected.CONTENT_POLICY)


async def test_openai_videos_insufficient_quota_is_out_of_credit(videos, openai_videos_sim):
    openai_videos_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as info:
        await videos.submit(job_request(model_ref="sora-2"))
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT
    openai_videos_sim.out_of_credit = False
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    openai_videos_sim.faults.add("submit", Fault.error(429, body=body, retry_after="1"))
    with pytest.raises(RetryLater):
        await videos.submit(job_request(model_ref="sora-2"))


async def test_openai_videos_per_model_upstream(openai_videos_sim, poe_sim, tmp_path):
    """`extra["<model>.base_url"]` sends one catalog entry to another server; its job id remembers where."""
    adapter = OpenAIVideosProvider(
        ProviderConfig(
            api_key="test-key",
            base_url=openai_videos_sim.url + "/v1",
            extra={
                "Sora-2-Pro.base_url": poe_sim.url + "/v1",
                "Sora-2-Pro.api_key": "test-key",
                "spool_dir": str(tmp_path),
            },
        )
    )
    try:
        routed = await adapter.submit(job_request(model_ref="Sora-2-Pro"))
        model, _, video_id = routed.provider_job_id.partition("|")
        assert model == "Sora-2-Pro" and video_id in poe_sim.jobs and not openai_videos_sim.jobs
        poe_sim.complete(video_id)
        assert (await adapter.status(routed.provider_job_id)).state is ProviderState.SUCCEEDED
        await adapter.cancel(routed.provider_job_id)
        assert poe_sim.requests_to("delete")
    finally:
        await adapter.aclose()
