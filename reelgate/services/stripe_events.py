"""Stripe webhooks: verify, deduplicate by event id, grant a paid session once, take back refunds and disputes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import stripe

from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.queries import payments as payment_queries
from reelgate.db.queries import users as user_queries
from reelgate.db.records import Payment
from reelgate.db.sql import Tx
from reelgate.domain.errors import Conflict, ReelgateError, ServiceUnavailable
from reelgate.domain.ledger import EntryKind
from reelgate.services import mail
from reelgate.services.context import ServiceContext

log = logging.getLogger("reelgate.billing")
# stripe-py `Webhook.DEFAULT_TOLERANCE`; only older timestamps are refused (docs/providers/stripe.md#webhook-signature).
SIGNATURE_TOLERANCE = 300


class InvalidSignature(ReelgateError):
    status_code = 400
    code = "invalid_signature"


def payment_reference(payment_id: str) -> str:
    """Ledger reference of a payment's purchase; its reversals extend it with the Stripe event id."""
    return f"payment:{payment_id}"


async def handle_stripe_webhook(ctx: ServiceContext, payload: bytes, signature: str | None) -> str:
    """Applies one delivery. Stripe retries, duplicates and reorders events, so every effect is idempotent:
    the event id is recorded in the same transaction, and the purchase entry is unique per payment."""
    secret = ctx.config.stripe_webhook_secret
    if not secret:
        raise ServiceUnavailable("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET is unset).")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance=SIGNATURE_TOLERANCE)
        event = json.loads(payload)
        event_id, event_type, obj = str(event["id"]), str(event["type"]), dict(event["data"]["object"])
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature("The Stripe-Signature header does not match this payload.") from exc
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InvalidSignature("The payload is not a Stripe event.") from exc
    handler = _HANDLERS.get(event_type)
    if handler is None:
        return "ignored"
    now = ctx.clock()

    def apply(tx: Tx) -> str:
        if not payment_queries.record_stripe_event(tx, event_id, event_type, now):
            return "duplicate"
        result, payment = handler(_Event(tx, now, event_id), obj)
        if payment is not None:
            payment_queries.save_payment(tx, payment)
        return result

    result = await ctx.db.write(apply)
    log.info("stripe event %s (%s): %s", event_id, event_type, result)
    return result


class _Event:
    """One event being applied: its transaction, its time and its id (reversal references carry it)."""

    __slots__ = ("tx", "now", "id")

    def __init__(self, tx: Tx, now: Any, event_id: str) -> None:
        self.tx, self.now, self.id = tx, now, event_id


# A handler returns what it did and the payment it changed (saved by the caller in the same transaction).
_Handled = tuple[str, Payment | None]


# ---------------------------------------------------------------- checkout sessions


def _payment_for_session(event: _Event, obj: dict[str, Any]) -> Payment | None:
    """Our payment row for a Checkout Session (locked); rebuilt from the session's metadata (which only we can
    set, with our secret key) if the process died between creating the session and recording it."""
    tx = event.tx
    session_id = str(obj.get("id", ""))
    found = payment_queries.payment_for_session(tx, session_id)
    if found is not None:
        return found
    meta = obj.get("metadata") or {}
    try:
        payment_id, user_id, credits = str(meta["payment_id"]), str(meta["user_id"]), int(meta["credits"])
    except (KeyError, ValueError, TypeError):
        log.warning("stripe session %s has no reelgate metadata; ignored", session_id)
        return None
    if not user_queries.user_exists(tx, user_id):
        log.warning("stripe session %s names unknown user %s; ignored", session_id, user_id)
        return None
    # Sessions made before purchases for organizations carry no account: they were for the buyer.
    account_id = str(meta.get("account_id") or user_id)
    rebuilt = Payment(
        id=payment_id,
        user_id=user_id,
        account_id=account_id,
        stripe_session_id=session_id,
        stripe_payment_intent=None,
        package=str(meta.get("package", "")),
        credits=credits,
        bonus=0,
        amount=int(obj.get("amount_total") or 0),
        currency=str(obj.get("currency") or "usd"),
        status="open",
        amount_refunded=0,
        amount_disputed=0,
        credits_reversed=0,
        credits_unrecovered=0,
        created_at=event.now,
        updated_at=event.now,
        paid_at=None,
    )
    payment_queries.insert_payment_if_absent(tx, rebuilt)
    return payment_queries.payment_for_session(tx, session_id)


def _grant(event: _Event, payment: Payment) -> str:
    """Once per payment: the row is locked and its status checked, and the purchase entry's reference is
    unique per payment as a second guard."""
    if payment.status == "paid":
        return "already_granted"
    granted = ledger_queries.credit_account(
        event.tx,
        payment.account_id,
        payment.credits,
        kind=EntryKind.PURCHASE,
        reference=payment_reference(payment.id),
        note=f"{payment.package} package ({payment.amount} {payment.currency.upper()} minor units)",
    )
    payment.status = "paid"
    payment.paid_at = event.now
    payment.updated_at = event.now
    if granted:
        mail.queue_receipt(event.tx, payment, event.now)
    # A refund or dispute that arrived before the money did is applied now.
    _reconcile_reversal(event, payment)
    return "granted" if granted else "already_granted"


def _session_completed(event: _Event, obj: dict[str, Any]) -> _Handled:
    payment = _payment_for_session(event, obj)
    if payment is None:
        return "unknown_session", None
    if obj.get("payment_intent"):
        payment.stripe_payment_intent = str(obj["payment_intent"])
    # Delayed methods (bank debits) complete unpaid; async_payment_succeeded brings the money
    # (docs/providers/stripe.md#events-reelgate-handles).
    if obj.get("payment_status") == "paid":
        return _grant(event, payment), payment
    if payment.status == "open":
        payment.status = "pending"
        payment.updated_at = event.now
    return "awaiting_payment", payment


def _async_succeeded(event: _Event, obj: dict[str, Any]) -> _Handled:
    payment = _payment_for_session(event, obj)
    if payment is None:
        return "unknown_session", None
    if obj.get("payment_intent"):
        payment.stripe_payment_intent = str(obj["payment_intent"])
    return _grant(event, payment), payment


def _ended(status: str) -> Callable[[_Event, dict[str, Any]], _Handled]:
    def handler(event: _Event, obj: dict[str, Any]) -> _Handled:
        payment = _payment_for_session(event, obj)
        if payment is None:
            return "unknown_session", None
        if payment.status == "paid":  # a late "failed" or "expired" never undoes money that arrived
            return "already_paid", None
        payment.status = status
        payment.updated_at = event.now
        return status, payment

    return handler


# ---------------------------------------------------------------- refunds and disputes


def _payment_for_intent(event: _Event, obj: dict[str, Any]) -> Payment:
    intent = obj.get("payment_intent")
    payment = payment_queries.payment_for_intent(event.tx, str(intent)) if intent else None
    if payment is None:
        # The session's completion has not reached us yet; a non-2xx answer makes Stripe deliver this again.
        raise Conflict("No payment is known for this payment intent yet.", details={"payment_intent": intent})
    return payment


def _credits_to_reverse(payment: Payment) -> int:
    """Credits proportional to the money taken back, rounded up so a refund never leaves credits behind."""
    taken = min(payment.amount, payment.amount_refunded + payment.amount_disputed)
    if payment.amount <= 0 or taken <= 0:
        return 0
    return -(-payment.credits * taken // payment.amount)


def _reconcile_reversal(event: _Event, payment: Payment) -> None:
    """Brings the credits taken back in line with the money refunded or disputed (an `adjust` entry).
    Never below zero: what the balance cannot cover is recorded and the account is flagged."""
    if payment.status != "paid":
        return
    tx = event.tx
    delta = _credits_to_reverse(payment) - payment.credits_reversed
    reference = f"{payment_reference(payment.id)}:{event.id}"
    if delta > 0:
        note = f"Refund or dispute of payment {payment.id}"
        taken = ledger_queries.debit_available(
            tx, payment.account_id, delta, kind=EntryKind.ADJUST, reference=reference, note=note
        )
        payment.credits_unrecovered += delta - taken
        if taken < delta:
            # The buyer is flagged, whichever wallet the credits went to: the buyer is who the refund paid.
            user_queries.set_flagged(tx, payment.user_id, True)
            log.warning("payment %s: %d credits could not be taken back; buyer flagged", payment.id, delta - taken)
    elif delta < 0:  # a dispute was won: return what was actually taken
        forgiven = min(payment.credits_unrecovered, -delta)
        payment.credits_unrecovered -= forgiven
        returned = -delta - forgiven
        if returned > 0:
            note = f"Dispute won for payment {payment.id}"
            ledger_queries.credit_account(
                tx, payment.account_id, returned, kind=EntryKind.ADJUST, reference=reference, note=note
            )
    payment.credits_reversed += delta
    payment.updated_at = event.now


def _charge_refunded(event: _Event, obj: dict[str, Any]) -> _Handled:
    payment = _payment_for_intent(event, obj)
    # `amount_refunded` is cumulative on the charge, so a reordered older event never lowers it.
    payment.amount_refunded = max(payment.amount_refunded, int(obj.get("amount_refunded") or 0))
    _reconcile_reversal(event, payment)
    return "refund_applied", payment


def _dispute_created(event: _Event, obj: dict[str, Any]) -> _Handled:
    payment = _payment_for_intent(event, obj)
    payment.amount_disputed = max(payment.amount_disputed, int(obj.get("amount") or 0))
    _reconcile_reversal(event, payment)
    return "dispute_applied", payment


def _dispute_closed(event: _Event, obj: dict[str, Any]) -> _Handled:
    payment = _payment_for_intent(event, obj)
    if obj.get("status") != "won":
        return "dispute_lost", None
    payment.amount_disputed = 0
    _reconcile_reversal(event, payment)
    return "dispute_won", payment


_HANDLERS: dict[str, Callable[[_Event, dict[str, Any]], _Handled]] = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": _async_succeeded,
    "checkout.session.async_payment_failed": _ended("failed"),
    "checkout.session.expired": _ended("expired"),
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
