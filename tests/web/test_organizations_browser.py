"""Organizations in the studio, in Debian's chromium: create one, invite a member by email, the member joins
through the emailed link and generates on the organization's wallet with the studio's wallet switcher."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import SIGNUP_CREDITS, Server
from tests.web.test_mail_browser import emailed, sign_in
from tests.web.test_studio_browser import newest_card, pick_model, sign_up, wait_for_estimate, wait_until_ready

pytestmark = pytest.mark.browser

NewPage = Callable[..., Page]


def test_a_member_generates_on_the_organizations_wallet(new_page: NewPage, server: Server, screenshots: Path) -> None:
    owner = new_page()
    sign_up(owner, f"owner-{secrets.token_hex(4)}@example.com")
    owner.get_by_role("link", name="Teams").click()
    owner.get_by_placeholder("Organization name").fill("Northwind Studio")
    owner.get_by_role("button", name="Create organization").click()
    expect(owner.get_by_role("heading", name="Northwind Studio")).to_be_visible()
    org_id = owner.url.rsplit("/", 1)[1]

    member = new_page()
    member_email = sign_up(member, f"member-{secrets.token_hex(4)}@example.com")
    owner.get_by_placeholder("name@example.com").fill(member_email)
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.get_by_text(f"Invitation sent to {member_email}")).to_be_visible()

    text = emailed(server, member_email, "organization_invitation")
    link = re.search(rf"{re.escape(server.url)}/organizations/join\?token=\S+", text)
    assert link, text
    member.goto(link.group(0))
    member.get_by_role("button", name="Accept the invitation").click()
    expect(member.get_by_text("You joined as member.")).to_be_visible()

    # An administrator funds the organization's wallet (the admin API, from the administrator's session).
    admin = new_page()
    sign_in(admin, server.admin_email, server.admin_password)
    admin.wait_for_url("**/studio")
    csrf = admin.locator("input[name=csrf_token]").first.get_attribute("value")
    grant = {"organization_id": org_id, "amount": 40, "reason": "team credits", "kind": "grant"}
    answer = admin.request.post(f"{server.url}/api/v1/admin/credits", data=grant, headers={"x-csrf-token": csrf or ""})
    assert answer.status == 200, answer.text()

    member.goto("/studio")
    switcher = member.get_by_test_id("wallet-switcher")
    expect(switcher).to_contain_text("Northwind Studio (40 credits)")
    switcher.select_option(org_id)
    pick_model(member, "sandbox-t2v")
    member.get_by_label("Duration").select_option("3")
    wait_for_estimate(member, 6)
    member.get_by_label("Prompt", exact=True).fill("A lighthouse at dusk, paid by the team")
    member.screenshot(path=screenshots / "studio-wallet-switcher.png")
    member.get_by_role("button", name="Generate · 6 credits").click()
    card = newest_card(member)
    generation_id = card.get_attribute("data-generation")
    assert generation_id
    wait_until_ready(member, generation_id)
    # The wallet paid; the member's own balance did not move.
    expect(member.locator("[data-testid=balance]")).to_have_text(str(SIGNUP_CREDITS))

    owner.goto(f"/organizations/{org_id}")
    expect(owner.get_by_test_id("org-wallet")).to_have_text("34")
    members = owner.get_by_test_id("org-members")
    expect(members).to_contain_text(member_email)
    expect(members.locator("tr", has_text=member_email)).to_contain_text("6")
    owner.screenshot(path=screenshots / "organization.png", full_page=True)
