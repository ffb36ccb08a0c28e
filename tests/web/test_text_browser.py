"""Text generation in the studio, in Debian's chromium: a Poe text model is picked (the form drops the video
settings), its answer is shown on the card, copied to the clipboard and downloaded as a .txt file."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.simulators.poe import PoeSimulator
from tests.web.conftest import _REPORT_CSP, Server, serving
from tests.web.test_studio_browser import sign_up

pytestmark = pytest.mark.browser
PROMPT = "a lighthouse at dusk, waves rolling in"


@pytest.fixture(scope="module")
def poe() -> Iterator[PoeSimulator]:
    sim = PoeSimulator(api_key="test-key", video=b"")
    sim.text_reply = "Lighthouse at dusk: {prompt}.\nSlow dolly in, waves catching the last light."
    sim.text_usage = {"prompt_tokens": 120, "completion_tokens": 300}
    with sim:
        yield sim


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory, poe: PoeSimulator) -> Iterator[Server]:
    """The studio with Poe configured (its loopback simulator), so the catalog's text models can be served."""
    with serving(
        tmp_path_factory.mktemp("text") / "data", POE_API_KEY="test-key", REELGATE_POE_BASE_URL=f"{poe.url}/v1"
    ) as running:
        yield running


def test_a_text_generation_is_shown_copied_and_downloaded(
    browser: Browser, text_server: Server, poe: PoeSimulator, screenshots: Path
) -> None:
    context = browser.new_context(
        base_url=text_server.url, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=text_server.url)
    violations: list[str] = []
    context.expose_function("reelgateCspViolation", lambda text: violations.append(str(text)))
    context.add_init_script(_REPORT_CSP)
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        sign_up(page, f"writer-{secrets.token_hex(4)}@example.com")
        page.locator("label[for='model-prompt-writer']").click()
        expect(page.locator(".panel[data-model='prompt-writer']")).to_be_visible()
        # A text model has no duration, resolution or aspect ratio to choose.
        expect(page.locator("#resolution")).to_have_count(0)
        expect(page.locator("#aspect_ratio")).to_have_count(0)
        expect(page.locator("#duration")).to_have_count(0)
        page.locator("#prompt").fill(PROMPT)
        expect(page.locator(".breakdown")).to_contain_text("per 1,000 tokens")
        held = int(page.locator("#estimate-total").inner_text())
        expect(page.locator("#generate-button")).to_be_enabled()
        page.locator("#generate-button").click()

        card = page.locator("#gallery-list .gen-card").first
        text = poe.text_reply.format(prompt=PROMPT)
        shown = card.locator("[data-testid='output-text']")
        expect(shown).to_have_text(text)
        expect(card).to_contain_text("120 tokens in, 300 out")
        generation_id = (card.get_attribute("id") or "").removeprefix("gen-")
        body = context.request.get(f"/api/v1/generations/{generation_id}").json()
        # 120 × 0.75 / 1000 + 300 × 3 / 1000 = 0.99 → 1 credit of the quoted maximum.
        assert (body["credits_charged"], body["credits_refunded"]) == (1, held - 1)
        expect(card).to_contain_text("Charged 1 credits")
        page.screenshot(path=str(screenshots / "studio-text-generation.png"))

        expect(card.get_by_role("button", name="Share")).to_have_count(0)  # the share page has no text view
        card.get_by_role("button", name="Copy").click()
        expect(card.get_by_role("button", name="Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == text

        with page.expect_download() as info:
            card.get_by_role("link", name="Download (.txt)").click()
        download = info.value
        assert download.suggested_filename == f"{generation_id}.txt"
        assert Path(download.path()).read_text(encoding="utf-8") == text
        assert violations == [], "the studio did something its Content-Security-Policy refuses"
    finally:
        context.close()
