"""The official `openrouter` SDK, pointed at a running reelgate: models, submit, poll, download, failures,
cancel, errors in OpenRouter's shape, and a signed callback."""

from __future__ import annotations

import base64
import io
import time
from dataclasses import replace

import av
import httpx
import pytest
from openrouter import OpenRouter, components, errors, utils

from tests.helpers import png_bytes
from tests.openai_compat.conftest import LiveServer

FOX = "a red fox running through snow"
TERMINAL = {"completed", "failed", "cancelled", "expired"}


def sdk(live: LiveServer, key: str) -> OpenRouter:
    # No retries: the SDK's default backs off on 5xx for up to an hour, which would hide a failure here.
    no_retries = utils.RetryConfig("none", utils.BackoffStrategy(1, 1, 1, 1), False)
    return OpenRouter(api_key=key, server_url=f"{live.url}/api/v1", retry_config=no_retries, timeout_ms=30_000)


def poll(client: OpenRouter, job_id: str, timeout: float = 30) -> components.VideoGenerationResponse:
    deadline = time.monotonic() + timeout
    while True:
        job = client.video_generation.get_generation(job_id=job_id)
        if job.status in TERMINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def balance(live: LiveServer, key: str) -> dict[str, int]:
    response = httpx.get(f"{live.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    credits: dict[str, int] = response.json()["credits"]
    return credits


def video_size(data: bytes) -> tuple[int, int]:
    assert data[4:8] == b"ftyp"
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert sum(1 for _ in container.decode(stream)) > 0
        return stream.codec_context.width, stream.codec_context.height


def data_url(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


def test_models_list_from_the_catalog(live: LiveServer) -> None:
    account = live.account()
    models = {m.id: m for m in sdk(live, account.key).video_generation.list_videos_models().data}
    t2v, i2v = models["sandbox-t2v"], models["sandbox-i2v"]
    assert t2v.name.startswith("Sandbox preview")
    assert t2v.supported_resolutions == ["480p", "720p", "1080p"]
    assert t2v.supported_aspect_ratios == ["16:9", "9:16", "1:1"]
    assert "1280x720" in (t2v.supported_sizes or []) and "720x1280" in (t2v.supported_sizes or [])
    assert t2v.supported_durations == list(range(1, 11))
    assert (t2v.seed, t2v.generate_audio, t2v.supported_frame_images) == (True, False, [])
    assert i2v.supported_frame_images == ["first_frame", "last_frame"]
    # The same quote as everywhere: 2 credits a second, 1.5x at 1080p.
    assert t2v.pricing_skus is not None
    assert (t2v.pricing_skus["720p-5s"], t2v.pricing_skus["1080p-4s"]) == ("10", "12")
    # Only models that can be sold now: no provider keys here, so only the sandbox is listed.
    assert set(models) == {"sandbox-t2v", "sandbox-i2v"}


def test_text_to_video_submit_poll_download(live: LiveServer) -> None:
    account = live.account(credits=100)
    client = sdk(live, account.key)
    submitted = client.video_generation.generate(
        model="sandbox-t2v", prompt=FOX, duration=2, resolution="720p", aspect_ratio="9:16", seed=7
    )
    assert submitted.status == "pending" and submitted.polling_url == f"/api/v1/videos/{submitted.id}"
    assert balance(live, account.key) == {"available": 96, "held": 4}

    done = poll(client, submitted.id)
    assert done.status == "completed", done
    assert done.error is None and done.generation_id == submitted.id
    assert done.unsigned_urls == [f"{live.url}/api/v1/videos/{submitted.id}/content?index=0"]
    assert done.usage is not None and done.usage.cost == pytest.approx(0.04)  # 4 credits at US$0.01
    assert balance(live, account.key) == {"available": 96, "held": 0}

    content = client.video_generation.get_video_content(job_id=submitted.id, index=0)
    assert content.headers["content-type"] == "video/mp4"
    assert video_size(content.read()) == (720, 1280)
    # The unsigned URL needs the key, like OpenRouter's.
    assert httpx.get(done.unsigned_urls[0]).status_code == 401


def test_first_frame_as_data_url_and_size(live: LiveServer) -> None:
    account = live.account()
    client = sdk(live, account.key)
    first = {"type": "image_url", "image_url": {"url": data_url(png_bytes(640, 360))}, "frame_type": "first_frame"}
    submitted = client.video_generation.generate(
        model="sandbox-i2v", prompt="the red square slowly drifts", duration=1, size="1280x720", frame_images=[first]
    )
    done = poll(client, submitted.id)
    assert done.status == "completed", done
    assert video_size(client.video_generation.get_video_content(job_id=done.id).read()) == (1280, 720)
    native = httpx.get(f"{live.url}/api/v1/generations/{done.id}", headers={"Authorization": f"Bearer {account.key}"})
    assert native.json()["start_image"] and native.json()["resolution"] == "720p"


def test_failure_is_refunded_and_its_error_shown_verbatim(live: LiveServer) -> None:
    account = live.account()
    client = sdk(live, account.key)
    submitted = client.video_generation.generate(model="sandbox-t2v", prompt="a fox that will not render [fail]")
    done = poll(client, submitted.id)
    assert done.status == "failed"
    native = httpx.get(f"{live.url}/api/v1/generations/{done.id}", headers={"Authorization": f"Bearer {account.key}"})
    assert done.error == native.json()["error"]["message"] and done.error
    assert done.usage is not None and done.usage.cost == 0
    assert balance(live, account.key) == {"available": 100, "held": 0}
    with pytest.raises(errors.ConflictResponseError) as not_ready:
        client.video_generation.get_video_content(job_id=done.id)
    assert not_ready.value.data.error.code == 409


def test_cancel_shows_cancelled_and_refunds(live: LiveServer) -> None:
    account = live.account()
    client = sdk(live, account.key)
    submitted = client.video_generation.generate(model="sandbox-t2v", prompt="a fox that never finishes [hang]")
    assert balance(live, account.key) == {"available": 90, "held": 10}
    headers = {"Authorization": f"Bearer {account.key}"}
    assert httpx.post(f"{live.url}/api/v1/generations/{submitted.id}/cancel", headers=headers).status_code == 200
    done = client.video_generation.get_generation(job_id=submitted.id)
    assert done.status == "cancelled" and done.error == "Canceled by the user."
    assert balance(live, account.key) == {"available": 100, "held": 0}


def test_errors_in_openrouter_shape(live: LiveServer) -> None:
    poor = live.account(credits=3)
    client = sdk(live, poor.key)
    with pytest.raises(errors.PaymentRequiredResponseError) as broke:
        client.video_generation.generate(model="sandbox-t2v", prompt=FOX, duration=5)
    assert broke.value.data.error.code == 402 and broke.value.status_code == 402

    with pytest.raises(errors.BadRequestResponseError) as bad:
        client.video_generation.generate(model="sandbox-t2v", prompt=FOX, duration=11)
    assert bad.value.data.error.code == 400
    assert bad.value.data.error.metadata == {
        "reelgate_code": "validation_error",
        "field": "duration",
        "allowed": list(range(1, 11)),
    }
    with pytest.raises(errors.BadRequestResponseError) as unsupported:
        client.video_generation.generate(model="sandbox-t2v", prompt=FOX, previous_job_id="gen_1")
    assert "previous job" in unsupported.value.message
    assert unsupported.value.data.error.metadata == {
        "reelgate_code": "unsupported_parameter",
        "field": "previous_job_id",
    }
    with pytest.raises(errors.BadRequestResponseError) as no_frames:
        first = {"type": "image_url", "image_url": {"url": data_url(png_bytes())}, "frame_type": "first_frame"}
        client.video_generation.generate(model="sandbox-t2v", prompt=FOX, frame_images=[first])
    assert no_frames.value.data.error.metadata["field"] == "frame_images"
    with pytest.raises(errors.BadRequestResponseError) as bad_size:
        client.video_generation.generate(model="sandbox-t2v", prompt=FOX, size="1792x1024")
    assert "1280x720" in bad_size.value.message
    assert balance(live, poor.key) == {"available": 3, "held": 0}

    with pytest.raises(errors.NotFoundResponseError) as unknown_model:
        client.video_generation.generate(model="google/veo-3.1", prompt=FOX)
    assert unknown_model.value.data.error.code == 404
    with pytest.raises(errors.NotFoundResponseError):
        client.video_generation.get_generation(job_id="gen_does_not_exist")
    with pytest.raises(errors.UnauthorizedResponseError) as unauthorized:
        sdk(live, "rg_not-a-real-key").video_generation.get_generation(job_id="gen_x")
    assert unauthorized.value.data.error.code == 401


def test_too_many_jobs_at_once_is_a_429_with_retry_after(live: LiveServer) -> None:
    live.ctx.config = replace(live.ctx.config, max_in_flight=1)
    account = live.account()
    client = sdk(live, account.key)
    client.video_generation.generate(model="sandbox-t2v", prompt="a fox that never finishes [hang]", duration=1)
    with pytest.raises(errors.TooManyRequestsResponseError) as busy:
        client.video_generation.generate(model="sandbox-t2v", prompt=FOX, duration=1)
    assert busy.value.data.error.code == 429 and int(busy.value.headers["retry-after"]) > 0
    assert busy.value.data.error.metadata is not None
    assert busy.value.data.error.metadata["reelgate_code"] == "rate_limited"
