"""Invitations to an organization: an owner or admin invites an address with a role; the email carries a
single-use link that expires, and it joins only the account of the invited address.

Accepting is refused, and nothing joined, for a link already used, an expired one, or one opened by another
address's account; the last case leaves the link usable by the invited account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from reelgate.db.queries import organizations as org_queries
from reelgate.db.queries import users as user_queries
from reelgate.db.records import OrganizationInvitation, OrganizationMember
from reelgate.db.sql import Tx
from reelgate.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from reelgate.domain.ids import new_id
from reelgate.services import accounts, mail
from reelgate.services import organizations as orgs
from reelgate.services.context import ServiceContext

LIFETIME = timedelta(days=7)
INVALID_LINK = "This invitation is not valid: it was used already, it has expired, or it is for another address."


@dataclass(frozen=True)
class Joined:
    organization_id: str
    role: str


async def invite(
    ctx: ServiceContext, organization_id: str, actor_id: str, email: str, role: str
) -> OrganizationInvitation:
    """Queues the invitation email in the transaction that records the invitation (the outbox rule)."""
    address = accounts.normalize_email(email)
    orgs.check_role(role)
    if not mail.enabled(ctx):
        raise ValidationFailed("email", "Email is not set up on this site (no SMTP server or mail folder).")
    now = ctx.clock()

    def record(tx: Tx) -> OrganizationInvitation:
        actor = orgs.managing_in(tx, organization_id, actor_id)
        if role == orgs.OWNER and actor.role != orgs.OWNER:
            raise Forbidden("Only an owner can invite an owner.")
        invited = user_queries.user_by_email(tx, address)
        if invited is not None and org_queries.member(tx, organization_id, invited.id) is not None:
            raise Conflict(f"{address} already belongs to this organization.")
        inviter = user_queries.user_by_id(tx, actor_id)
        invitation = OrganizationInvitation(
            id=new_id("inv"),
            organization_id=organization_id,
            email=address,
            role=role,
            invited_by=actor_id,
            token_hash=None,  # made when the email is sent; only its hash is kept
            expires_at=now + LIFETIME,
            used_at=None,
            created_at=now,
        )
        org_queries.insert_invitation(tx, invitation)
        payload = {
            "invitation_id": invitation.id,
            "to": address,
            "role": role,
            "organization": actor.organization.name,
            "inviter": (inviter.display_name or inviter.email) if inviter else "A member",
        }
        mail.queue(
            tx, user_id=actor_id, kind="organization_invitation", event_key=invitation.id, payload=payload, now=now
        )
        return invitation

    return await ctx.db.write(record)


async def pending(ctx: ServiceContext, organization_id: str, actor_id: str) -> list[OrganizationInvitation]:
    def read(tx: Tx) -> list[OrganizationInvitation]:
        orgs.managing_in(tx, organization_id, actor_id)
        return org_queries.pending_invitations(tx, organization_id, ctx.clock())

    return await ctx.db.read(read)


async def accept(ctx: ServiceContext, user_id: str, token: str) -> Joined:
    """Joins the signed-in account with the invited role, once."""
    now = ctx.clock()

    def use(tx: Tx) -> Joined:
        invitation = org_queries.invitation_by_hash(tx, mail.hash_token(token))
        user = user_queries.user_by_id(tx, user_id)
        # Another address's account is refused before the link is used, so the invited account can still use it.
        if invitation is None or user is None or user.email != invitation.email:
            raise NotFound(INVALID_LINK)
        if not org_queries.use_invitation(tx, invitation.id, now):
            raise NotFound(INVALID_LINK)
        member = OrganizationMember(invitation.organization_id, user_id, invitation.role, now)
        if not org_queries.add_member(tx, member):
            raise Conflict("You already belong to this organization.")
        return Joined(invitation.organization_id, invitation.role)

    return await ctx.db.write(use)
