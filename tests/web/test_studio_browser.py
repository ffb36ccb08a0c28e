"""The studio in Debian's chromium: sign up, price, generate, watch, play, download, images, credits, privacy."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import png_bytes
from tests.web.conftest import PASSWORD, SIGNUP_CREDITS, Server

pytestmark = pytest.mark.browser

NewPage = Callable[..., Page]
VIDEO_TIMEOUT = 60_000


def sign_up(page: Page, email: str | None = None) -> str:
    email = email or f"viewer-{secrets.token_hex(4)}@example.com"
    page.goto("/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    # Sign-up answers the same whether the email was free or not, then the new user signs in.
    expect(page.locator("#form-notice")).to_contain_text("sign in")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/studio")
    return email


def pick_model(page: Page, model_id: str) -> None:
    page.locator(f"label[for='model-{model_id}']").click()
    expect(page.locator(f"#settings-panel .panel[data-model='{model_id}']")).to_be_visible()


def estimate_total(page: Page) -> int:
    return int(page.locator("#estimate-total").inner_text())


def wait_for_estimate(page: Page, total: int) -> None:
    expect(page.locator("#estimate-total")).to_have_text(str(total))


def newest_card(page: Page):  # noqa: ANN201 - a Playwright Locator
    return page.locator("#gallery-list .gen-card").first


def wait_until_ready(page: Page, generation_id: str) -> None:
    expect(page.locator(f"#gen-{generation_id}")).to_have_attribute("data-status", "succeeded", timeout=VIDEO_TIMEOUT)


def drop_file(page: Page, selector: str, data: bytes, name: str, mime: str) -> None:
    """A real drop event carrying a File, as the browser makes when a file is dragged from the desktop."""
    transfer = page.evaluate_handle(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: mime}));
            return dt;
        }""",
        [base64.b64encode(data).decode(), name, mime],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def test_sign_up_generate_watch_play_and_download(new_page: NewPage, screenshots: Path, tmp_path: Path) -> None:
    page = new_page()
    page.goto("/login")
    page.screenshot(path=screenshots / "sign-in.png")
    page.goto("/signup")
    page.screenshot(path=screenshots / "sign-up.png")
    sign_up(page)
    expect(page.locator("[data-testid=balance]")).to_have_text(str(SIGNUP_CREDITS))
    page.screenshot(path=screenshots / "studio-empty.png")

    pick_model(page, "sandbox-t2v")
    wait_for_estimate(page, 10)  # 5 s at 720p, 2 credits a second
    page.get_by_label("Duration").select_option("8")
    wait_for_estimate(page, 16)
    page.get_by_label("Resolution").select_option("1080p")
    wait_for_estimate(page, 24)
    expect(page.locator(".breakdown")).to_contain_text("8 s at 1080p")
    page.get_by_label("Resolution").select_option("720p")
    page.get_by_label("Duration").select_option("3")
    wait_for_estimate(page, 6)

    page.get_by_label("Prompt", exact=True).fill("A red fox running through fresh snow at sunrise")
    page.get_by_role("button", name="Generate · 6 credits").click()
    card = newest_card(page)
    expect(card).to_be_visible()
    generation_id = card.get_attribute("data-generation")
    assert generation_id
    expect(page.locator(".toast").filter(has_text="Generation started")).to_be_visible()
    # Progress is shown while it runs: the first card is rendered in a running state with a progress bar.
    assert card.get_attribute("data-status") in {"queued", "submitting", "processing", "storing", "succeeded"}
    wait_until_ready(page, generation_id)

    video = page.locator(f"#gen-{generation_id} video")
    expect(video).to_be_visible()
    video.evaluate("v => { v.muted = true; return v.play().catch(() => null); }")
    page.wait_for_function(
        "id => { const v = document.querySelector(`#gen-${id} video`); return v && v.readyState >= 2; }",
        arg=generation_id,
        timeout=VIDEO_TIMEOUT,
    )
    expect(page.locator(f"#gen-{generation_id}")).to_contain_text("Charged 6 credits")
    expect(page.locator("[data-testid=balance]")).to_have_text(str(SIGNUP_CREDITS - 6))
    expect(page.locator("#low-credit .banner")).to_contain_text("balance is low")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=screenshots / "studio.png")

    with page.expect_download() as download_info:
        page.locator(f"#gen-{generation_id}").get_by_role("link", name="Download").click()
    saved = tmp_path / "video.mp4"
    download_info.value.save_as(saved)
    assert saved.read_bytes()[4:8] == b"ftyp"

    phone = new_page(390, 844)
    phone.context.add_cookies(page.context.cookies())
    phone.goto("/studio")
    wait_until_ready(phone, generation_id)
    phone.screenshot(path=screenshots / "studio-phone.png", full_page=True)

    page.goto("/credits")
    expect(page.get_by_role("heading", name="Transaction history")).to_be_visible()
    expect(page.locator("table.data")).to_contain_text("Charged for a video")
    page.screenshot(path=screenshots / "credits.png", full_page=True)

    page.goto("/settings")
    page.get_by_placeholder("Name, e.g. my-app").fill("my-app")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("[data-testid=new-api-key]").input_value()
    assert secret.startswith("rg_")
    page.screenshot(path=screenshots / "settings.png", full_page=True)
    page.goto("/settings")
    expect(page.locator("[data-testid=new-api-key]")).to_have_count(0)  # shown once only

    page.goto("/guide")
    page.screenshot(path=screenshots / "guide.png")


def test_image_to_video_with_a_dropped_image(new_page: NewPage) -> None:
    page = new_page()
    sign_up(page)
    pick_model(page, "sandbox-i2v")
    expect(page.locator("#generate-button")).to_be_enabled()
    drop_file(page, "#dropzone-start_image", png_bytes(320, 180), "start.png", "image/png")
    expect(page.locator("#dropzone-start_image .preview")).to_be_visible()
    upload_id = page.locator("#dropzone-start_image input[name=start_image]").input_value()
    assert upload_id.startswith("upl_")
    page.get_by_label("Duration").select_option("2")
    wait_for_estimate(page, 4)
    page.get_by_label("Prompt", exact=True).fill("The red square slowly drifts to the left")
    page.locator("#generate-button").click()
    card = newest_card(page)
    generation_id = card.get_attribute("data-generation")
    assert generation_id
    wait_until_ready(page, generation_id)
    expect(page.locator(f"#gen-{generation_id} video")).to_be_visible()


def test_a_wrong_file_type_is_refused_in_the_browser_and_on_the_server(new_page: NewPage, screenshots: Path) -> None:
    page = new_page()
    sign_up(page)
    pick_model(page, "sandbox-i2v")
    drop_file(page, "#dropzone-start_image", b"just some text", "notes.txt", "text/plain")
    expect(page.locator(".toast.error")).to_contain_text("not a PNG, JPEG or WebP")
    page.screenshot(path=screenshots / "upload-refused.png")
    # A file that claims to be a PNG passes the browser's check, and the server refuses it by its content.
    drop_file(page, "#dropzone-start_image", b"<html>not an image</html>", "fake.png", "image/png")
    expect(page.locator(".toast.error").filter(has_text="Only PNG, JPEG and WebP")).to_be_visible()
    assert page.locator("#dropzone-start_image input[name=start_image]").input_value() == ""


def test_without_enough_credits_generate_is_disabled_and_points_to_credits(new_page: NewPage) -> None:
    page = new_page()
    sign_up(page)
    pick_model(page, "sandbox-t2v")
    page.get_by_label("Resolution").select_option("1080p")
    page.get_by_label("Duration").select_option("10")
    wait_for_estimate(page, 30)
    expect(page.locator("#generate-button")).to_be_disabled()
    expect(page.locator("#short-credits")).to_contain_text("5 more credits")
    page.get_by_label("Prompt", exact=True).fill("A very long and expensive panorama of the alps")
    # The server refuses too: force the button on and submit anyway.
    page.locator("#generate-button").evaluate("b => { b.disabled = false; }")
    page.locator("#generate-button").click()
    expect(page.locator(".toast.error")).to_contain_text("needs 30 credits but only 25")
    expect(page.locator("#gallery-list .gen-card")).to_have_count(0)
    page.locator("#buy-credits").click()
    page.wait_for_url("**/credits")
    expect(page.get_by_role("heading", name="Buy credits")).to_be_visible()


def test_a_second_user_cannot_see_the_first_users_videos(new_page: NewPage) -> None:
    first = new_page()
    sign_up(first)
    pick_model(first, "sandbox-t2v")
    first.get_by_label("Duration").select_option("1")
    first.get_by_label("Prompt", exact=True).fill("A private video of my cat sleeping")
    first.locator("#generate-button").click()
    generation_id = newest_card(first).get_attribute("data-generation")
    assert generation_id
    wait_until_ready(first, generation_id)

    second = new_page()
    sign_up(second)
    expect(second.locator("#gallery-empty")).to_be_visible()
    expect(second.locator(f"#gen-{generation_id}")).to_have_count(0)
    assert "my cat sleeping" not in second.content()
    for path in (
        f"/api/v1/generations/{generation_id}/content",
        f"/api/v1/generations/{generation_id}",
        f"/studio/generations/{generation_id}/card",
    ):
        assert second.request.get(path).status == 404, path


def test_cancel_refunds_and_retry_starts_again(new_page: NewPage) -> None:
    page = new_page()
    sign_up(page)
    page.on("dialog", lambda dialog: dialog.accept())
    pick_model(page, "sandbox-t2v")
    page.get_by_label("Duration").select_option("2")
    page.get_by_label("Prompt", exact=True).fill("A clock that never stops ticking [hang]")
    page.locator("#generate-button").click()
    card = newest_card(page)
    generation_id = card.get_attribute("data-generation")
    expect(page.locator("[data-testid=balance]")).to_have_text(str(SIGNUP_CREDITS - 4))
    card.get_by_role("button", name="Cancel").click()
    expect(page.locator(f"#gen-{generation_id}")).to_have_attribute("data-status", "canceled")
    expect(page.locator(f"#gen-{generation_id}")).to_contain_text("credits were refunded")
    expect(page.locator("[data-testid=balance]")).to_have_text(str(SIGNUP_CREDITS))
    page.locator(f"#gen-{generation_id}").get_by_role("button", name="Retry").click()
    expect(page.locator("#gallery-list .gen-card")).to_have_count(2)
    expect(page.locator(".toast").filter(has_text="Started again")).to_be_visible()


def test_admin_pages(new_page: NewPage, server: Server, screenshots: Path) -> None:
    customer = new_page()
    email = sign_up(customer, f"customer-{secrets.token_hex(3)}@example.com")

    page = new_page()
    page.goto("/admin")
    page.wait_for_url("**/login?next=/admin")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin")
    page.get_by_label("Search users").fill(email)
    page.get_by_role("button", name="Search").click()
    row = page.locator("table.data tbody tr").filter(has_text=email)
    expect(row).to_have_count(1)
    row.get_by_placeholder("Credits").fill("40")
    row.get_by_placeholder("Reason").fill("Welcome gift for a beta tester")
    row.get_by_role("button", name="Grant").click()
    expect(page.locator(".flash.success")).to_contain_text("Granted 40 credits")
    page.get_by_label("Search users").fill("")
    page.get_by_role("button", name="Search").click()
    page.screenshot(path=screenshots / "admin-users.png", full_page=True)
    customer.reload()
    expect(customer.locator("[data-testid=balance]")).to_have_text(str(SIGNUP_CREDITS + 40))

    page.goto("/admin/generations")
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    page.screenshot(path=screenshots / "admin-generations.png", full_page=True)
    page.goto("/admin/providers")
    expect(page.locator("table.data")).to_contain_text("sandbox")
    page.screenshot(path=screenshots / "admin-providers.png", full_page=True)
    page.goto("/admin/revenue")
    expect(page.locator(".stat").filter(has_text="Margin")).to_be_visible()
    page.screenshot(path=screenshots / "admin-revenue.png", full_page=True)

    customer.goto("/admin")
    expect(customer.get_by_role("heading", name="Administrators only")).to_be_visible()
