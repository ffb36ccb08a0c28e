"""The vendors' own SDKs against the wave-2 simulators: proof the simulators speak the real wire protocols."""

from __future__ import annotations

import pytest


def test_runwayml_sdk_create_retrieve_delete(runway_sim):
    runwayml = pytest.importorskip("runwayml")
    client = runwayml.RunwayML(api_key="test-key", base_url=runway_sim.url, max_retries=0)
    task = client.text_to_video.create(model="gen4.5", prompt_text="a fox", ratio="1280:720", duration=5)
    runway_sim.run(task.id, progress=50)
    running = client.tasks.retrieve(task.id)
    assert running.status == "RUNNING" and running.progress == 0.5
    runway_sim.complete(task.id)
    done = client.tasks.retrieve(task.id)
    assert done.status == "SUCCEEDED" and done.output == [f"{runway_sim.url}/files/{task.id}.mp4"]
    image_task = client.image_to_video.create(
        model="gen4_turbo", prompt_image="https://i/a.png", ratio="1280:720", prompt_text="a fox", duration=5
    )
    client.tasks.delete(image_task.id)
    assert client.tasks.retrieve(image_task.id).status == "CANCELLED"
    runway_sim.fail(task.id, "boom")
    assert client.tasks.retrieve(task.id).failure == "boom"


def test_lumaai_sdk_create_get_credits(luma_sim):
    lumaai = pytest.importorskip("lumaai")
    client = lumaai.LumaAI(auth_token="test-key", base_url=luma_sim.url + "/dream-machine/v1", max_retries=0)
    generation = client.generations.create(prompt="a fox", model="ray-2", aspect_ratio="16:9", duration="5s")
    assert generation.state == "queued"
    luma_sim.complete(generation.id)
    done = client.generations.get(generation.id)
    assert done.state == "completed" and done.assets.video == f"{luma_sim.url}/files/{generation.id}.mp4"
    assert client.credits.get().credit_balance == 1500.0


def test_google_genai_sdk_poll_and_download(veo_sim):
    """google-genai 3.4 refuses `generate_videos` on the Gemini Developer API ("only supported in ... Agent Platform
    mode"; 2.19, read for docs/providers/veo.md, still sent predictLongRunning), so the job is started with plain
    HTTP in the SDK's own request shape, and the SDK polls the operation and downloads the file."""
    genai = pytest.importorskip("google.genai")
    import httpx
    from google.genai import types

    started = httpx.post(
        f"{veo_sim.url}/v1beta/models/veo-3.0-generate-001:predictLongRunning",
        headers={"x-goog-api-key": "test-key"},
        json={"instances": [{"prompt": "a fox"}], "parameters": {"sampleCount": 1, "durationSeconds": 8}},
    ).json()
    client = genai.Client(api_key="test-key", http_options={"base_url": veo_sim.url})
    operation = client.operations.get(types.GenerateVideosOperation(name=started["name"]))
    assert not operation.done
    veo_sim.complete(started["name"].rpartition("/")[2])
    operation = client.operations.get(operation)
    assert operation.done
    video = operation.response.generated_videos[0].video
    assert client.files.download(file=video) == veo_sim.video
    assert veo_sim.requests_to("download")[0].headers["x-goog-api-key"] == "test-key"


# the SDK marks videos.* deprecated (docs/providers/openai-videos.md#quirks)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_openai_sdk_videos_against_openai_videos_sim(openai_videos_sim):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(api_key="test-key", base_url=openai_videos_sim.url + "/v1", max_retries=0)
    video = client.videos.create(model="sora-2", prompt="a fox", seconds="4", size="1280x720")
    assert video.status == "queued"
    assert openai_videos_sim.requests_to("submit")[0].headers["content-type"].startswith("multipart/form-data")
    openai_videos_sim.run(video.id, progress=30)
    assert client.videos.retrieve(video.id).progress == 30
    openai_videos_sim.complete(video.id)
    assert client.videos.retrieve(video.id).status == "completed"
    assert client.videos.download_content(video.id).read() == openai_videos_sim.video
    assert client.videos.delete(video.id).deleted


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_openai_sdk_against_poe_sim_chat_and_videos(poe_sim):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(api_key="test-key", base_url=poe_sim.url + "/v1", max_retries=0)
    reply = client.chat.completions.create(
        model="Video-Generator-PRO", messages=[{"role": "user", "content": "a fox"}], stream=False
    )
    assert ".mp4" in reply.choices[0].message.content
    poe_sim.auto_advance = None
    video = client.videos.create(model="Veo-3", prompt="a fox", seconds="8", size="1280x720")
    poe_sim.complete(video.id)
    assert client.videos.retrieve(video.id).status == "completed"


def test_fal_client_over_loopback_tls(monkeypatch):
    """fal-client hard-codes https (docs/providers/fal.md#quirks): serve the simulator over TLS with a throwaway
    certificate."""
    fal_client = pytest.importorskip("fal_client")
    import fal_client.client as fal_module

    from tests.simulators.fal import FalSimulator

    with FalSimulator(tls=True) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        monkeypatch.setenv("SSL_CERT_FILE", str(sim.server.cert_file))  # httpx trusts it (trust_env)
        monkeypatch.setenv("FAL_KEY", "test-key")
        monkeypatch.setattr(fal_module, "QUEUE_URL_FORMAT", sim.url + "/")
        client = fal_client.SyncClient(key="test-key")
        handle = client.submit("fal-ai/kling-video/v1.6/pro/text-to-video", arguments={"prompt": "a fox"})
        assert isinstance(handle.status(), fal_client.Queued)
        sim.run(handle.request_id)
        assert isinstance(handle.status(with_logs=True), fal_client.InProgress)
        sim.complete(handle.request_id)
        assert isinstance(handle.status(), fal_client.Completed)
        assert handle.get()["video"]["url"].endswith(f"{handle.request_id}.mp4")
        other = client.submit("fal-ai/kling-video/v1.6/pro/text-to-video", arguments={"prompt": "a hare"})
        other.cancel()
        assert sim.jobs[other.request_id].state == "canceled"
