"""Tables of account security: studio sessions kept on the server, and the administrators' audit log."""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table, Text

from reelgate.db.tables import metadata
from reelgate.db.types import UTCDateTime

# One row per signed-in browser. The cookie carries a random token; only its SHA-256 is stored (the id), so a
# copy of the database signs nobody in. Ending a session deletes its row: the cookie stops working at once.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # When the password was last typed in this session (sign-in, or a confirmation before a sensitive action).
    Column("authenticated_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=False),
    Column("user_agent", String(200), nullable=False),
    Column("address", String(64), nullable=False),
)

# What administrators did to users and their credits: who, to whom, what, when. Rows are never changed.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("actor_id", String(40)),  # None: the command line on the server
    Column("action", String(40), nullable=False),
    Column("target_user_id", String(40)),
    Column("target_email", String(320), nullable=False),
    Column("detail", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_audit_log_created", "created_at"),
)
