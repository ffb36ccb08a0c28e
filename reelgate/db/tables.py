"""The schema, as SQLAlchemy Core tables: what Alembic's migrations build and the schema test compares.

Nothing runs statements through these objects: the SQL lives in db/queries/, and rows come back as the
records of db/records.py (a test keeps each record's fields equal to its table's columns). Credits are BIGINT
integers; every id is a prefixed, time-ordered string.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from reelgate.db.types import UTCDateTime

# One naming convention so Alembic produces the same constraint names on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


_ACTIVE_RETRY = "retry_of IS NOT NULL AND status IN ('queued', 'submitting', 'processing', 'storing')"
_SUCCEEDED = "status = 'succeeded' AND completed_at IS NOT NULL"


def _user_fk() -> ForeignKey:
    return ForeignKey("users.id", ondelete="CASCADE")


def _at(name: str, *, nullable: bool = False) -> Column[object]:
    return Column(name, UTCDateTime(), nullable=nullable)


users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255)),
    Column("display_name", String(120), nullable=False),
    Column("is_admin", Boolean, nullable=False),
    # Set when a refund or dispute could not be taken back in full: the operator looks at it.
    Column("flagged", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    _at("created_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), _user_fk(), nullable=False, index=True),
    Column("name", String(120), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    _at("created_at"),
    _at("last_used_at", nullable=True),
    _at("revoked_at", nullable=True),
    # An organization's key: made by an owner or admin (user_id), it acts as the organization (pays from its
    # wallet) for as long as its maker still manages the organization and it is not revoked.
    Column("organization_id", String(40), ForeignKey("organizations.id", ondelete="CASCADE"), index=True),
)

# Per-account running totals, updated in the same transaction as each ledger entry.
#
# An account is a user's or an organization's (a shared wallet): `user_id` holds the account id, which is the
# user's id or the organization's id (`usr_…` / `org_…`, one id space, so they never collide). So there is no
# foreign key to users: one ledger, one set of money paths (hold, capture, release, grant, purchase, expiry)
# and one invariant check for both kinds of account, with no branch on who owns the account. A generation
# records the account that paid it (generations.account_id).
balances = Table(
    "balances",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("available", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("captured", BigInteger, nullable=False),
    _at("updated_at"),
    # The account's unfinished generations, kept by the hold and the terminal transition: the in-flight cap is
    # checked by the hold's own conditional UPDATE. `reelgate ledger check` compares it with the generations.
    Column("in_flight", Integer, nullable=False, server_default="0"),
    CheckConstraint("available >= 0", name="available_nonnegative"),
    CheckConstraint("held >= 0", name="held_nonnegative"),
    CheckConstraint("captured >= 0", name="captured_nonnegative"),
    CheckConstraint("in_flight >= 0", name="in_flight_nonnegative"),
)

# Append-only. (kind, reference) is unique so a retried operation cannot apply twice.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(40), nullable=False),  # the account id (see balances)
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("reference", String(120), nullable=False),
    Column("generation_id", String(40), index=True),
    Column("note", Text, nullable=False),
    _at("created_at"),
    UniqueConstraint("kind", "reference", name="uq_ledger_entries_kind_reference"),
    # A generation's hold ends in exactly one capture OR one release, never both.
    Index(
        "uq_ledger_entries_settlement",
        "reference",
        unique=True,
        sqlite_where=text("kind IN ('capture', 'release')"),
        postgresql_where=text("kind IN ('capture', 'release')"),
    ),
    Index("ix_ledger_entries_user_created", "user_id", "created_at"),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), _user_fk(), nullable=False, index=True),
    Column("name", String(120), nullable=False),
    Column("description", Text, nullable=False),
    _at("created_at"),
    _at("updated_at"),
    Column("budget_credits", BigInteger),
    # An organization's project (a team campaign): its members file generations into it, paid by its wallet.
    # NULL: the user's own project. Organizations are never deleted, so the link has no ON DELETE rule to choose.
    Column("organization_id", String(40), ForeignKey("organizations.id"), index=True),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), _user_fk(), nullable=False, index=True),
    Column("object_key", String(255), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("filename", String(255), nullable=False),
    _at("created_at"),
)

# The source of truth of a job; the queue only wakes workers.
generations = Table(
    "generations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), _user_fk(), nullable=False),
    Column("project_id", String(40), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("model", String(80), nullable=False),
    Column("provider", String(40), nullable=False),
    Column("provider_model", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", Integer, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("negative_prompt", Text),
    Column("params", JSON, nullable=False),
    Column("start_upload_id", String(40)),
    Column("end_upload_id", String(40)),
    Column("quote_total", BigInteger, nullable=False),
    Column("quote_breakdown", JSON, nullable=False),
    Column("credits_held", BigInteger, nullable=False),
    Column("credits_charged", BigInteger, nullable=False),
    Column("credits_refunded", BigInteger, nullable=False),
    # What the provider charges us, in millionths of the catalog currency (for margins).
    Column("provider_cost_micros", BigInteger, nullable=False),
    Column("provider_job_id", String(255)),
    # The random token of webhook addresses handed out before addresses were signed (services/webhook_links.py);
    # NULL for newer jobs.
    Column("webhook_token", String(64)),
    Column("error_code", String(64)),
    Column("error_message", Text),
    # A submit whose outcome is unknown waits here for reconciliation or the operator.
    Column("needs_review", Boolean, nullable=False),
    Column("output_key", String(255)),
    Column("output_content_type", String(64)),
    Column("output_size", BigInteger),
    Column("output_sha256", String(64)),
    Column("output_meta", JSON, nullable=False),
    Column("thumbnail_key", String(255)),
    Column("submit_attempts", Integer, nullable=False),
    Column("poll_count", Integer, nullable=False),
    Column("transient_errors", Integer, nullable=False),
    _at("next_poll_at", nullable=True),
    _at("deadline_at"),
    Column("lease_owner", String(64)),
    _at("lease_until", nullable=True),
    Column("callback_url", Text),
    Column("retry_of", String(40)),
    Column("raw_provider", JSON, nullable=False),
    _at("created_at"),
    _at("updated_at"),
    _at("submitted_at", nullable=True),
    _at("completed_at", nullable=True),
    # Routing: the catalog model whose route the job is bound to (`model` or one of its fallbacks; set before
    # the provider is called), and the provider account it was submitted with: a fingerprint and base URL, never
    # the credentials themselves. `provider` and `provider_model` follow the route.
    Column("served_model", String(80)),
    Column("provider_account", JSON),
    # The prompt actually sent when the user asked for prompt enhancement.
    Column("enhanced_prompt", Text),
    # The user's library: a star, and a deletion that keeps the row (a tombstone) for the ledger, analytics and
    # exports while its media leave storage; `media_removed_at`: when retention or a delete removed the media.
    Column("favorite", Boolean, nullable=False, server_default=text("false")),
    _at("deleted_at", nullable=True),
    _at("media_removed_at", nullable=True),
    # The ledger account that paid: the owner's own (its user id) or an organization's wallet. The hold, the
    # capture and the release all move this account; the owner (`user_id`) is who made the job.
    Column("account_id", String(40), nullable=False),
    Index("ix_generations_user_created", "user_id", "created_at"),
    # An account's jobs in flight (the ledger check) and an organization's generations read one index range.
    Index("ix_generations_account_status", "account_id", "status"),
    Index("ix_generations_status_next_poll", "status", "next_poll_at"),
    Index("ix_generations_provider_job", "provider", "provider_job_id"),
    # A user's jobs in flight (the in-flight cap), and the worker's deadline sweep, read index ranges.
    Index("ix_generations_user_status", "user_id", "status"),
    Index("ix_generations_status_deadline", "status", "deadline_at"),
    # A model's latest completions (the expected time in a create answer) read one index range. Partial: a job is
    # entered once it succeeds, not on every insert and status change before.
    Index(
        "ix_generations_model_succeeded",
        "model",
        "completed_at",
        sqlite_where=text(_SUCCEEDED),
        postgresql_where=text(_SUCCEEDED),
    ),
    # One retry of a job at a time: a second retry while the first is unfinished cannot be inserted.
    Index(
        "uq_generations_active_retry",
        "retry_of",
        unique=True,
        sqlite_where=text(_ACTIVE_RETRY),
        postgresql_where=text(_ACTIVE_RETRY),
    ),
)

# Every state change of a generation, for audit and debugging.
generation_events = Table(
    "generation_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("generation_id", String(40), ForeignKey("generations.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("detail", JSON, nullable=False),
    _at("at"),
)

# Stripe's semantics: the first response is replayed for the same key and body, per user.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(40), _user_fk(), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("scope", String(40), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("generation_id", String(40)),
    _at("created_at"),
)

# Deliveries already applied; a duplicate delivery id is rejected by the unique constraint.
webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(40), nullable=False),
    Column("delivery_id", String(255), nullable=False),
    Column("generation_id", String(40)),
    _at("received_at"),
    UniqueConstraint("provider", "delivery_id", name="uq_webhook_inbox_provider_delivery"),
)

# A provider some process found degraded (out of credit, failing), shared so /readyz and every worker see it.
provider_marks = Table(
    "provider_marks",
    metadata,
    Column("provider", String(40), primary_key=True),
    Column("reason", Text, nullable=False),
    _at("updated_at"),
)

# The latest submits to each provider with a request rate, one row per request: a sliding window that
# db/queries/provider_rates.py reads and prunes under the provider's lock (at most its rate's count of rows each).
provider_requests = Table(
    "provider_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(40), nullable=False),
    _at("sent_at"),
    Index("ix_provider_requests_provider_sent", "provider", "sent_at"),
)

# Share links: a video anyone holding the signed token may watch; the token is never stored (it is the id and
# its HMAC under the server's secret), so revoking or expiring the row ends it.
share_links = Table(
    "share_links",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), _user_fk(), nullable=False, index=True),
    Column("generation_id", String(40), ForeignKey("generations.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("show_prompt", Boolean, nullable=False),
    _at("created_at"),
    _at("expires_at", nullable=True),
    _at("revoked_at", nullable=True),
)

# An administrator's storage quota for one user, overriding REELGATE_STORAGE_QUOTA_MB (0: no quota).
storage_quotas = Table(
    "storage_quotas",
    metadata,
    Column("user_id", String(40), _user_fk(), primary_key=True),
    Column("quota_mb", BigInteger, nullable=False),
    _at("updated_at"),
)
