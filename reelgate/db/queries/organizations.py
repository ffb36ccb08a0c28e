"""Organizations, their members and invitations. Every read of an organization goes through a membership, so a
user who does not belong to it finds nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from reelgate.db.codec import decode_row
from reelgate.db.records import ApiKey, Generation, Organization, OrganizationInvitation, OrganizationMember, User
from reelgate.db.sql import Tx, columns, in_states, insert_query, query, values_of
from reelgate.domain.jobs import GenerationStatus

_ORG = columns(Organization, "o")
_INSERT_ORG = insert_query(Organization)
_ORG_EXISTS = query("SELECT 1 FROM organizations WHERE id = :id")
_INSERT_MEMBER = insert_query(OrganizationMember, if_absent=True)
_INSERT_INVITATION = insert_query(OrganizationInvitation)
_ORGS_OF = query(
    f"SELECT {_ORG}, m.role FROM organizations o JOIN organization_members m ON m.organization_id = o.id "
    "WHERE m.user_id = :user_id ORDER BY o.created_at"
)
# The organization and the caller's role in it, or nothing: the one scoped lookup by id.
_ORG_OF_MEMBER = query(
    f"SELECT {_ORG}, m.role FROM organizations o JOIN organization_members m ON m.organization_id = o.id "
    "WHERE o.id = :organization_id AND m.user_id = :user_id"
)
# Membership changes of one organization run one at a time: the organization's row is locked first
# (PostgreSQL; SQLite's single writer serializes them anyway), so "is this the last owner?" stays true until
# the COMMIT.
_LOCK_ORG = query("SELECT id FROM organizations WHERE id = :organization_id FOR UPDATE")
_MEMBERS = query(
    f"SELECT {columns(OrganizationMember, 'm')}, {columns(User, 'u')} FROM organization_members m "
    "JOIN users u ON u.id = m.user_id WHERE m.organization_id = :organization_id ORDER BY m.created_at, u.email"
)
_MEMBER = query(
    f"SELECT {columns(OrganizationMember)} FROM organization_members "
    "WHERE organization_id = :organization_id AND user_id = :user_id",
    row=OrganizationMember,
)
_COUNT_OWNERS = query(
    "SELECT count(*) FROM organization_members WHERE organization_id = :organization_id AND role = 'owner'"
)
_SET_ROLE = query(
    "UPDATE organization_members SET role = :role WHERE organization_id = :organization_id AND user_id = :user_id"
)
_REMOVE = query("DELETE FROM organization_members WHERE organization_id = :organization_id AND user_id = :user_id")
_INVITATION_BY_ID = query(
    f"SELECT {columns(OrganizationInvitation)} FROM organization_invitations WHERE id = :id",
    row=OrganizationInvitation,
)
_INVITATION_BY_HASH = query(
    f"SELECT {columns(OrganizationInvitation)} FROM organization_invitations WHERE token_hash = :token_hash",
    row=OrganizationInvitation,
)
_PENDING_INVITATIONS = query(
    f"SELECT {columns(OrganizationInvitation)} FROM organization_invitations "
    "WHERE organization_id = :organization_id AND used_at IS NULL AND expires_at > :now ORDER BY created_at",
    row=OrganizationInvitation,
)
_SET_INVITATION_HASH = query(
    "UPDATE organization_invitations SET token_hash = :token_hash WHERE id = :id AND used_at IS NULL"
)
# Used once: the compare-and-set on used_at lets exactly one acceptance through.
_USE_INVITATION = query(
    "UPDATE organization_invitations SET used_at = :now WHERE id = :id AND used_at IS NULL AND expires_at > :now"
)


# Newest first, keyset pagination on the time-ordered id; `:user_id` empty: every member's.
_PAID_BY = query(
    f"SELECT {columns(Generation)} FROM generations WHERE account_id = :account_id AND deleted_at IS NULL "
    "AND (:user_id = '' OR user_id = :user_id) AND (:before_id = '' OR id < :before_id) "
    "ORDER BY id DESC LIMIT :limit",
    row=Generation,
)


_ORG_KEYS = query(
    f"SELECT {columns(ApiKey)} FROM api_keys WHERE organization_id = :organization_id ORDER BY created_at DESC",
    row=ApiKey,
)
_REVOKE_ORG_KEY = query(
    "UPDATE api_keys SET revoked_at = :now WHERE id = :id AND organization_id = :organization_id AND revoked_at IS NULL"
)
_REVOKE_KEYS_MADE_BY = query(
    "UPDATE api_keys SET revoked_at = :now WHERE organization_id = :organization_id AND user_id = :user_id "
    "AND revoked_at IS NULL"
)


_SET_CAPS = query(
    "UPDATE organization_members SET daily_cap = :daily_cap, monthly_cap = :monthly_cap "
    "WHERE organization_id = :organization_id AND user_id = :user_id"
)
# What a job spent: a refunded one nothing, a finished one its charge, an unfinished one its hold.
_REFUNDED = in_states({GenerationStatus.FAILED, GenerationStatus.CANCELED, GenerationStatus.EXPIRED})
_SPENT = f"CASE WHEN status = '{GenerationStatus.SUCCEEDED.value}' THEN credits_charged ELSE credits_held END"
_MEMBER_SPENT = query(
    f"SELECT COALESCE(SUM({_SPENT}), 0) FROM generations WHERE account_id = :account_id AND user_id = :user_id "
    f"AND created_at >= :since AND status NOT IN {_REFUNDED}"
)
_SPEND_PER_MEMBER = query(
    f"SELECT user_id, COALESCE(SUM(CASE WHEN created_at >= :day THEN {_SPENT} ELSE 0 END), 0), "
    f"COALESCE(SUM({_SPENT}), 0) FROM generations WHERE account_id = :account_id AND created_at >= :month "
    f"AND status NOT IN {_REFUNDED} GROUP BY user_id"
)


def _organization(tx: Tx, row: Sequence[Any]) -> tuple[Organization, str]:
    """An organization's columns, then the member's role."""
    return decode_row(Organization, tx.dialect, row[:-1]), str(row[-1])


def insert_organization(tx: Tx, organization: Organization) -> None:
    tx.run(_INSERT_ORG, values_of(organization))


def organization_exists(tx: Tx, organization_id: str) -> bool:
    return tx.scalar(_ORG_EXISTS, {"id": organization_id}) is not None


def add_member(tx: Tx, member: OrganizationMember) -> bool:
    """False when the user already belongs to the organization."""
    return tx.run(_INSERT_MEMBER, values_of(member)) == 1


def organizations_of(tx: Tx, user_id: str) -> list[tuple[Organization, str]]:
    """The user's organizations, each with the user's role in it."""
    return [_organization(tx, row) for row in tx.all(_ORGS_OF, {"user_id": user_id})]


def organization_of_member(tx: Tx, organization_id: str, user_id: str) -> tuple[Organization, str] | None:
    found = tx.one(_ORG_OF_MEMBER, {"organization_id": organization_id, "user_id": user_id})
    return None if found is None else _organization(tx, found)


def lock_organization(tx: Tx, organization_id: str) -> None:
    tx.run(_LOCK_ORG, {"organization_id": organization_id})


def members(tx: Tx, organization_id: str) -> list[tuple[OrganizationMember, User]]:
    width = len(OrganizationMember.__dataclass_fields__)
    rows = tx.all(_MEMBERS, {"organization_id": organization_id})
    return [
        (decode_row(OrganizationMember, tx.dialect, row[:width]), decode_row(User, tx.dialect, row[width:]))
        for row in rows
    ]


def member(tx: Tx, organization_id: str, user_id: str) -> OrganizationMember | None:
    found: OrganizationMember | None = tx.one(_MEMBER, {"organization_id": organization_id, "user_id": user_id})
    return found


def count_owners(tx: Tx, organization_id: str) -> int:
    return int(tx.scalar(_COUNT_OWNERS, {"organization_id": organization_id}))


def set_role(tx: Tx, organization_id: str, user_id: str, role: str) -> None:
    tx.run(_SET_ROLE, {"organization_id": organization_id, "user_id": user_id, "role": role})


def remove_member(tx: Tx, organization_id: str, user_id: str) -> bool:
    return tx.run(_REMOVE, {"organization_id": organization_id, "user_id": user_id}) == 1


def generations_paid_by(tx: Tx, account_id: str, *, user_id: str, before_id: str, limit: int) -> list[Generation]:
    """Generations the organization's wallet paid (one member's when `user_id` is not empty)."""
    params = {"account_id": account_id, "user_id": user_id, "before_id": before_id, "limit": limit}
    return tx.all(_PAID_BY, params)


def organization_keys(tx: Tx, organization_id: str) -> list[ApiKey]:
    return tx.all(_ORG_KEYS, {"organization_id": organization_id})


def revoke_organization_key(tx: Tx, organization_id: str, key_id: str, now: datetime) -> bool:
    return tx.run(_REVOKE_ORG_KEY, {"id": key_id, "organization_id": organization_id, "now": now}) == 1


def revoke_keys_made_by(tx: Tx, organization_id: str, user_id: str, now: datetime) -> int:
    return tx.run(_REVOKE_KEYS_MADE_BY, {"organization_id": organization_id, "user_id": user_id, "now": now})


def set_caps(tx: Tx, organization_id: str, user_id: str, daily_cap: int | None, monthly_cap: int | None) -> None:
    params = {"organization_id": organization_id, "user_id": user_id}
    tx.run(_SET_CAPS, {**params, "daily_cap": daily_cap, "monthly_cap": monthly_cap})


def member_spent_since(tx: Tx, account_id: str, user_id: str, since: datetime) -> int:
    """Credits the member's jobs on the wallet hold or were charged, since `since` (the caller's job included)."""
    return int(tx.scalar(_MEMBER_SPENT, {"account_id": account_id, "user_id": user_id, "since": since}))


def spend_per_member(tx: Tx, account_id: str, day: datetime, month: datetime) -> dict[str, tuple[int, int]]:
    """Each member's spend on the wallet: (since `day`, since `month`)."""
    rows = tx.all(_SPEND_PER_MEMBER, {"account_id": account_id, "day": day, "month": month})
    return {str(user_id): (int(today), int(this_month)) for user_id, today, this_month in rows}


def insert_invitation(tx: Tx, invitation: OrganizationInvitation) -> None:
    tx.run(_INSERT_INVITATION, values_of(invitation))


def invitation_by_id(tx: Tx, invitation_id: str) -> OrganizationInvitation | None:
    found: OrganizationInvitation | None = tx.one(_INVITATION_BY_ID, {"id": invitation_id})
    return found


def invitation_by_hash(tx: Tx, token_hash: str) -> OrganizationInvitation | None:
    found: OrganizationInvitation | None = tx.one(_INVITATION_BY_HASH, {"token_hash": token_hash})
    return found


def pending_invitations(tx: Tx, organization_id: str, now: datetime) -> list[OrganizationInvitation]:
    return tx.all(_PENDING_INVITATIONS, {"organization_id": organization_id, "now": now})


def set_invitation_hash(tx: Tx, invitation_id: str, token_hash: str) -> bool:
    return tx.run(_SET_INVITATION_HASH, {"id": invitation_id, "token_hash": token_hash}) == 1


def use_invitation(tx: Tx, invitation_id: str, now: datetime) -> bool:
    return tx.run(_USE_INVITATION, {"id": invitation_id, "now": now}) == 1
