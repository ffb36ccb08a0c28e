"""Rows as the application sees them: one plain dataclass per table, built by db/codec.py from query results.

A record is a snapshot of its row, in no session and tracking nothing: changing a field changes nothing in the
database; the named queries in db/queries/ do. `tests/db/test_records.py` keeps the fields equal to the
columns of db/tables*.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class User:
    id: str
    email: str
    password_hash: str | None
    display_name: str
    is_admin: bool
    flagged: bool
    disabled: bool
    created_at: datetime


@dataclass(slots=True)
class ApiKey:
    id: str
    user_id: str
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    organization_id: str | None


@dataclass(slots=True)
class Balance:
    user_id: str
    available: int
    held: int
    captured: int
    updated_at: datetime
    in_flight: int


@dataclass(slots=True)
class LedgerEntry:
    id: int
    user_id: str
    kind: str
    amount: int
    reference: str
    generation_id: str | None
    note: str
    created_at: datetime


@dataclass(slots=True)
class Project:
    id: str
    user_id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    # A campaign's cap: new generations may not take the project's captured + held credits past it (None: no cap).
    budget_credits: int | None = None
    # The organization whose project this is (its members file into it, its managers change it); None: the user's.
    organization_id: str | None = None


@dataclass(slots=True)
class Upload:
    id: str
    user_id: str
    object_key: str
    content_type: str
    width: int
    height: int
    size: int
    sha256: str
    filename: str
    created_at: datetime


@dataclass(slots=True)
class Generation:
    id: str
    user_id: str
    project_id: str
    model: str
    provider: str
    provider_model: str
    kind: str
    status: str
    progress: int
    prompt: str
    negative_prompt: str | None
    params: dict[str, Any]
    start_upload_id: str | None
    end_upload_id: str | None
    quote_total: int
    quote_breakdown: dict[str, Any]
    credits_held: int
    credits_charged: int
    credits_refunded: int
    provider_cost_micros: int
    provider_job_id: str | None
    webhook_token: str | None  # addresses handed out before they were signed only
    error_code: str | None
    error_message: str | None
    needs_review: bool
    output_key: str | None
    output_content_type: str | None
    output_size: int | None
    output_sha256: str | None
    output_meta: dict[str, Any]
    thumbnail_key: str | None
    submit_attempts: int
    poll_count: int
    transient_errors: int
    next_poll_at: datetime | None
    deadline_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    callback_url: str | None
    retry_of: str | None
    raw_provider: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    completed_at: datetime | None
    served_model: str | None
    provider_account: dict[str, Any] | None
    enhanced_prompt: str | None
    favorite: bool
    deleted_at: datetime | None
    media_removed_at: datetime | None
    account_id: str


@dataclass(slots=True)
class ShareLink:
    id: str
    user_id: str
    generation_id: str
    show_prompt: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(slots=True)
class StorageQuota:
    user_id: str
    quota_mb: int
    updated_at: datetime


@dataclass(slots=True)
class GenerationEvent:
    id: int
    generation_id: str
    from_status: str | None
    to_status: str
    detail: dict[str, Any]
    at: datetime


@dataclass(slots=True)
class IdempotencyKey:
    user_id: str
    key: str
    scope: str
    request_hash: str
    generation_id: str | None
    created_at: datetime


@dataclass(slots=True)
class ProviderMark:
    provider: str
    reason: str
    updated_at: datetime


@dataclass(slots=True)
class Payment:
    id: str
    user_id: str
    account_id: str
    stripe_session_id: str
    stripe_payment_intent: str | None
    package: str
    credits: int
    bonus: int
    amount: int
    currency: str
    status: str
    amount_refunded: int
    amount_disputed: int
    credits_reversed: int
    credits_unrecovered: int
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None


@dataclass(slots=True)
class WebhookEndpoint:
    id: str
    user_id: str
    url: str
    description: str
    events: list[str]
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    deleted_at: datetime | None


@dataclass(slots=True)
class CallbackSecret:
    user_id: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime


@dataclass(slots=True)
class WebhookEvent:
    id: str
    user_id: str
    type: str
    generation_id: str
    created_at: datetime


@dataclass(slots=True)
class WebhookDelivery:
    id: str
    event_id: str
    user_id: str
    endpoint_id: str | None
    url: str
    status: str
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


@dataclass(slots=True)
class WebhookAttempt:
    id: int
    delivery_id: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    detail: dict[str, Any]


@dataclass(slots=True)
class OutboxEmail:
    id: str
    user_id: str
    kind: str
    event_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(slots=True)
class EmailOptOut:
    user_id: str
    kind: str
    created_at: datetime


@dataclass(slots=True)
class EmailToken:
    id: str
    user_id: str
    purpose: str
    token_hash: str | None
    expires_at: datetime
    used_at: datetime | None
    created_at: datetime


@dataclass(slots=True)
class Organization:
    id: str
    name: str
    created_by: str
    created_at: datetime


@dataclass(slots=True)
class OrganizationMember:
    organization_id: str
    user_id: str
    role: str
    created_at: datetime
    daily_cap: int | None = None
    monthly_cap: int | None = None


@dataclass(slots=True)
class OrganizationInvitation:
    id: str
    organization_id: str
    email: str
    role: str
    invited_by: str
    token_hash: str | None
    expires_at: datetime
    used_at: datetime | None
    created_at: datetime


# Table name of each record, for the schema test and for the column lists of db/sql.py.
@dataclass(slots=True)
class Session:
    id: str  # SHA-256 of the cookie's token
    user_id: str
    csrf: str
    created_at: datetime
    authenticated_at: datetime
    last_used_at: datetime
    user_agent: str
    address: str


@dataclass(slots=True)
class AuditEntry:
    id: str
    actor_id: str | None
    action: str
    target_user_id: str | None
    target_email: str
    detail: str
    data: dict[str, Any]
    created_at: datetime


TABLE_OF: dict[type, str] = {
    User: "users",
    ApiKey: "api_keys",
    Balance: "balances",
    LedgerEntry: "ledger_entries",
    Project: "projects",
    Upload: "uploads",
    Generation: "generations",
    GenerationEvent: "generation_events",
    IdempotencyKey: "idempotency_keys",
    ProviderMark: "provider_marks",
    Payment: "payments",
    WebhookEndpoint: "webhook_endpoints",
    CallbackSecret: "webhook_callback_secrets",
    WebhookEvent: "webhook_events",
    WebhookDelivery: "webhook_deliveries",
    WebhookAttempt: "webhook_attempts",
    OutboxEmail: "email_outbox",
    EmailOptOut: "email_opt_outs",
    EmailToken: "email_tokens",
    ShareLink: "share_links",
    StorageQuota: "storage_quotas",
    Session: "sessions",
    AuditEntry: "audit_log",
    Organization: "organizations",
    OrganizationMember: "organization_members",
    OrganizationInvitation: "organization_invitations",
}
