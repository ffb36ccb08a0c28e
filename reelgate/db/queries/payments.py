"""Stripe payments (one per Checkout Session) and the Stripe events already applied."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.records import Payment
from reelgate.db.sql import Tx, columns, insert_query, query, update_query, values_of

_COLUMNS = columns(Payment)
_INSERT = insert_query(Payment)
_INSERT_IF_ABSENT = insert_query(Payment, if_absent=True)
_SAVE = update_query(Payment)
# Locked for the transaction (PostgreSQL), so the events of one payment apply one at a time.
_BY_SESSION_LOCKED = query(
    f"SELECT {_COLUMNS} FROM payments WHERE stripe_session_id = :session_id FOR UPDATE", row=Payment
)
_BY_INTENT_LOCKED = query(
    f"SELECT {_COLUMNS} FROM payments WHERE stripe_payment_intent = :intent FOR UPDATE", row=Payment
)
_RECENT = query(f"SELECT {_COLUMNS} FROM payments ORDER BY created_at DESC LIMIT :limit", row=Payment)
_RECENT_OF_USER = query(
    f"SELECT {_COLUMNS} FROM payments WHERE user_id = :user_id ORDER BY created_at DESC LIMIT :limit", row=Payment
)
_RECENT_OF_ACCOUNT = query(
    f"SELECT {_COLUMNS} FROM payments WHERE account_id = :account_id ORDER BY created_at DESC LIMIT :limit",
    row=Payment,
)
_RECORD_EVENT = query(
    "INSERT INTO stripe_events (id, type, received_at) VALUES (:id, :type, :now) ON CONFLICT DO NOTHING RETURNING id"
)


def insert_payment(tx: Tx, payment: Payment) -> None:
    tx.run(_INSERT, values_of(payment))


def insert_payment_if_absent(tx: Tx, payment: Payment) -> None:
    tx.run(_INSERT_IF_ABSENT, values_of(payment))


def save_payment(tx: Tx, payment: Payment) -> None:
    tx.run(_SAVE, values_of(payment))


def payment_for_session(tx: Tx, session_id: str) -> Payment | None:
    payment: Payment | None = tx.one(_BY_SESSION_LOCKED, {"session_id": session_id})
    return payment


def payment_for_intent(tx: Tx, payment_intent: str) -> Payment | None:
    payment: Payment | None = tx.one(_BY_INTENT_LOCKED, {"intent": payment_intent})
    return payment


def recent_payments(tx: Tx, user_id: str | None, *, limit: int) -> list[Payment]:
    if user_id is None:
        return tx.all(_RECENT, {"limit": limit})
    return tx.all(_RECENT_OF_USER, {"user_id": user_id, "limit": limit})


def recent_payments_to_account(tx: Tx, account_id: str, *, limit: int) -> list[Payment]:
    """The purchases that credited one account (an organization's wallet), whoever bought them."""
    return tx.all(_RECENT_OF_ACCOUNT, {"account_id": account_id, "limit": limit})


def record_stripe_event(tx: Tx, event_id: str, event_type: str, now: datetime) -> bool:
    """True the first time this event id is seen."""
    return tx.run(_RECORD_EVENT, {"id": event_id, "type": event_type, "now": now}) == 1
