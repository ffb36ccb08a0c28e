"""Tables of outgoing email: the outbox, each account's opt-outs, and single-use tokens sent by email."""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from reelgate.db.tables import metadata
from reelgate.db.types import UTCDateTime


def _fk(target: str) -> ForeignKey:
    return ForeignKey(target, ondelete="CASCADE")


# One email to send, written in the same transaction as the event that causes it. (kind, event_key) is unique:
# an event queues its email once, however often the transaction that records it runs.
email_outbox = Table(
    "email_outbox",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), _fk("users.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("event_key", String(120), nullable=False),
    Column("payload", JSON, nullable=False),
    # pending, sent, failed (retries used up), skipped (opted out, or no way to send mail configured)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    # Also the claim: a worker pushes it forward before sending, so no two workers send the same email.
    Column("next_attempt_at", UTCDateTime()),
    Column("last_error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    Index("ux_email_outbox_kind_event", "kind", "event_key", unique=True),
    Index("ix_email_outbox_status_next", "status", "next_attempt_at"),
)

# The kinds of email an account chose not to receive (password reset and address verification are always sent).
email_opt_outs = Table(
    "email_opt_outs",
    metadata,
    Column("user_id", String(40), _fk("users.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("user_id", "kind"),
)

# A password reset or an address verification. The token itself is made when the email is sent and only its
# SHA-256 is stored; it works once, until expires_at.
email_tokens = Table(
    "email_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), _fk("users.id"), nullable=False, index=True),
    Column("purpose", String(32), nullable=False),
    Column("token_hash", String(64), unique=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
)
