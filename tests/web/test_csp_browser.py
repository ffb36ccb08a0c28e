"""The studio's Content-Security-Policy in chromium: it is enforced, the studio works under it (every browser
test checks no violation happens), and no other site can frame a studio page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import Server
from tests.web.test_studio_browser import pick_model, sign_up, wait_for_estimate

pytestmark = pytest.mark.browser

NewPage = Callable[..., Page]


def test_the_policy_is_enforced_and_violations_are_seen(new_page: NewPage, csp_violations: list[str]) -> None:
    page = new_page()
    page.goto("/login")
    ran = page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.appendChild(script);
            return window.injected === true;
        }"""
    )
    assert ran is False, "an injected inline script ran"
    page.wait_for_function("() => true")  # let the violation event reach the test
    expect(page.locator("body")).to_be_visible()
    assert any(v.startswith("script-src") for v in csp_violations), csp_violations
    csp_violations.clear()  # seen on purpose: the fixture fails the test on any violation left


def test_the_estimate_follows_the_settings_without_eval(new_page: NewPage) -> None:
    """The estimate used an htmx trigger filter (evaluated JavaScript); it now listens for a plain event."""
    page = new_page()
    sign_up(page)
    pick_model(page, "sandbox-t2v")
    wait_for_estimate(page, 10)
    page.get_by_label("Duration").select_option("8")
    wait_for_estimate(page, 16)
    page.get_by_label("Prompt", exact=True).fill("Typing a prompt does not ask for a new price")
    page.get_by_label("Resolution").select_option("1080p")
    wait_for_estimate(page, 24)


def test_no_other_site_can_frame_a_studio_page(new_page: NewPage, server: Server) -> None:
    page = new_page()
    page.goto("/login")
    blocked = page.evaluate(
        """(url) => new Promise((resolve) => {
            const frame = document.createElement("iframe");
            frame.src = url;
            frame.addEventListener("load", () => {
                // A refused frame shows the browser's error page: its document is not ours to read.
                try { resolve(frame.contentDocument === null || !frame.contentDocument.querySelector("form")); }
                catch (e) { resolve(true); }
            });
            document.body.appendChild(frame);
        })""",
        f"{server.url}/login",
    )
    assert blocked, "the studio's sign-in page loaded inside a frame"
