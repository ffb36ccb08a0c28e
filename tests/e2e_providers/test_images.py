"""An image model through the HTTP API at Replicate: its aspect ratios reach the provider, a ratio it does not
offer is refused, and the picture downloads converted to PNG or WebP."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from reelgate.db.queries.generations import insert_generation
from reelgate.services import projects
from tests.conftest import make_account
from tests.e2e_providers.conftest import Harness, Start
from tests.helpers import generation_record, png_bytes

# Flux Schnell answers a 16:9 request with a 1344x768 WebP (about one megapixel at that ratio).
WIDTH, HEIGHT = 1344, 768


@pytest.fixture
def provider_name() -> str:
    return "replicate"


@pytest.fixture(scope="module")
def video_bytes() -> bytes:
    """What the simulator serves as the prediction's output: here a real WebP picture, not a video."""
    return png_bytes(WIDTH, HEIGHT, color=(30, 90, 200), fmt="WEBP")


async def _image(h: Harness, aspect_ratio: str, output_format: str = "webp") -> str:
    response = await h.client.post(
        "/api/v1/generations",
        headers=h.headers,
        json={
            "model": "flux-schnell",
            "prompt": "a lighthouse at dusk, watercolour",
            "aspect_ratio": aspect_ratio,
            "options": {"output_format": output_format},
        },
    )
    assert response.status_code == 202, response.text
    generation_id = str(response.json()["id"])
    job = await h.started(generation_id)
    h.sim.complete(job.id)
    final = await h.final(generation_id)
    assert final["status"] == "succeeded", final
    return generation_id


@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:21", "4:5"])
async def test_an_image_models_aspect_ratio_reaches_the_provider(e2e: Start, aspect_ratio: str) -> None:
    h = await e2e()
    await _image(h, aspect_ratio)
    (submit,) = h.sim.requests_to("submit")
    assert submit.json()["input"]["aspect_ratio"] == aspect_ratio


async def test_a_ratio_the_image_model_does_not_offer_is_refused(e2e: Start) -> None:
    h = await e2e()
    for ratio in ("7:5", "1:2"):
        response = await h.client.post(
            "/api/v1/generations",
            headers=h.headers,
            json={"model": "flux-schnell", "prompt": "a lighthouse at dusk", "aspect_ratio": ratio},
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error" and error["details"]["field"] == "aspect_ratio"
        assert "21:9" in error["details"]["allowed"]
    assert h.sim.requests_to("submit") == []


# Each format is asked of a picture made in the other one, so the download is really converted.
@pytest.mark.parametrize(("fmt", "pillow_format", "made_as"), [("png", "PNG", "webp"), ("webp", "WEBP", "png")])
async def test_an_image_downloads_converted_to_png_or_webp(
    e2e: Start, fmt: str, pillow_format: str, made_as: str
) -> None:
    h = await e2e()
    h.sim.video = png_bytes(WIDTH, HEIGHT, color=(30, 90, 200), fmt=made_as.upper())
    generation_id = await _image(h, "16:9", output_format=made_as)
    assert (await h.get(generation_id))["output"]["content_type"] == f"image/{made_as}"

    response = await h.client.get(
        f"/api/v1/generations/{generation_id}/content", params={"download": "true", "format": fmt}, headers=h.headers
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{fmt}"
    assert response.headers["content-disposition"] == f'attachment; filename="{generation_id}.{fmt}"'
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == pillow_format
    picture.load()  # the whole file decodes, not only its header
    assert picture.size == (WIDTH, HEIGHT)
    assert picture.getpixel((WIDTH // 2, HEIGHT // 2))[:3] == pytest.approx((30, 90, 200), abs=8)


async def test_a_conversion_is_refused_for_an_unknown_format_a_video_or_another_users_image(e2e: Start) -> None:
    h = await e2e()
    generation_id = await _image(h, "1:1")
    url = f"/api/v1/generations/{generation_id}/content"

    unknown = await h.client.get(url, params={"format": "gif"}, headers=h.headers)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "validation_error"
    assert unknown.json()["error"]["details"]["field"] == "format"

    stranger = await make_account(h.ctx, credits=10)
    other = await h.client.get(url, params={"format": "png"}, headers=stranger.headers)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"

    video = generation_record(
        id="gen_video_to_convert",
        user_id=h.account.id,
        project_id=await projects.default_project_id(h.ctx, h.account.id),
        model="sandbox-t2v",
        kind="t2v",
        status="succeeded",
        provider="sandbox",
        provider_model="sandbox",
        output_key="outputs/gen_video_to_convert.mp4",
        output_content_type="video/mp4",
    )
    await h.ctx.db.write(lambda tx: insert_generation(tx, video))
    as_image = await h.client.get(
        "/api/v1/generations/gen_video_to_convert/content", params={"format": "webp"}, headers=h.headers
    )
    assert as_image.status_code == 422, as_image.text
    assert as_image.json()["error"]["details"]["field"] == "format"
