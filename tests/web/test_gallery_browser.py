"""Images in the studio, in Debian's chromium: an image model offers its own aspect ratios, the library shows the
finished pictures as a grid at their own ratios, and a picture opens full size in a lightbox driven from the
keyboard (arrows, Esc) with focus moving into it and back. Flux Schnell runs at the Replicate loopback simulator."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.simulators.replicate import ReplicateSimulator
from tests.web.conftest import Server, serving
from tests.web.test_studio_browser import NewPage, pick_model, sign_up, wait_until_ready

pytestmark = pytest.mark.browser
FLUX_RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4", "21:9", "9:21"]
COLOURS = {"16:9": (40, 90, 200), "9:16": (200, 90, 40), "1:1": (40, 160, 90)}


class PictureReplicate(ReplicateSimulator):
    """Replicate whose predictions finish by themselves with a WebP at the aspect ratio asked for, as Flux
    Schnell answers (a smaller picture than Flux's megapixel, so the test stays light)."""

    async def serve_file(self, request: Request) -> Response:
        job_id = request.path_params["name"].split(".")[0]
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        a, b = (int(n) for n in str(job.body["input"]["aspect_ratio"]).split(":"))
        short = 240
        size = (short * a // b, short) if a >= b else (short, short * b // a)
        picture = Image.new("RGB", size, COLOURS.get(f"{a}:{b}", (120, 120, 120)))
        w, h = size
        ImageDraw.Draw(picture).ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(240, 240, 230))
        out = io.BytesIO()
        picture.save(out, format="WEBP", quality=90)
        return Response(out.getvalue(), media_type="image/webp")


@pytest.fixture(scope="module")
def replicate() -> Iterator[PictureReplicate]:
    with PictureReplicate(auto_advance=(0.2, 0.3)) as sim:
        yield sim


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, replicate: PictureReplicate) -> Iterator[Server]:
    """The studio with Replicate configured (its loopback simulator): new_page's pages use this server."""
    with serving(
        tmp_path_factory.mktemp("gallery") / "data",
        REELGATE_REPLICATE_API_TOKEN="test-key",
        REELGATE_REPLICATE_BASE_URL=replicate.url,
        REELGATE_REPLICATE_WEBHOOK_SECRET=replicate.webhook_secret or "",
        REELGATE_FETCH_ALLOW_HOSTS=urlsplit(replicate.url).netloc,
    ) as running:
        yield running


def make_image(page: Page, prompt: str, ratio: str) -> str:
    pick_model(page, "flux-schnell")
    page.get_by_label("Aspect ratio", exact=True).select_option(ratio)
    page.get_by_label("Prompt", exact=True).fill(prompt)
    expect(page.locator("#generate-button")).to_be_enabled()
    page.locator("#generate-button").click()
    card = page.locator("#gallery-list .gen-card", has_text=prompt).first
    expect(card).to_be_visible()
    generation_id = card.get_attribute("data-generation")
    assert generation_id
    return generation_id


def _ratio(value: str) -> float:
    a, b = value.split(":")
    return int(a) / int(b)


def test_the_image_gallery_and_its_lightbox(new_page: NewPage, screenshots: Path) -> None:
    page = new_page(1280, 900)
    sign_up(page, f"gallery-{secrets.token_hex(4)}@example.com")
    # The form offers exactly the selected model's aspect ratios.
    pick_model(page, "flux-schnell")
    assert page.locator("#aspect_ratio option").evaluate_all("os => os.map(o => o.value)") == FLUX_RATIOS
    orders = [("A lighthouse on a cliff, watercolour", "16:9"), ("A tall pine in fog", "9:16"), ("A red apple", "1:1")]
    ids = [make_image(page, prompt, ratio) for prompt, ratio in orders]
    for generation_id in ids:
        wait_until_ready(page, generation_id)

    # The Images view: the pictures as a grid, newest first, each shown at its own aspect ratio.
    page.get_by_test_id("images-view").click()
    expect(page.get_by_test_id("images-view")).to_have_attribute("aria-current", "page")
    tiles = page.locator("#image-grid .tile")
    expect(tiles).to_have_count(3)
    assert page.locator("#gallery-list .gen-card").count() == 0  # videos and unfinished jobs keep the card view
    shown = [tiles.nth(i).get_attribute("data-generation") for i in range(3)]
    assert shown == list(reversed(ids))
    for i, (_, ratio) in enumerate(reversed(orders)):
        image = tiles.nth(i).locator("img")
        expect(image).to_have_js_property("complete", True)
        box = image.bounding_box()
        assert box is not None
        assert box["width"] / box["height"] == pytest.approx(_ratio(ratio), rel=0.03)
    page.screenshot(path=screenshots / "gallery-images.png", full_page=True)

    # A click opens the lightbox: a modal dialog with focus inside, the full-size picture and its place.
    first = tiles.nth(0).locator("a.image-link")
    first.click()
    lightbox = page.get_by_role("dialog")
    expect(lightbox).to_be_visible()
    expect(page.locator("#lightbox-close")).to_be_focused()
    expect(page.locator("#lightbox-image")).to_have_attribute("src", first.get_attribute("href") or "")
    expect(page.locator("#lightbox-count")).to_have_text("1 of 3")
    expect(page.locator("#lightbox-caption")).to_have_text(orders[2][0])
    page.screenshot(path=screenshots / "gallery-lightbox.png")

    # The arrow key and the buttons move through the gallery, wrapping at its ends.
    page.keyboard.press("ArrowRight")
    expect(page.locator("#lightbox-count")).to_have_text("2 of 3")
    second = tiles.nth(1).locator("a.image-link").get_attribute("href") or ""
    expect(page.locator("#lightbox-image")).to_have_attribute("src", second)
    expect(page.locator("#lightbox-image")).to_have_js_property("naturalHeight", 426)  # 9:16 at 240 wide
    page.locator("#lightbox-next").click()
    expect(page.locator("#lightbox-count")).to_have_text("3 of 3")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#lightbox-count")).to_have_text("1 of 3")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#lightbox-count")).to_have_text("3 of 3")
    page.locator("#lightbox-prev").click()
    expect(page.locator("#lightbox-count")).to_have_text("2 of 3")

    # Esc closes it and focus returns to the picture that opened it.
    page.keyboard.press("Escape")
    expect(lightbox).to_be_hidden()
    expect(first).to_be_focused()

    # The close button, and a click outside the picture, close it too.
    tiles.nth(2).locator("a.image-link").click()
    expect(lightbox).to_be_visible()
    page.locator("#lightbox-close").click()
    expect(lightbox).to_be_hidden()
    expect(tiles.nth(2).locator("a.image-link")).to_be_focused()
    first.click()
    expect(lightbox).to_be_visible()
    page.mouse.click(640, 12)
    expect(lightbox).to_be_hidden()

    # From the lightbox, the picture downloads converted to PNG.
    first.click()
    with page.expect_download() as download_info:
        page.locator("#lightbox-png").click()
    download = download_info.value
    assert download.suggested_filename == f"{ids[2]}.png"
    saved = Image.open(download.path())
    assert saved.format == "PNG" and saved.size == (240, 240)
