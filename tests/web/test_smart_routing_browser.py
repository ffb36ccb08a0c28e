"""Smart routing in the studio, in Debian's chromium: a tier is offered beside the models, the estimate names
the model it picks, and the generation is held, served and charged at that model's price."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect

from reelgate import media_render
from tests.simulators.pollo import PolloSimulator
from tests.web.conftest import Server, serving
from tests.web.test_studio_browser import VIDEO_TIMEOUT, sign_up

pytestmark = pytest.mark.browser
CREDITS = 500  # a Pollo video costs 100 credits and more


@pytest.fixture(scope="module")
def pollo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolloSimulator]:
    clip = tmp_path_factory.mktemp("clip") / "clip.mp4"
    media_render.encode_preview(
        media_render.RenderSpec(width=160, height=96, duration=1.0, fps=8, seed=5, prompt="routed"), clip
    )
    sim = PolloSimulator(video=clip.read_bytes())
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def routed_server(tmp_path_factory: pytest.TempPathFactory, pollo: PolloSimulator) -> Iterator[Server]:
    """The studio with Pollo.ai configured (its loopback simulator), so the catalog's tiers can be served."""
    with serving(
        tmp_path_factory.mktemp("routed") / "data",
        REELGATE_POLLO_API_KEY="test-key",
        REELGATE_POLLO_BASE_URL=pollo.url,
        REELGATE_POLLO_WEBHOOK_SECRET=pollo.webhook_secret,
        REELGATE_FETCH_ALLOW_HOSTS=urlsplit(pollo.url).netloc,
        REELGATE_SIGNUP_CREDITS=str(CREDITS),
    ) as running:
        yield running


def test_a_tier_in_the_studio_picks_and_serves_its_cheapest_model(
    browser: Browser, routed_server: Server, pollo: PolloSimulator, screenshots: Path
) -> None:
    context = browser.new_context(base_url=routed_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        sign_up(page, f"router-{secrets.token_hex(4)}@example.com")
        page.locator("label[for='model-economy']").click()
        expect(page.locator("[data-testid='routing-summary']")).to_contain_text("Economy")
        page.locator("#prompt").fill("a lighthouse at dusk, waves rolling in")
        expect(page.locator("[data-testid='routed-model']")).to_contain_text("Kling")
        total = int(page.locator("#estimate-total").inner_text())
        page.screenshot(path=str(screenshots / "studio-smart-routing.png"))
        expect(page.locator("#generate-button")).to_be_enabled()
        page.locator("#generate-button").click()
        card = page.locator("#gallery-list .gen-card").first
        expect(card).to_be_visible()
        generation_id = (card.get_attribute("id") or "").removeprefix("gen-")
        api = context.request
        body = api.get(f"/api/v1/generations/{generation_id}").json()
        assert body["model"] == "kling-v1-6" and body["credits_held"] == total
        # The provider got the job: finish it there, and the studio shows the video.
        for _ in range(100):
            with pollo.lock:
                jobs = [j for j in pollo.jobs.values() if f"g={generation_id}&" in (j.webhook_url or "")]
            if jobs:
                break
            page.wait_for_timeout(100)
        assert len(jobs) == 1
        pollo.complete(jobs[0].id)
        expect(page.locator(f"#gen-{generation_id}")).to_have_attribute(
            "data-status", "succeeded", timeout=VIDEO_TIMEOUT
        )
        final = api.get(f"/api/v1/generations/{generation_id}").json()
        assert final["served_model"] == "kling-v1-6" and final["credits_charged"] == total
    finally:
        context.close()
