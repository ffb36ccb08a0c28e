"""/api/v1/organizations: teams with a shared wallet, their members and invitations. Every route looks the
organization up through the caller's membership, so another organization's id answers 404."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from reelgate.api.deps import Ctx, CurrentUser
from reelgate.api.presenters import generation_out, payment_out, project_out
from reelgate.api.schemas import ApiKeyCreate
from reelgate.api.schemas_orgs import InvitationAccept, InvitationCreate, MemberCaps, OrganizationCreate, RoleChange
from reelgate.db.records import OrganizationInvitation
from reelgate.services import billing, ledger, member_caps, org_invitations, org_keys, projects
from reelgate.services import organizations as orgs

router = APIRouter(prefix="/api/v1/organizations", tags=["organizations"])


def _organization_out(membership: orgs.Membership) -> dict[str, Any]:
    org = membership.organization
    return {"id": org.id, "name": org.name, "role": membership.role, "created_at": org.created_at.isoformat()}


def _invitation_out(invitation: OrganizationInvitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "organization_id": invitation.organization_id,
        "email": invitation.email,
        "role": invitation.role,
        "expires_at": invitation.expires_at.isoformat(),
    }


@router.post("", status_code=201)
async def create_organization(body: OrganizationCreate, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """Creates an organization; its creator is its owner."""
    return _organization_out(await orgs.create(ctx, user.id, body.name))


@router.get("")
async def list_organizations(user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    return {"data": [_organization_out(m) for m in await orgs.list_mine(ctx, user.id)]}


@router.post("/invitations/accept")
async def accept_invitation(body: InvitationAccept, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """Joins the organization with the invited role. Only the invited address's account can, and only once,
    before the invitation expires."""
    joined = await org_invitations.accept(ctx, user.id, body.token)
    return {"organization_id": joined.organization_id, "role": joined.role}


@router.get("/{organization_id}")
async def get_organization(organization_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """The organization, the caller's role, and its wallet (every member may see what it holds)."""
    membership = await orgs.membership(ctx, organization_id, user.id)
    credits = await ledger.credits_of(ctx, organization_id)
    return {**_organization_out(membership), "credits": {"available": credits.available, "held": credits.held}}


@router.get("/{organization_id}/members")
async def list_members(organization_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    rows = await orgs.members(ctx, organization_id, user.id)
    return {
        "data": [
            {
                "user_id": m.user_id,
                "email": u.email,
                "display_name": u.display_name,
                "role": m.role,
                "joined_at": m.created_at.isoformat(),
            }
            for m, u in rows
        ]
    }


@router.patch("/{organization_id}/members/{member_id}")
async def change_member_role(
    organization_id: str, member_id: str, body: RoleChange, user: CurrentUser, ctx: Ctx
) -> dict[str, Any]:
    """Owners and admins change roles; only an owner makes or unmakes an owner, and the last owner stays one."""
    role = await orgs.change_role(ctx, organization_id, user.id, member_id, body.role)
    return {"user_id": member_id, "role": role}


@router.put("/{organization_id}/members/{member_id}/caps")
async def set_member_caps(
    organization_id: str, member_id: str, body: MemberCaps, user: CurrentUser, ctx: Ctx
) -> dict[str, Any]:
    """Caps what the member may spend from the wallet per UTC day and per calendar month (owners and admins);
    a submit that would pass a cap is refused with 402 `spend_cap_reached` and the figures."""
    await member_caps.set_caps(ctx, organization_id, user.id, member_id, body.daily_cap, body.monthly_cap)
    return {"user_id": member_id, "daily_cap": body.daily_cap, "monthly_cap": body.monthly_cap}


@router.get("/{organization_id}/spend")
async def spend_per_member(organization_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """What each member spent from the wallet today and this month, with their caps (owners and admins)."""
    return {"data": [asdict(row) for row in await member_caps.spend(ctx, organization_id, user.id)]}


@router.get("/{organization_id}/payments")
async def list_organization_payments(
    organization_id: str, user: CurrentUser, ctx: Ctx, limit: int = Query(default=50, ge=1, le=500)
) -> dict[str, Any]:
    """Stripe purchases for the organization's wallet, newest first, with who bought each (owners and admins;
    buy with `organization` on POST /api/v1/credits/checkout)."""
    return {
        "data": [
            payment_out(p) for p in await billing.organization_payments(ctx, organization_id, user.id, limit=limit)
        ]
    }


@router.delete("/{organization_id}/members/{member_id}", status_code=204)
async def remove_member(organization_id: str, member_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    """Removes a member (owners and admins), or leaves (a member's own id). The last owner cannot leave."""
    await orgs.remove(ctx, organization_id, user.id, member_id)
    return Response(status_code=204)


@router.get("/{organization_id}/generations")
async def list_organization_generations(
    organization_id: str,
    user: CurrentUser,
    ctx: Ctx,
    cursor: str = Query(default="", max_length=40),
    limit: int = Query(default=50, ge=1, le=100),
) -> dict[str, Any]:
    """Generations paid by the organization's wallet, newest first: all of them for owners and admins, your own
    for a member. `cursor`: the last id of the previous page."""
    found = await orgs.generations(ctx, organization_id, user.id, before_id=cursor, limit=limit + 1)
    page = found[:limit]
    data = [generation_out(g, ctx.config.public_url).model_dump(mode="json") | {"user_id": g.user_id} for g in page]
    return {"data": data, "next_cursor": page[-1].id if len(found) > limit else None}


@router.get("/{organization_id}/projects")
async def list_organization_projects(organization_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """The organization's projects (team campaigns), for any member. Owners and admins create them with
    `POST /api/v1/projects` and `"organization"`."""
    found = await projects.organization_projects(ctx, organization_id, user.id)
    return {"data": [project_out(p).model_dump() for p in found]}


@router.post("/{organization_id}/api-keys", status_code=201)
async def create_organization_key(
    organization_id: str, body: ApiKeyCreate, user: CurrentUser, ctx: Ctx
) -> dict[str, Any]:
    """A key that acts as the organization: its submits pay from the wallet. Owners and admins; the secret is
    shown once. It stops working when revoked, or when its maker leaves or is no longer an owner or admin."""
    key = await org_keys.create(ctx, organization_id, user.id, body.name)
    return {"id": key.id, "name": key.name, "key": key.secret, "organization_id": organization_id}


@router.get("/{organization_id}/api-keys")
async def list_organization_keys(organization_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    keys = await org_keys.list_keys(ctx, organization_id, user.id)
    return {
        "data": [
            {
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "created_by": k.user_id,
                "created_at": k.created_at.isoformat(),
                "revoked": k.revoked_at is not None,
            }
            for k in keys
        ]
    }


@router.delete("/{organization_id}/api-keys/{key_id}", status_code=204)
async def revoke_organization_key(organization_id: str, key_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    await org_keys.revoke(ctx, organization_id, user.id, key_id)
    return Response(status_code=204)


@router.post("/{organization_id}/invitations", status_code=201)
async def invite_member(organization_id: str, body: InvitationCreate, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """Emails an invitation: a single-use link, valid for seven days, for the account of that address."""
    invitation = await org_invitations.invite(ctx, organization_id, user.id, body.email, body.role)
    return _invitation_out(invitation)


@router.get("/{organization_id}/invitations")
async def list_invitations(organization_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """Invitations not yet accepted nor expired (owners and admins)."""
    return {"data": [_invitation_out(i) for i in await org_invitations.pending(ctx, organization_id, user.id)]}
