"""Organizations in the studio, in Debian's chromium: create one, invite a member by email, the member joins
through the emailed link and generates on the organization's wallet with the studio's wallet switcher, and into a
team project whose budget the owner set."""

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


def _team(new_page: NewPage, server: Server, credits: int) -> tuple[Page, Page, str, str]:
    """An owner creates an organization and invites a member, who joins through the emailed link; an administrator
    grants the wallet `credits`. Returns the owner's page, the member's page, the organization and the member's
    email."""
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
    grant = {"organization_id": org_id, "amount": credits, "reason": "team credits", "kind": "grant"}
    answer = admin.request.post(f"{server.url}/api/v1/admin/credits", data=grant, headers={"x-csrf-token": csrf or ""})
    assert answer.status == 200, answer.text()
    admin.close()
    return owner, member, org_id, member_email


def _generate_three_seconds(member: Page, prompt: str, screenshot: Path | None = None) -> None:
    """A 3-second sandbox video (6 credits) from the generate form, waited for; a wallet other than the member's
    own pays, so their balance does not move."""
    member.get_by_label("Duration").select_option("3")
    wait_for_estimate(member, 6)
    member.get_by_label("Prompt", exact=True).fill(prompt)
    if screenshot is not None:
        member.screenshot(path=screenshot)
    member.get_by_role("button", name="Generate · 6 credits").click()
    generation_id = newest_card(member).get_attribute("data-generation")
    assert generation_id
    wait_until_ready(member, generation_id)
    expect(member.locator("[data-testid=balance]")).to_have_text(str(SIGNUP_CREDITS))


def test_a_member_generates_on_the_organizations_wallet(new_page: NewPage, server: Server, screenshots: Path) -> None:
    owner, member, org_id, member_email = _team(new_page, server, 40)
    member.goto("/studio")
    switcher = member.get_by_test_id("wallet-switcher")
    expect(switcher).to_contain_text("Northwind Studio (40 credits)")
    switcher.select_option(org_id)
    pick_model(member, "sandbox-t2v")
    _generate_three_seconds(
        member, "A lighthouse at dusk, paid by the team", screenshots / "studio-wallet-switcher.png"
    )

    owner.goto(f"/organizations/{org_id}")
    expect(owner.get_by_test_id("org-wallet")).to_have_text("34")
    members = owner.get_by_test_id("org-members")
    expect(members).to_contain_text(member_email)
    expect(members.locator("tr", has_text=member_email)).to_contain_text("6")
    owner.screenshot(path=screenshots / "organization.png", full_page=True)


def test_a_member_files_into_a_team_project_under_its_budget(
    new_page: NewPage, server: Server, screenshots: Path
) -> None:
    owner, member, org_id, _ = _team(new_page, server, 40)
    owner.goto(f"/organizations/{org_id}")
    owner.get_by_placeholder("Spring campaign").fill("Harbour launch")
    owner.get_by_placeholder("Budget (optional)").fill("8")
    owner.get_by_role("button", name="Create project").click()
    expect(owner.get_by_text("Project “Harbour launch” created for the team.")).to_be_visible()
    project_id = owner.url.split("project=", 1)[1]
    expect(owner.get_by_text("Rename “Harbour launch”")).to_be_visible()  # the owner may change it

    # The member finds it under Projects with the team's name; it is filled on the team's wallet only, and a
    # plain member may not rename, delete or re-budget it.
    member.goto("/studio")
    team_link = member.get_by_role("link", name="Harbour launch")
    expect(team_link).to_contain_text("Northwind Studio")
    team_link.click()
    expect(member.get_by_test_id("team-wallet")).to_contain_text("Pays: Northwind Studio (40 credits)")
    expect(member.get_by_test_id("wallet-switcher")).to_have_count(0)
    expect(member.get_by_text("Rename “Harbour launch”")).to_have_count(0)
    expect(member.get_by_text("Set a budget")).to_have_count(0)
    expect(member.get_by_test_id("budget-line")).to_have_text("0 of 8 credits used · 8 left")
    pick_model(member, "sandbox-t2v")
    _generate_three_seconds(member, "A harbour at dawn, for the team's campaign")

    # A second one would take the team past the budget the owner set: refused, with the figures.
    member.get_by_role("button", name="Generate · 6 credits").click()
    expect(member.locator(".toast.error")).to_contain_text("This project's budget is 8 credits")
    member.reload()
    expect(member.get_by_test_id("budget-line")).to_have_text("6 of 8 credits used · 2 left")
    member.evaluate("window.scrollTo(0, 0)")  # the sidebar's team project and budget, and who pays
    member.screenshot(path=screenshots / "studio-team-project.png")

    owner.goto(f"/organizations/{org_id}")
    listed = owner.get_by_test_id("org-projects").get_by_role("link", name="Harbour launch")
    expect(listed).to_have_attribute("href", f"/studio?project={project_id}")
    expect(owner.get_by_test_id("org-wallet")).to_have_text("34")
