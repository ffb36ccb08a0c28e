"""A campaign in the studio (Debian's chromium): the project page sets a budget, shows what is spent against it,
and a generation that would pass it is refused with the figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.test_library_browser import make_video
from tests.web.test_studio_browser import NewPage, sign_up, wait_until_ready

pytestmark = pytest.mark.browser


def test_project_page_shows_budget_and_spend(new_page: NewPage, screenshots: Path) -> None:
    page = new_page()
    sign_up(page)
    spend = page.locator("[data-testid=project-spend]")
    expect(spend.locator("[data-testid=budget-line]")).to_contain_text("No budget")

    first = make_video(page, "A spring campaign teaser, shot one")  # 1 s at 720p: 2 credits
    wait_until_ready(page, first)
    page.reload()
    expect(spend.locator("[data-testid=spend-captured]")).to_have_text("2 credits")
    expect(spend.locator("[data-testid=spend-states]")).to_have_text("1 succeeded")

    spend.get_by_text("Set a budget").click()
    spend.get_by_label("Budget in credits").fill("3")
    spend.get_by_role("button", name="Save budget").click()
    expect(page.locator(".flash").filter(has_text="Budget saved")).to_be_visible()
    expect(spend.locator("[data-testid=budget-line]")).to_have_text("2 of 3 credits used · 1 left")

    # The next 2-credit generation would pass the budget: refused, nothing held.
    page.get_by_label("Duration").select_option("1")
    page.get_by_label("Prompt", exact=True).fill("A spring campaign teaser, shot two")
    page.locator("#generate-button").click()
    expect(page.locator(".toast.error")).to_contain_text("budget is 3 credits")
    expect(page.locator("#gallery-list .gen-card")).to_have_count(1)
    page.evaluate("window.scrollTo(0, 0)")  # the sidebar's budget with the refusal's toast
    page.screenshot(path=screenshots / "project-budget.png")
