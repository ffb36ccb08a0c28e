"""Tables of the client-facing API: outbound webhooks (endpoints, outbox, attempts) and /v1/videos bookkeeping."""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Table, Text

from reelgate.db.tables import metadata
from reelgate.db.types import UTCDateTime


def _fk(target: str) -> ForeignKey:
    return ForeignKey(target, ondelete="CASCADE")


# An account's webhook URL. Deleting keeps the row (deleted_at) so its delivery log stays readable.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), _fk("users.id"), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("description", String(255), nullable=False),
    Column("events", JSON, nullable=False),
    # Stored in clear: HMAC signing needs the key itself. The previous key signs too until it expires.
    Column("secret", String(128), nullable=False),
    Column("previous_secret", String(128)),
    Column("previous_secret_expires_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime()),
)

# One signing secret per account for the per-generation callback_url deliveries.
webhook_callback_secrets = Table(
    "webhook_callback_secrets",
    metadata,
    Column("user_id", String(40), _fk("users.id"), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("previous_secret", String(128)),
    Column("previous_secret_expires_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
)

# A generation's terminal event, written in the same transaction as the state change (the outbox).
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), _fk("users.id"), nullable=False, index=True),
    Column("type", String(40), nullable=False),
    Column("generation_id", String(40), _fk("generations.id"), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

# One event to one URL. Its id is the `webhook-id` header, the same on every retry.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("event_id", String(40), _fk("webhook_events.id"), nullable=False, index=True),
    Column("user_id", String(40), _fk("users.id"), nullable=False, index=True),
    # None for a generation's own callback_url (signed with the account's callback secret).
    Column("endpoint_id", String(40), _fk("webhook_endpoints.id"), index=True),
    Column("url", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    # Also the claim: a worker pushes it forward before sending, so no two workers send at once.
    Column("next_attempt_at", UTCDateTime()),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
)

# Every try of a delivery: what came back and how long it took.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(40), _fk("webhook_deliveries.id"), nullable=False, index=True),
    Column("attempted_at", UTCDateTime(), nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    Column("detail", JSON, nullable=False),
)

# A generation deleted through DELETE /v1/videos/{id}: hidden from the videos API from then on.
video_deletions = Table(
    "video_deletions",
    metadata,
    Column("generation_id", String(40), _fk("generations.id"), primary_key=True),
    Column("user_id", String(40), _fk("users.id"), nullable=False, index=True),
    Column("deleted_at", UTCDateTime(), nullable=False),
)

# Which video a remix came from (the videos API's remixed_from_video_id).
video_remixes = Table(
    "video_remixes",
    metadata,
    Column("generation_id", String(40), _fk("generations.id"), primary_key=True),
    Column("source_id", String(40), nullable=False),
)
