"""The official `openai` SDK, pointed at a running reelgate, creates, polls, downloads, lists, remixes and deletes."""

from __future__ import annotations

import io

import av
import httpx
import openai
import pytest
from PIL import Image

from tests.helpers import png_bytes
from tests.openai_compat.conftest import LiveServer

# The SDK marks its videos methods deprecated (OpenAI's own Sora shutdown); reelgate keeps serving the shape.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
FOX = "a red fox running through snow"


def sdk(live: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0, timeout=30)


def balance(live: LiveServer, key: str) -> dict[str, int]:
    response = httpx.get(f"{live.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    credits: dict[str, int] = response.json()["credits"]
    return credits


def assert_mp4(data: bytes, width: int, height: int) -> None:
    assert data[4:8] == b"ftyp"
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (width, height)
        assert sum(1 for _ in container.decode(stream)) > 0


def test_create_and_poll_download_list_and_delete(live: LiveServer) -> None:
    account = live.account(credits=100)
    client = sdk(live, account.key)

    video = client.videos.create_and_poll(model="sandbox-t2v", prompt=FOX, seconds="2", size="1280x720")
    assert video.status == "completed", video
    assert video.progress == 100 and video.error is None
    assert (video.model, video.seconds, video.size, video.prompt) == ("sandbox-t2v", "2", "1280x720", FOX)
    assert video.id.startswith("gen_") and client.videos.retrieve(video.id).id == video.id
    assert video.completed_at is not None and video.completed_at >= video.created_at
    # Billed like the native API: 2 credits per second at 720p, captured on success.
    assert balance(live, account.key) == {"available": 96, "held": 0}

    content = client.videos.download_content(video.id)
    assert_mp4(content.read(), 1280, 720)
    thumbnail = client.videos.download_content(video.id, variant="thumbnail").read()
    assert thumbnail[:3] == b"\xff\xd8\xff"

    second = client.videos.create(model="sandbox-t2v", prompt=FOX + " at dusk", seconds="1", size="720x1280")
    assert second.status == "queued" and second.size == "720x1280"
    listed = client.videos.list(limit=1)
    assert [v.id for v in listed.data] == [second.id] and listed.has_more
    assert [v.id for v in client.videos.list(limit=1, after=second.id).data] == [video.id]
    assert [v.id for v in client.videos.list(order="asc")] == [video.id, second.id]
    # The SDK's auto-pagination follows last_id page by page.
    assert [v.id for v in client.videos.list(limit=1)] == [second.id, video.id]

    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.download_content(video.id)
    assert [v.id for v in client.videos.list()] == [second.id]


def test_content_streams_ranges_without_compression(live: LiveServer) -> None:
    account = live.account()
    video = sdk(live, account.key).videos.create_and_poll(model="sandbox-t2v", prompt=FOX, seconds="1")
    headers = {"Authorization": f"Bearer {account.key}", "Accept-Encoding": "gzip, deflate"}
    url = f"{live.url}/v1/videos/{video.id}/content"
    whole = httpx.get(url, headers=headers)
    assert whole.status_code == 200 and "content-encoding" not in whole.headers
    assert whole.headers["content-type"] == "video/mp4"
    assert int(whole.headers["content-length"]) == len(whole.content)
    part = httpx.get(url, headers={**headers, "Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"


def test_image_to_video_with_input_reference_and_remix(live: LiveServer) -> None:
    account = live.account()
    client = sdk(live, account.key)
    image = ("start.png", png_bytes(640, 360), "image/png")
    video = client.videos.create_and_poll(
        model="sandbox-i2v", prompt="the red square slowly drifts", input_reference=image, seconds="1"
    )
    assert video.status == "completed", video
    assert_mp4(client.videos.download_content(video.id).read(), 1280, 720)

    remix = client.videos.remix(video.id, prompt="the red square spins quickly")
    assert remix.remixed_from_video_id == video.id and remix.id != video.id
    done = client.videos.poll(remix.id)
    assert done.status == "completed" and done.prompt == "the red square spins quickly"
    assert (done.seconds, done.size, done.model, done.remixed_from_video_id) == (
        "1",
        "1280x720",
        "sandbox-i2v",
        video.id,
    )


def test_sdk_errors_unknown_model_and_too_few_credits(live: LiveServer) -> None:
    poor = live.account(credits=3)
    client = sdk(live, poor.key)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.videos.create(model="sora-2", prompt=FOX)
    assert unknown.value.code == "model_not_found" and unknown.value.param == "model"

    with pytest.raises(openai.RateLimitError) as broke:
        client.videos.create(model="sandbox-t2v", prompt=FOX, seconds="5")
    assert broke.value.code == "insufficient_quota"
    assert broke.value.body["type"] == "insufficient_quota"  # type: ignore[index]
    assert balance(live, poor.key) == {"available": 3, "held": 0}

    with pytest.raises(openai.BadRequestError) as bad_size:
        client.videos.create(model="sandbox-t2v", prompt=FOX, size="1792x1024")
    assert bad_size.value.param == "size" and "1280x720" in bad_size.value.message

    with pytest.raises(openai.AuthenticationError):
        sdk(live, "rg_not-a-real-key").videos.list()


def test_deleting_a_running_video_cancels_and_refunds(live: LiveServer) -> None:
    account = live.account()
    client = sdk(live, account.key)
    video = client.videos.create(model="sandbox-t2v", prompt="a fox that never finishes [hang]", seconds="5")
    assert balance(live, account.key) == {"available": 90, "held": 10}
    assert client.videos.delete(video.id).deleted
    assert balance(live, account.key) == {"available": 100, "held": 0}
    native = httpx.get(f"{live.url}/api/v1/generations/{video.id}", headers={"Authorization": f"Bearer {account.key}"})
    assert native.json()["status"] == "canceled" and native.json()["credits_refunded"] == 10


def test_spritesheet_variant_is_a_grid_of_frames(live: LiveServer) -> None:
    account = live.account()
    client = sdk(live, account.key)
    video = client.videos.create_and_poll(model="sandbox-t2v", prompt=FOX, seconds="2", size="1280x720")
    assert video.status == "completed", video
    sheet = client.videos.download_content(video.id, variant="spritesheet").read()
    assert sheet[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(sheet)) as image:
        # 5 columns of 160x90 tiles (the 16:9 frame scaled down), 25 frames in 5 rows.
        assert image.size == (5 * 160, 5 * 90)
        # Evenly spaced frames differ: the sandbox draws a moving clip, so the first and last tiles are not alike.
        first, last = image.crop((0, 0, 160, 90)), image.crop((4 * 160, 4 * 90, 5 * 160, 5 * 90))
        assert list(first.getdata()) != list(last.getdata())
