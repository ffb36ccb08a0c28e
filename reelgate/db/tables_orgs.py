"""Tables of organizations: teams whose members generate on a shared wallet, their members and invitations."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, PrimaryKeyConstraint, String, Table

from reelgate.db.tables import metadata
from reelgate.db.types import UTCDateTime


def _fk(target: str) -> ForeignKey:
    return ForeignKey(target, ondelete="CASCADE")


organizations = Table(
    "organizations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("created_by", String(40), nullable=False),  # kept after that user leaves: a fact, not a link
    Column("created_at", UTCDateTime(), nullable=False),
)

# Who belongs to which organization, and as what: owner, admin or member. Removing the row is the whole of a
# removal: every check of an organization's resources reads this table, so access ends with the next request.
organization_members = Table(
    "organization_members",
    metadata,
    Column("organization_id", String(40), _fk("organizations.id"), nullable=False),
    Column("user_id", String(40), _fk("users.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # The most the member may spend from the organization's wallet per UTC day and per calendar month (credits
    # held or charged by the member's jobs on it); None: no cap.
    Column("daily_cap", BigInteger),
    Column("monthly_cap", BigInteger),
    PrimaryKeyConstraint("organization_id", "user_id"),
    Index("ix_organization_members_user", "user_id"),
)

# An invitation by email. As with the password reset tokens, the secret is made when the email is sent and only
# its SHA-256 is stored; it works once, until expires_at, and only for the account of the invited address.
organization_invitations = Table(
    "organization_invitations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("organization_id", String(40), _fk("organizations.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False),
    Column("role", String(16), nullable=False),
    Column("invited_by", String(40), nullable=False),
    Column("token_hash", String(64), unique=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
)
