"""The library in the studio (Debian's chromium): favourites and their filter, the share dialog and the public
page, selection mode with a ZIP download and a bulk delete, a single delete with confirmation, storage use."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.test_studio_browser import NewPage, newest_card, pick_model, sign_up, wait_until_ready

pytestmark = pytest.mark.browser


def make_video(page: Page, prompt: str) -> str:
    pick_model(page, "sandbox-t2v")
    page.get_by_label("Duration").select_option("1")
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.locator("#generate-button").click()
    expect(newest_card(page)).to_contain_text(prompt)
    generation_id = newest_card(page).get_attribute("data-generation")
    assert generation_id
    return generation_id


def test_library_favourites_sharing_selection_and_delete(new_page: NewPage, screenshots: Path, tmp_path: Path) -> None:
    page = new_page()
    sign_up(page)
    page.on("dialog", lambda dialog: dialog.accept())
    ids = [make_video(page, f"A lighthouse in the storm, take {n}") for n in (1, 2, 3)]
    for generation_id in ids:
        wait_until_ready(page, generation_id)
    expect(page.locator("[data-testid=storage]")).to_contain_text("MB used")

    # A star, and the favourites filter.
    star = page.locator(f"#gen-{ids[0]} .star")
    star.click()
    expect(page.locator(f"#gen-{ids[0]} .star")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("link", name="★ Favourites").click()
    expect(page.locator("#gallery-list .gen-card")).to_have_count(1)
    expect(page.locator(f"#gen-{ids[0]}")).to_be_visible()
    page.get_by_role("link", name="All", exact=True).click()
    expect(page.locator("#gallery-list .gen-card")).to_have_count(3)

    # The share dialog: a link that shows the prompt; the public page opens without an account.
    page.locator(f"#gen-{ids[1]}").get_by_role("button", name="Share").click()
    dialog = page.locator("#share-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Show the prompt on the page").check()
    dialog.get_by_role("button", name="Create link").click()
    url = page.locator("[data-testid=share-url]").input_value()
    assert "/s/shr_" in url
    page.screenshot(path=screenshots / "share-dialog.png")
    visitor = new_page()
    visitor.goto(url)
    expect(visitor.locator("video.share-player")).to_be_visible()
    expect(visitor.locator(".share-prompt")).to_contain_text("take 2")
    og_video = visitor.locator("meta[property='og:video']").get_attribute("content")
    assert og_video and og_video.endswith("/video")
    assert visitor.request.get(og_video).status == 200
    visitor.screenshot(path=screenshots / "share-page.png")
    dialog.get_by_role("button", name="Revoke").click()
    expect(page.locator("#share-dialog .share-links li.ended")).to_have_count(1)
    assert visitor.goto(url).status == 404
    page.locator("#share-dialog").get_by_role("button", name="Close").click()
    expect(page.locator("#share-dialog")).to_be_hidden()

    # Selection mode: two videos as one ZIP, then deleted together.
    expect(page.locator("#bulk-form")).to_be_hidden()
    page.get_by_label("Select videos").check()
    expect(page.locator("#bulk-form")).to_be_visible()
    for generation_id in ids[1:]:
        page.locator(f"#gen-{generation_id} .select-box input").check()
    page.screenshot(path=screenshots / "library-selection.png")
    with page.expect_download() as download_info:
        page.locator("#bulk-form").get_by_role("button", name="Download ZIP").click()
    saved = tmp_path / "videos.zip"
    download_info.value.save_as(saved)
    archive = zipfile.ZipFile(io.BytesIO(saved.read_bytes()))
    manifest = json.loads(archive.read("manifest.json"))
    assert sorted(v["id"] for v in manifest["videos"]) == sorted(ids[1:])
    assert len(archive.namelist()) == 3
    page.locator("#bulk-form").get_by_role("button", name="Delete").click()
    expect(page.locator(".flash.success")).to_contain_text("Deleted 2 videos")
    expect(page.locator("#gallery-list .gen-card")).to_have_count(1)

    # One video, with its confirmation.
    page.locator(f"#gen-{ids[0]}").get_by_role("button", name="Delete").click()
    expect(page.locator(f"#gen-{ids[0]}")).to_have_count(0)
    expect(page.locator(".toast").filter(has_text="Deleted")).to_be_visible()
    for generation_id in ids:
        assert page.request.get(f"/api/v1/generations/{generation_id}").status == 404
