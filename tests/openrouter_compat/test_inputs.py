"""Frame images by URL (through the SSRF guard and the upload checks) and a signed callback, through the SDK."""

from __future__ import annotations

import time

import httpx
import pytest
from openrouter import errors

from tests.client_webhooks.conftest import Receiver
from tests.openai_compat.conftest import LiveServer
from tests.openrouter_compat.test_sdk import poll, sdk
from tests.simulators.base import AppServer


def test_first_and_last_frame_by_url(live: LiveServer, images: AppServer) -> None:
    account = live.account()
    client = sdk(live, account.key)
    frames = [
        {"type": "image_url", "image_url": {"url": f"{images.url}/start.png"}, "frame_type": "first_frame"},
        {"type": "image_url", "image_url": {"url": f"{images.url}/start.png"}, "frame_type": "last_frame"},
    ]
    submitted = client.video_generation.generate(model="sandbox-i2v", prompt="a green square", frame_images=frames)
    assert poll(client, submitted.id).status == "completed"
    native = httpx.get(
        f"{live.url}/api/v1/generations/{submitted.id}", headers={"Authorization": f"Bearer {account.key}"}
    ).json()
    assert native["start_image"] and native["end_image"]


def test_input_reference_is_the_start_image_and_bad_images_are_refused(live: LiveServer, images: AppServer) -> None:
    account = live.account()
    client = sdk(live, account.key)
    reference = {"type": "image_url", "image_url": {"url": f"{images.url}/start.png"}}
    submitted = client.video_generation.generate(
        model="sandbox-i2v", prompt="a green square", duration=1, input_references=[reference]
    )
    assert poll(client, submitted.id).status == "completed"

    not_image = {
        "type": "image_url",
        "image_url": {"url": f"{images.url}/not-an-image.png"},
        "frame_type": "first_frame",
    }
    with pytest.raises(errors.BadRequestResponseError) as refused:
        client.video_generation.generate(model="sandbox-i2v", prompt="a green square", frame_images=[not_image])
    assert refused.value.data.error.code == 400
    private = {"type": "image_url", "image_url": {"url": "http://10.0.0.1/a.png"}, "frame_type": "first_frame"}
    with pytest.raises(errors.BadRequestResponseError) as ssrf:
        client.video_generation.generate(model="sandbox-i2v", prompt="a green square", frame_images=[private])
    assert "not allowed" in ssrf.value.message
    audio = {"type": "audio_url", "audio_url": {"url": f"{images.url}/a.mp3"}}
    with pytest.raises(errors.BadRequestResponseError) as not_supported:
        client.video_generation.generate(model="sandbox-i2v", prompt="a green square", input_references=[audio])
    assert "image_url parts only" in not_supported.value.message


def test_signed_callback_on_completion(live: LiveServer, receiver: Receiver) -> None:
    account = live.account()
    headers = {"Authorization": f"Bearer {account.key}"}
    secret = httpx.get(f"{live.url}/api/v1/callback-secret", headers=headers).json()["secret"]
    receiver.secrets["/done"] = [secret]
    client = sdk(live, account.key)
    submitted = client.video_generation.generate(
        model="sandbox-t2v", prompt="a fox with a callback", duration=1, callback_url=f"{receiver.url}/done"
    )
    assert poll(client, submitted.id).status == "completed"
    deadline = time.monotonic() + 15
    while not receiver.accepted_on("/done") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(receiver.accepted_on("/done")) == 1 and not receiver.rejected
    (payload,) = receiver.payloads.values()
    assert payload["type"] == "generation.succeeded"
    assert payload["data"]["id"] == submitted.id
