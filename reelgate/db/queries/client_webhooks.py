"""Webhooks to API clients: endpoints, callback secrets, the terminal-event outbox, deliveries and attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reelgate.db.codec import decode_row
from reelgate.db.records import CallbackSecret, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from reelgate.db.sql import Tx, columns, insert_query, query, update_query, values_of

_ENDPOINT = columns(WebhookEndpoint)
_INSERT_ENDPOINT = insert_query(WebhookEndpoint)
_SAVE_ENDPOINT = update_query(WebhookEndpoint)
_LIVE_ENDPOINT_IDS = query("SELECT id FROM webhook_endpoints WHERE user_id = :user_id AND deleted_at IS NULL")
_LIVE_ENDPOINTS = query(
    f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE user_id = :user_id AND deleted_at IS NULL ORDER BY id",
    row=WebhookEndpoint,
)
_ENDPOINT_OF_USER = query(
    f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE id = :id AND user_id = :user_id AND deleted_at IS NULL",
    row=WebhookEndpoint,
)
_ANY_ENDPOINT_OF_USER = query("SELECT 1 FROM webhook_endpoints WHERE id = :id AND user_id = :user_id")
_ENDPOINT_BY_ID = query(f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE id = :id", row=WebhookEndpoint)
_CANCEL_PENDING = query(
    "UPDATE webhook_deliveries SET status = 'canceled', next_attempt_at = NULL, updated_at = :now "
    "WHERE endpoint_id = :endpoint_id AND status = 'pending'"
)

_SECRET = query(
    f"SELECT {columns(CallbackSecret)} FROM webhook_callback_secrets WHERE user_id = :user_id", row=CallbackSecret
)
_INSERT_SECRET = insert_query(CallbackSecret, if_absent=True)
_SAVE_SECRET = update_query(CallbackSecret, key=("user_id",))

_INSERT_EVENT = insert_query(WebhookEvent)
_INSERT_DELIVERY = insert_query(WebhookDelivery)
_SAVE_DELIVERY = update_query(WebhookDelivery)
_DELIVERY_BY_ID = query(
    f"SELECT {columns(WebhookDelivery)} FROM webhook_deliveries WHERE id = :id", row=WebhookDelivery
)
_EVENT_BY_ID = query(f"SELECT {columns(WebhookEvent)} FROM webhook_events WHERE id = :id", row=WebhookEvent)
_DELIVERY_AND_EVENT = (
    f"SELECT {columns(WebhookDelivery, 'd')}, {columns(WebhookEvent, 'e')} "
    "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"
)
_DELIVERY_OF_USER = query(f"{_DELIVERY_AND_EVENT} WHERE d.id = :id AND d.user_id = :user_id")
_ATTEMPTS_OF = query(
    f"SELECT {columns(WebhookAttempt)} FROM webhook_attempts WHERE delivery_id = ANY(:ids) ORDER BY id",
    row=WebhookAttempt,
)
_INSERT_ATTEMPT = query(
    "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, error, duration_ms, detail) "
    "VALUES (:delivery_id, :attempted_at, :status_code, :error, :duration_ms, :detail)"
)
_DUE = query(
    "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= :now "
    "ORDER BY next_attempt_at LIMIT :limit"
)
# The claim is a compare-and-set on next_attempt_at, so two workers never send the same delivery.
_CLAIM = query(
    "UPDATE webhook_deliveries SET next_attempt_at = :until "
    "WHERE id = :id AND status = 'pending' AND next_attempt_at <= :now"
)


# ---------------------------------------------------------------- endpoints and secrets


def live_endpoint_count(tx: Tx, user_id: str) -> int:
    return len(tx.all(_LIVE_ENDPOINT_IDS, {"user_id": user_id}))


def insert_endpoint(tx: Tx, endpoint: WebhookEndpoint) -> None:
    tx.run(_INSERT_ENDPOINT, values_of(endpoint))


def save_endpoint(tx: Tx, endpoint: WebhookEndpoint) -> None:
    tx.run(_SAVE_ENDPOINT, values_of(endpoint))


def live_endpoints(tx: Tx, user_id: str) -> list[WebhookEndpoint]:
    return tx.all(_LIVE_ENDPOINTS, {"user_id": user_id})


def endpoint_of_user(tx: Tx, user_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    endpoint: WebhookEndpoint | None = tx.one(_ENDPOINT_OF_USER, {"id": endpoint_id, "user_id": user_id})
    return endpoint


def user_has_endpoint(tx: Tx, user_id: str, endpoint_id: str) -> bool:
    """Deleted endpoints included: their delivery log stays readable."""
    return tx.scalar(_ANY_ENDPOINT_OF_USER, {"id": endpoint_id, "user_id": user_id}) is not None


def endpoint_by_id(tx: Tx, endpoint_id: str) -> WebhookEndpoint | None:
    endpoint: WebhookEndpoint | None = tx.one(_ENDPOINT_BY_ID, {"id": endpoint_id})
    return endpoint


def cancel_pending_deliveries(tx: Tx, endpoint_id: str, now: datetime) -> None:
    tx.run(_CANCEL_PENDING, {"endpoint_id": endpoint_id, "now": now})


def callback_secret_of(tx: Tx, user_id: str) -> CallbackSecret | None:
    secret: CallbackSecret | None = tx.one(_SECRET, {"user_id": user_id})
    return secret


def insert_callback_secret(tx: Tx, secret: CallbackSecret) -> bool:
    """False when the account has one already (a concurrent twin won)."""
    return tx.run(_INSERT_SECRET, values_of(secret)) == 1


def save_callback_secret(tx: Tx, secret: CallbackSecret) -> None:
    tx.run(_SAVE_SECRET, values_of(secret))


# ---------------------------------------------------------------- the outbox and the delivery log


def insert_event(tx: Tx, event: WebhookEvent) -> None:
    tx.run(_INSERT_EVENT, values_of(event))


def insert_delivery(tx: Tx, delivery: WebhookDelivery) -> None:
    tx.run(_INSERT_DELIVERY, values_of(delivery))


def save_delivery(tx: Tx, delivery: WebhookDelivery) -> None:
    tx.run(_SAVE_DELIVERY, values_of(delivery))


def delivery_by_id(tx: Tx, delivery_id: str) -> WebhookDelivery | None:
    delivery: WebhookDelivery | None = tx.one(_DELIVERY_BY_ID, {"id": delivery_id})
    return delivery


def event_by_id(tx: Tx, event_id: str) -> WebhookEvent | None:
    event: WebhookEvent | None = tx.one(_EVENT_BY_ID, {"id": event_id})
    return event


def _pair(tx: Tx, row: Any) -> tuple[WebhookDelivery, WebhookEvent]:
    width = len(WebhookDelivery.__dataclass_fields__)
    return decode_row(WebhookDelivery, tx.dialect, row[:width]), decode_row(WebhookEvent, tx.dialect, row[width:])


def delivery_of_user(tx: Tx, user_id: str, delivery_id: str) -> tuple[WebhookDelivery, WebhookEvent] | None:
    row = tx.one(_DELIVERY_OF_USER, {"id": delivery_id, "user_id": user_id})
    return None if row is None else _pair(tx, row)


def deliveries_of_user(
    tx: Tx,
    user_id: str,
    *,
    endpoint_id: str | None,
    generation_id: str | None,
    callbacks_only: bool,
    limit: int,
) -> list[tuple[WebhookDelivery, WebhookEvent]]:
    """Newest first; optionally one endpoint's, one generation's, or only callback_url deliveries."""
    conditions = ["d.user_id = :user_id"]
    if endpoint_id is not None:
        conditions.append("d.endpoint_id = :endpoint_id")
    if callbacks_only:
        conditions.append("d.endpoint_id IS NULL")
    if generation_id is not None:
        conditions.append("e.generation_id = :generation_id")
    sql = f"{_DELIVERY_AND_EVENT} WHERE {' AND '.join(conditions)} ORDER BY d.id DESC LIMIT :limit"
    params = {"user_id": user_id, "endpoint_id": endpoint_id, "generation_id": generation_id, "limit": limit}
    return [_pair(tx, row) for row in tx.all(query(sql), params)]


def attempts_of(tx: Tx, delivery_ids: list[str]) -> list[WebhookAttempt]:
    return tx.all(_ATTEMPTS_OF, {"ids": delivery_ids}) if delivery_ids else []


def insert_attempt(
    tx: Tx, delivery_id: str, *, at: datetime, status_code: int | None, error: str | None, duration_ms: int
) -> None:
    params = {
        "delivery_id": delivery_id,
        "attempted_at": at,
        "status_code": status_code,
        "error": error,
        "duration_ms": duration_ms,
        "detail": {},
    }
    tx.run(_INSERT_ATTEMPT, params)


def due_deliveries(tx: Tx, now: datetime, limit: int) -> list[str]:
    return [str(row[0]) for row in tx.all(_DUE, {"now": now, "limit": limit})]


def claim_delivery(tx: Tx, delivery_id: str, *, now: datetime, until: datetime) -> bool:
    return tx.run(_CLAIM, {"id": delivery_id, "now": now, "until": until}) == 1
