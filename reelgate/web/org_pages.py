"""The studio's organization pages: the user's organizations (create one), an organization's wallet, members,
invitations, spend per member and projects (team campaigns), and the page an invitation email links to."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from reelgate.api.deps import Ctx
from reelgate.domain.errors import ReelgateError
from reelgate.services import ledger, member_caps, org_invitations, projects
from reelgate.services import organizations as orgs
from reelgate.services.context import ServiceContext
from reelgate.web.common import FormViewer, PageViewer, budget_from_form, redirect, render

router = APIRouter(include_in_schema=False)


async def wallets(ctx: ServiceContext, user_id: str) -> list[dict[str, Any]]:
    """The organizations whose wallet the user may pay with, the user's role in each and what each holds (the
    Teams list and the studio's wallet switcher)."""
    found = []
    for membership in await orgs.list_mine(ctx, user_id):
        org = membership.organization
        credits = await ledger.credits_of(ctx, org.id)
        found.append(
            {
                "id": org.id,
                "name": org.name,
                "role": membership.role,
                "manages": membership.manages,  # may change the organization's projects, members and keys
                "available": credits.available,
            }
        )
    return found


@router.get("/organizations", response_class=HTMLResponse)
async def organizations_page(request: Request, current: PageViewer, ctx: Ctx) -> HTMLResponse:
    return render(request, "organizations.html", current, wallets=await wallets(ctx, current.user.id))


@router.post("/organizations")
async def create_organization(
    request: Request, current: FormViewer, ctx: Ctx, name: Annotated[str, Form(max_length=500)]
) -> Response:
    try:
        made = await orgs.create(ctx, current.user.id, name)
    except ReelgateError as exc:
        return redirect(request, "/organizations", error=exc.message)
    return redirect(request, f"/organizations/{made.organization.id}", notice="Organization created.")


@router.get("/organizations/join", response_class=HTMLResponse)
async def join_page(
    request: Request, current: PageViewer, token: Annotated[str, Query(max_length=200)] = ""
) -> HTMLResponse:
    # A button, not the link itself, uses the token: mail scanners that open links must not spend it.
    return render(request, "org_join.html", current, token=token)


@router.post("/organizations/join")
async def join(
    request: Request, current: FormViewer, ctx: Ctx, token: Annotated[str, Form(max_length=200)]
) -> Response:
    try:
        joined = await org_invitations.accept(ctx, current.user.id, token)
    except ReelgateError as exc:
        return redirect(request, "/organizations", error=exc.message)
    return redirect(request, f"/organizations/{joined.organization_id}", notice=f"You joined as {joined.role}.")


@router.get("/organizations/{organization_id}", response_class=HTMLResponse)
async def organization_page(organization_id: str, request: Request, current: PageViewer, ctx: Ctx) -> Response:
    try:
        membership = await orgs.membership(ctx, organization_id, current.user.id)
    except ReelgateError as exc:
        return render(request, "error.html", current, status_code=404, title="Not found", message=exc.message)
    values: dict[str, Any] = {
        "membership": membership,
        "wallet": await ledger.credits_of(ctx, organization_id),
        "members": await orgs.members(ctx, organization_id, current.user.id),
        "spend": [],
        "invitations": [],
        "projects": await projects.organization_projects(ctx, organization_id, current.user.id),
    }
    if membership.manages:
        values["spend"] = await member_caps.spend(ctx, organization_id, current.user.id)
        values["invitations"] = await org_invitations.pending(ctx, organization_id, current.user.id)
    return render(request, "organization.html", current, **values)


@router.post("/organizations/{organization_id}/invitations")
async def invite(
    organization_id: str,
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    email: Annotated[str, Form(max_length=320)],
    role: Annotated[str, Form(max_length=16)] = "member",
) -> Response:
    page = f"/organizations/{organization_id}"
    try:
        await org_invitations.invite(ctx, organization_id, current.user.id, email, role)
    except ReelgateError as exc:
        return redirect(request, page, error=exc.message)
    return redirect(request, page, notice=f"Invitation sent to {email.strip().lower()}.")


@router.post("/organizations/{organization_id}/projects")
async def create_project(
    organization_id: str,
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    name: Annotated[str, Form(max_length=500)],
    budget_credits: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """A team project (owners and admins): its members file generations into it on the organization's wallet."""
    page = f"/organizations/{organization_id}"
    try:
        budget = budget_from_form(budget_credits)
        made = await projects.create_project(
            ctx, current.user.id, name, budget_credits=budget, organization_id=organization_id
        )
    except ReelgateError as exc:
        return redirect(request, page, error=exc.message)
    return redirect(request, f"/studio?project={made.id}", notice=f"Project “{made.name}” created for the team.")
