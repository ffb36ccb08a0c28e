"""Table definitions. Credits are BIGINT integers; every id is a prefixed, time-ordered string."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from reelgate.db.types import UTCDateTime, utcnow

# One naming convention so Alembic produces the same constraint names on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(120), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when a refund or dispute could not be taken back in full: the operator looks at it.
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class Balance(Base):
    """Per-account running totals, updated in the same transaction as each ledger entry."""

    __tablename__ = "balances"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_nonnegative"),
        CheckConstraint("held >= 0", name="held_nonnegative"),
        CheckConstraint("captured >= 0", name="captured_nonnegative"),
    )

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    captured: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    """Append-only. (kind, reference) is unique so a retried operation cannot apply twice."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
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

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(120))
    generation_id: Mapped[str | None] = mapped_column(String(40), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    object_key: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Generation(Base):
    """The source of truth of a job; the queue only wakes workers."""

    __tablename__ = "generations"
    __table_args__ = (
        Index("ix_generations_user_created", "user_id", "created_at"),
        Index("ix_generations_status_next_poll", "status", "next_poll_at"),
        Index("ix_generations_provider_job", "provider", "provider_job_id"),
        # A user's jobs in flight (the in-flight cap), and the worker's deadline sweep, read index ranges.
        Index("ix_generations_user_status", "user_id", "status"),
        Index("ix_generations_status_deadline", "status", "deadline_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(80))
    provider: Mapped[str] = mapped_column(String(40))
    provider_model: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    start_upload_id: Mapped[str | None] = mapped_column(String(40))
    end_upload_id: Mapped[str | None] = mapped_column(String(40))
    quote_total: Mapped[int] = mapped_column(BigInteger)
    quote_breakdown: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credits_held: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_charged: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # What the provider charges us, in millionths of the catalog currency (for margins).
    provider_cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    provider_job_id: Mapped[str | None] = mapped_column(String(255))
    webhook_token: Mapped[str] = mapped_column(String(64), unique=True)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # A submit whose outcome is unknown waits here for reconciliation or the operator.
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    output_key: Mapped[str | None] = mapped_column(String(255))
    output_content_type: Mapped[str | None] = mapped_column(String(64))
    output_size: Mapped[int | None] = mapped_column(BigInteger)
    output_sha256: Mapped[str | None] = mapped_column(String(64))
    output_meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    thumbnail_key: Mapped[str | None] = mapped_column(String(255))
    submit_attempts: Mapped[int] = mapped_column(Integer, default=0)
    poll_count: Mapped[int] = mapped_column(Integer, default=0)
    transient_errors: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime | None] = mapped_column()
    deadline_at: Mapped[datetime] = mapped_column()
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column()
    callback_url: Mapped[str | None] = mapped_column(Text)
    retry_of: Mapped[str | None] = mapped_column(String(40))
    raw_provider: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    # Routing: the catalog model whose route the job is bound to (`model` or one of its fallbacks; set
    # before the provider is called), and the provider account it was submitted with: a fingerprint
    # and base URL, never the credentials themselves. `provider` and `provider_model` follow the route.
    served_model: Mapped[str | None] = mapped_column(String(80))
    provider_account: Mapped[dict[str, Any] | None] = mapped_column()
    # The prompt actually sent when the user asked for prompt enhancement.
    enhanced_prompt: Mapped[str | None] = mapped_column(Text)


class GenerationEvent(Base):
    """Every state change of a generation, for audit and debugging."""

    __tablename__ = "generation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    generation_id: Mapped[str] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Base):
    """Stripe's semantics: the first response is replayed for the same key and body, per user."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    scope: Mapped[str] = mapped_column(String(40), default="generations")
    request_hash: Mapped[str] = mapped_column(String(64))
    generation_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookInbox(Base):
    """Deliveries already applied; a duplicate delivery id is rejected by the unique constraint."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (UniqueConstraint("provider", "delivery_id", name="uq_webhook_inbox_provider_delivery"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(40))
    delivery_id: Mapped[str] = mapped_column(String(255))
    generation_id: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProviderMark(Base):
    """A provider some process found degraded (out of credit, failing), shared so /readyz and every worker see it."""

    __tablename__ = "provider_marks"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
