"""Sessions in the studio's settings, in chromium: each signed-in browser listed with its last use, one signed
out from another, and "sign out everywhere"; an administrator disabling a user, and the audit log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import PASSWORD, Server
from tests.web.test_studio_browser import sign_up

pytestmark = pytest.mark.browser

NewPage = Callable[..., Page]


def sign_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/studio")


def test_sessions_are_listed_and_can_be_signed_out_from_settings(new_page: NewPage) -> None:
    laptop = new_page()
    email = sign_up(laptop)
    phone, tablet = new_page(), new_page()
    sign_in(phone, email)
    sign_in(tablet, email)

    laptop.goto("/settings")
    sessions = laptop.locator("[data-testid=sessions] tbody tr")
    expect(sessions).to_have_count(3)
    expect(sessions.filter(has_text="(this browser)")).to_have_count(1)
    expect(sessions.first).to_contain_text("Headless Chrome")
    expect(sessions.first).to_contain_text("127.0.0.1")

    # Sign one other browser out from here: its next page load is the sign-in page.
    laptop.locator("[data-testid=sessions] tbody tr:not(:has-text('(this browser)'))").first.get_by_role(
        "button", name="Sign out"
    ).click()
    expect(laptop.get_by_role("status")).to_contain_text("signed out")
    expect(sessions).to_have_count(2)
    signed_out = [p for p in (phone, tablet) if p.goto("/studio") and "/login" in p.url]
    assert len(signed_out) == 1
    still_in = tablet if signed_out[0] is phone else phone
    assert still_in.url.endswith("/studio")

    # Sign out everywhere: this browser too, and the other one left.
    laptop.get_by_role("button", name="Sign out everywhere").click()
    laptop.wait_for_url("**/login")
    still_in.goto("/settings")
    still_in.wait_for_url("**/login?next=/settings")


def test_the_audit_log_shows_what_administrators_did(new_page: NewPage, server: Server, screenshots: Path) -> None:
    customer = new_page()
    email = sign_up(customer)
    page = new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(server.admin_email)
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/studio")
    page.goto(f"/admin?q={email}")
    page.get_by_role("button", name=f"Disable {email}").click()
    expect(page.get_by_role("status")).to_contain_text("Disabled")
    customer.goto("/studio")
    customer.wait_for_url("**/login?next=/studio")  # signed out at once
    page.get_by_role("button", name=f"Enable {email}").click()
    page.get_by_role("link", name="Audit log").click()
    rows = page.locator("[data-testid=audit-log] tbody tr").filter(has_text=email)
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("enabled")
    expect(rows.nth(1)).to_contain_text("disabled")
    expect(rows.first).to_contain_text(server.admin_email)
    page.screenshot(path=screenshots / "admin-audit.png")
