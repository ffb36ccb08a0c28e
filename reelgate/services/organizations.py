"""Organizations: a team whose members generate on a shared wallet. The user who creates one is its owner;
owners and admins manage the members (invitations are in org_invitations.py).

Every use case looks the organization up through the caller's membership (`membership`), so an organization the
caller does not belong to, or no longer belongs to, is NotFound (404): its ids cannot be probed, and a removed
member loses access with the next request."""

from __future__ import annotations

from dataclasses import dataclass

from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.queries import organizations as org_queries
from reelgate.db.records import Generation, Organization, OrganizationMember, User
from reelgate.db.sql import Tx
from reelgate.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from reelgate.domain.ids import new_id
from reelgate.services.context import ServiceContext

OWNER, ADMIN, MEMBER = "owner", "admin", "member"
ROLES = (OWNER, ADMIN, MEMBER)
MANAGERS = (OWNER, ADMIN)
NOT_FOUND = "Organization not found."


@dataclass(frozen=True)
class Membership:
    organization: Organization
    role: str

    @property
    def manages(self) -> bool:
        return self.role in MANAGERS


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValidationFailed("role", "The role must be owner, admin or member.", allowed=list(ROLES))
    return role


def check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > 120:
        raise ValidationFailed("name", "The name must have 1 to 120 characters.")
    return cleaned


def membership_in(tx: Tx, organization_id: str, user_id: str) -> Membership:
    """The caller's membership, read in the caller's transaction; NotFound when there is none."""
    found = org_queries.organization_of_member(tx, organization_id, user_id)
    if found is None:
        raise NotFound(NOT_FOUND)
    return Membership(*found)


async def membership(ctx: ServiceContext, organization_id: str, user_id: str) -> Membership:
    return await ctx.db.read(lambda tx: membership_in(tx, organization_id, user_id))


def managing_in(tx: Tx, organization_id: str, user_id: str) -> Membership:
    """The caller's membership when the caller is an owner or an admin: a plain member may look but not manage."""
    found = membership_in(tx, organization_id, user_id)
    if not found.manages:
        raise Forbidden("Only the organization's owners and admins can do this.")
    return found


async def create(ctx: ServiceContext, user_id: str, name: str) -> Membership:
    now = ctx.clock()
    organization = Organization(id=new_id("org"), name=check_name(name), created_by=user_id, created_at=now)

    def make(tx: Tx) -> None:
        org_queries.insert_organization(tx, organization)
        # The organization's wallet: an account of the same ledger, keyed by the organization's id.
        ledger_queries.open_account(tx, organization.id)
        org_queries.add_member(tx, OrganizationMember(organization.id, user_id, OWNER, now))

    await ctx.db.write(make)
    return Membership(organization, OWNER)


async def list_mine(ctx: ServiceContext, user_id: str) -> list[Membership]:
    rows = await ctx.db.read(lambda tx: org_queries.organizations_of(tx, user_id))
    return [Membership(org, role) for org, role in rows]


async def members(ctx: ServiceContext, organization_id: str, user_id: str) -> list[tuple[OrganizationMember, User]]:
    """Any member may see who else belongs."""

    def read(tx: Tx) -> list[tuple[OrganizationMember, User]]:
        membership_in(tx, organization_id, user_id)
        return org_queries.members(tx, organization_id)

    return await ctx.db.read(read)


async def generations(
    ctx: ServiceContext, organization_id: str, user_id: str, *, before_id: str = "", limit: int = 50
) -> list[Generation]:
    """The generations the organization's wallet paid: every member's for owners and admins, a member's own
    otherwise. The members still own their generations; this is the wallet's view of them."""

    def read(tx: Tx) -> list[Generation]:
        found = membership_in(tx, organization_id, user_id)
        only = "" if found.manages else user_id
        return org_queries.generations_paid_by(tx, organization_id, user_id=only, before_id=before_id, limit=limit)

    return await ctx.db.read(read)


def _target(tx: Tx, organization_id: str, user_id: str) -> OrganizationMember:
    found = org_queries.member(tx, organization_id, user_id)
    if found is None:
        raise NotFound("Member not found.")
    return found


def _keep_an_owner(tx: Tx, organization_id: str, target: OrganizationMember) -> None:
    """An organization always has an owner: the last one can neither leave, be removed nor be demoted."""
    if target.role == OWNER and org_queries.count_owners(tx, organization_id) <= 1:
        raise Conflict("The organization's last owner cannot leave or stop being an owner; make another owner first.")


def may_touch(actor: Membership, target_role: str, new_role: str | None = None) -> None:
    """Owners manage everyone; admins manage admins and members, and cannot make owners."""
    if actor.role == OWNER:
        return
    if target_role == OWNER or new_role == OWNER:
        raise Forbidden("Only an owner can change an owner or make one.")


async def change_role(ctx: ServiceContext, organization_id: str, actor_id: str, user_id: str, role: str) -> str:
    check_role(role)

    def change(tx: Tx) -> str:
        actor = managing_in(tx, organization_id, actor_id)
        org_queries.lock_organization(tx, organization_id)
        target = _target(tx, organization_id, user_id)
        may_touch(actor, target.role, role)
        if target.role != role:
            _keep_an_owner(tx, organization_id, target)
            org_queries.set_role(tx, organization_id, user_id, role)
        return role

    return await ctx.db.write(change)


async def remove(ctx: ServiceContext, organization_id: str, actor_id: str, user_id: str) -> None:
    """An owner or admin removes a member; any member may remove themselves (leave)."""

    def drop(tx: Tx) -> None:
        actor = membership_in(tx, organization_id, actor_id)
        org_queries.lock_organization(tx, organization_id)
        target = _target(tx, organization_id, user_id)
        if actor_id != user_id:
            if not actor.manages:
                raise Forbidden("Only the organization's owners and admins can remove members.")
            may_touch(actor, target.role)
        _keep_an_owner(tx, organization_id, target)
        org_queries.remove_member(tx, organization_id, user_id)
        # The organization's keys the member made stop with the membership (authentication also checks it).
        org_queries.revoke_keys_made_by(tx, organization_id, user_id, ctx.clock())

    await ctx.db.write(drop)
