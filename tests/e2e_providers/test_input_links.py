"""Start images on RunPod through the HTTP API: a large one travels as a signed input link that the simulator
fetches like our worker does (its inline form would pass RunPod's 10 MB body cap), a small one inline; the link
opens only that job's upload, and only while it is signed, unexpired and the job runs."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from reelgate.providers.base import ImageInput
from reelgate.providers.runpod import RUN_BODY_LIMIT, ltx_input
from reelgate.services import input_links
from reelgate.storage_s3 import S3Store
from tests.conftest import make_account
from tests.e2e_providers.conftest import Harness, Start, with_query
from tests.helpers import generation_row, png_bytes
from tests.providers.helpers import job_request
from tests.simulators.base import Job
from tests.storage.conftest import aws_env, make_bucket, s3_endpoint  # noqa: F401 - fixtures used here

pytestmark = pytest.mark.parametrize("provider_name", ["runpod"])

PROMPT = "the noise settles into a lighthouse"


def noisy_png(width: int = 1900, height: int = 1800) -> bytes:
    """A valid PNG of random pixels: noise does not compress, so the file is about width x height x 3 bytes."""
    pixels = random.Random(7).randbytes(width * height * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def large_png() -> bytes:
    data = noisy_png()
    # Over RunPod's 10 MB by itself (13.7 MB as base64), under reelgate's 10 MiB upload cap.
    assert RUN_BODY_LIMIT < len(data) < 10 * 1024 * 1024
    return data


async def upload(h: Harness, data: bytes, headers: dict[str, str] | None = None) -> str:
    response = await h.client.post(
        "/api/v1/uploads", headers=headers or h.headers, files={"file": ("start.png", data, "image/png")}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def create_i2v(h: Harness, upload_id: str) -> str:
    response = await h.client.post(
        "/api/v1/generations",
        headers=h.headers,
        json={"model": "ltx-2-i2v", "prompt": PROMPT, "duration": 10, "resolution": "720p", "start_image": upload_id},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def image_taken(job: Job) -> bytes | None:
    """What the worker received as the start image, once it has it (fetched or decoded)."""
    assert await asyncio.to_thread(job.extra["image_ready"].wait, 20)
    image: bytes | None = job.extra.get("image")
    return image


def job_input(h: Harness, job: Job) -> dict[str, Any]:
    [run] = [r for r in h.sim.requests_to("submit") if r.json()["webhook"] == job.webhook_url]
    assert len(run.body) < RUN_BODY_LIMIT
    payload: dict[str, Any] = run.json()["input"]
    return payload


@pytest.mark.parametrize("store", ["local", "s3"])
async def test_a_large_start_image_reaches_runpod_by_signed_link(
    e2e: Start, large_png: bytes, store: str, request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, Any] = {}
    if store == "s3":
        request.getfixturevalue("aws_env")
        endpoint = request.getfixturevalue("s3_endpoint")
        overrides = {"storage_url": f"s3://{make_bucket(endpoint)}/media", "s3_endpoint_url": endpoint}
    h = await e2e(**overrides)
    assert isinstance(h.ctx.store, S3Store) is (store == "s3")
    upload_id = await upload(h, large_png)
    generation_id = await create_i2v(h, upload_id)
    job = await h.started(generation_id)

    sent = job_input(h, job)
    assert "image_base64" not in sent
    assert sent["image_url"].startswith(f"{h.public_url}/media/inputs/{upload_id}?")
    assert await image_taken(job) == large_png, job.extra.get("image_error")
    assert job.extra["image_content_type"] == "image/png"

    h.sim.complete(job.id)
    final = await h.final(generation_id)
    assert final["status"] == "succeeded", final
    await h.check_ledger()


async def test_the_old_inline_form_of_that_image_is_refused_by_runpod(e2e: Start, large_png: bytes) -> None:
    """Why the link matters: the same image inline makes a /run body RunPod refuses."""
    h = await e2e()
    request = job_request(
        model_ref="ltx-2", start_image=ImageInput(data=large_png, content_type="image/png", width=1900, height=1800)
    )
    body = json.dumps({"input": ltx_input(request), "webhook": "http://127.0.0.1:9/hook"})
    assert len(body) > RUN_BODY_LIMIT
    async with httpx.AsyncClient(base_url=h.sim.url) as client:
        refused = await client.post("/ltx-endpoint/run", content=body, headers={"Authorization": "Bearer test-key"})
    assert refused.status_code == 413
    assert not h.sim.jobs


async def test_a_small_start_image_still_goes_inline(e2e: Start) -> None:
    h = await e2e()
    small = png_bytes(640, 360, color=(20, 160, 40))
    generation_id = await create_i2v(h, await upload(h, small))
    job = await h.started(generation_id)

    sent = job_input(h, job)
    assert "image_url" not in sent
    assert base64.b64decode(sent["image_base64"]) == small
    assert await image_taken(job) == small
    h.sim.complete(job.id)
    assert (await h.final(generation_id))["status"] == "succeeded"


async def test_the_link_opens_only_its_upload_while_signed_unexpired_and_running(e2e: Start, large_png: bytes) -> None:
    h = await e2e()
    upload_id = await upload(h, large_png)
    generation_id = await create_i2v(h, upload_id)
    job = await h.started(generation_id)
    url = job_input(h, job)["image_url"]
    await image_taken(job)

    # No session, no key: the signature is the only credential.
    async with httpx.AsyncClient() as anonymous:
        opened = await anonymous.get(url)
        assert opened.status_code == 200
        assert opened.content == large_png and opened.headers["content-type"] == "image/png"

        bob = await make_account(h.ctx, email="bob@example.com", credits=0)
        bobs_upload = await upload(h, png_bytes(color=(1, 2, 3)), headers=bob.headers)
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        generation = await generation_row(h.ctx, generation_id)
        expired = input_links.input_url(h.ctx, generation, upload_id, h.ctx.clock() - timedelta(seconds=1))
        # A validly signed link that pairs this job with an upload it does not use (here, another user's).
        unrelated = input_links.input_url(h.ctx, generation, bobs_upload, h.ctx.clock() + timedelta(minutes=5))
        refused = {
            "altered signature": with_query(url, signature=query["signature"][:-2] + "AA"),
            "forged signature": with_query(url, signature="x" * 43),
            "no signature": with_query(url, signature=None),
            "later expiry": with_query(url, expires=str(int(query["expires"]) + 3600)),
            "unreadable expiry": with_query(url, expires="\u00b2"),
            "oversized part": with_query(url, signature="A" * 5000),
            "another generation": with_query(url, g="gen_0000000000000000"),
            "another upload": url.replace(upload_id, bobs_upload),
            "expired": expired,
            "another user's upload, signed": unrelated,
        }
        for why, link in refused.items():
            answer = await anonymous.get(link)
            assert answer.status_code == 404, why
            assert answer.json()["error"]["code"] == "not_found", why
            assert large_png[:64] not in answer.content

        h.sim.complete(job.id)
        assert (await h.final(generation_id))["status"] == "succeeded"
        after = await anonymous.get(url)
        assert after.status_code == 404, "a finished job's link opens nothing"


async def test_a_too_large_image_fails_at_once_when_runpod_cannot_reach_this_server(
    e2e: Start, large_png: bytes
) -> None:
    """A loopback public URL cannot be fetched by RunPod's hosted API: the job fails with the reason and a refund,
    and nothing is sent (the socket guard refuses any attempt to leave loopback)."""
    h = await e2e(runpod_base_url="https://api.runpod.ai/v2")
    before = await h.credits()
    generation_id = await create_i2v(h, await upload(h, large_png))
    final = await h.final(generation_id)

    assert final["status"] == "failed", final
    assert final["error"]["code"] == "provider_bad_input"
    assert "public URL" in final["error"]["message"] and "REELGATE_PUBLIC_URL" in final["error"]["message"]
    assert not h.sim.requests_to("submit")
    assert await h.credits() == before
    await h.check_ledger()
