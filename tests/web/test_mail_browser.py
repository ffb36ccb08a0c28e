"""Email in the studio, in Debian's chromium: "forgot password" to a new password through the emailed link,
email preferences in settings, and the administrator's view of the mail folder (embedded mode, no SMTP)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import PASSWORD, Server

pytestmark = pytest.mark.browser

NewPage = Callable[..., Page]
NEW_PASSWORD = "a fresh passphrase 42"


def emailed(server: Server, to: str, kind: str, timeout: float = 30.0) -> str:
    """The text part of the newest email of `kind` to `to` the server wrote to its mail folder."""
    folder = server.data_dir / "mail"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml"), reverse=True) if folder.is_dir() else []:
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            if to in str(message["To"]) and message["X-Reelgate-Kind"] == kind:
                body = message.get_body(preferencelist=("plain",))
                assert body is not None
                return str(body.get_content())  # type: ignore[attr-defined]
        time.sleep(0.2)
    raise AssertionError(f"no {kind} email to {to} in {folder}")


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_forgot_password_to_a_new_password(new_page: NewPage, server: Server, screenshots: Path) -> None:
    email = f"forgetful-{secrets.token_hex(4)}@example.com"
    first = new_page()
    first.goto("/signup")
    first.get_by_label("Email").fill(email)
    first.get_by_label("Password").fill(PASSWORD)
    first.get_by_role("button", name="Create account").click()
    first.wait_for_url("**/signup")  # the same answer for a new or a known address: now sign in
    sign_in(first, email, PASSWORD)
    first.wait_for_url("**/studio")

    page = new_page()
    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url("**/forgot-password")
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Send the reset link").click()
    expect(page.locator("#forgot-answer")).to_contain_text("If an account uses this address")

    text = emailed(server, email, "password_reset")
    found = re.search(rf"{re.escape(server.url)}/reset-password\?token=\S+", text)
    assert found, text
    page.goto(found.group(0))
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.screenshot(path=str(screenshots / "reset-password.png"))
    page.get_by_role("button", name="Set the new password").click()
    page.wait_for_url("**/login")
    expect(page.get_by_text("Your password is changed")).to_be_visible()

    # The link is spent; the old password no longer works, the new one does.
    page.goto(found.group(0))
    expect(page.get_by_role("heading", name="This link does not work any more")).to_be_visible()
    sign_in(page, email, PASSWORD)
    expect(page.locator("#form-error")).to_contain_text("Wrong email or password")
    sign_in(page, email, NEW_PASSWORD)
    page.wait_for_url("**/studio")

    # Email preferences: turn one kind off; it stays off.
    page.goto("/settings")
    box = page.get_by_label("A video is ready")
    expect(box).to_be_checked()
    box.uncheck()
    page.get_by_role("button", name="Save email preferences").click()
    expect(page.get_by_text("Email preferences saved.")).to_be_visible()
    expect(page.get_by_label("A video is ready")).not_to_be_checked()
    expect(page.get_by_label("Receipts for credit purchases")).to_be_checked()


def test_the_administrator_reads_the_mail_folder_and_sends_a_reset_link(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    email = f"member-{secrets.token_hex(4)}@example.com"
    member = new_page()
    member.goto("/signup")
    member.get_by_label("Email").fill(email)
    member.get_by_label("Password").fill(PASSWORD)
    member.get_by_role("button", name="Create account").click()
    member.wait_for_url("**/signup")  # the same answer for a new or a known address: now sign in
    sign_in(member, email, PASSWORD)
    member.wait_for_url("**/studio")

    admin = new_page()
    sign_in(admin, server.admin_email, server.admin_password)
    admin.wait_for_url("**/studio")
    admin.goto(f"/admin?q={email}")
    admin.get_by_role("button", name=f"Send a password reset link to {email}").click()
    expect(admin.get_by_text("A password reset link is on its way.")).to_be_visible()
    emailed(server, email, "password_reset")

    admin.goto("/admin/mail")
    row = admin.locator("#mail-folder tr", has_text=email).first
    expect(row).to_contain_text("Reset your password")
    admin.screenshot(path=str(screenshots / "admin-mail.png"))
    row.get_by_role("link", name="Reset your password").click()
    expect(admin.locator("#mail-text")).to_contain_text("An administrator of 127.0.0.1 sent you a link")
    expect(admin.locator("#mail-text")).to_contain_text(f"{server.url}/reset-password?token=")
