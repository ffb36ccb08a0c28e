"""Stripe webhooks: verify, deduplicate by event id, grant a paid session once, take back refunds and disputes."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import stripe
from sqlalchemy import Select, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.tables import User
from reelgate.db.tables_billing import Payment, StripeEvent
from reelgate.domain.errors import Conflict, ReelgateError, ServiceUnavailable
from reelgate.domain.ledger import EntryKind
from reelgate.services import ledger
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
    async with ctx.db.transaction() as session:
        if not await _record_event(session, event_id, event_type, ctx):
            return "duplicate"
        result = await handler(ctx, session, event_id, obj)
    log.info("stripe event %s (%s): %s", event_id, event_type, result)
    return result


async def _record_event(session: AsyncSession, event_id: str, event_type: str, ctx: ServiceContext) -> bool:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(StripeEvent)
        .values(id=event_id, type=event_type, received_at=ctx.clock())
        .on_conflict_do_nothing()
        .returning(StripeEvent.id)
    )
    # RETURNING, not rowcount: psycopg reports rowcount -1 for INSERT … ON CONFLICT DO NOTHING.
    return (await session.execute(statement)).first() is not None


# ---------------------------------------------------------------- checkout sessions


async def _payment_for_session(ctx: ServiceContext, session: AsyncSession, obj: dict[str, Any]) -> Payment | None:
    """Our payment row for a Checkout Session; rebuilt from the session's metadata (which only we can set,
    with our secret key) if the process died between creating the session and recording it."""
    session_id = str(obj.get("id", ""))
    found = (await session.execute(_locked(Payment.stripe_session_id == session_id))).scalar_one_or_none()
    if found is not None:
        return found
    meta = obj.get("metadata") or {}
    try:
        payment_id, user_id, credits = str(meta["payment_id"]), str(meta["user_id"]), int(meta["credits"])
    except (KeyError, ValueError, TypeError):
        log.warning("stripe session %s has no reelgate metadata; ignored", session_id)
        return None
    if await session.get(User, user_id) is None:
        log.warning("stripe session %s names unknown user %s; ignored", session_id, user_id)
        return None
    now = ctx.clock()
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(Payment)
        .values(
            id=payment_id,
            user_id=user_id,
            stripe_session_id=session_id,
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
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    return (await session.execute(_locked(Payment.stripe_session_id == session_id))).scalar_one()


def _locked(condition: Any) -> Select[Payment]:
    """The payment row, locked for this transaction (PostgreSQL), so events of one payment apply one at a time."""
    return select(Payment).where(condition).with_for_update().execution_options(populate_existing=True)


async def _grant(ctx: ServiceContext, session: AsyncSession, payment: Payment, event_id: str) -> str:
    """Once per payment: the row is locked and its status checked, and the purchase entry's reference is
    unique per payment as a second guard."""
    if payment.status == "paid":
        return "already_granted"
    granted = await ledger.credit(
        session,
        payment.user_id,
        payment.credits,
        kind=EntryKind.PURCHASE,
        reference=payment_reference(payment.id),
        note=f"{payment.package} package ({payment.amount} {payment.currency.upper()} minor units)",
    )
    payment.status = "paid"
    payment.paid_at = ctx.clock()
    payment.updated_at = ctx.clock()
    # A refund or dispute that arrived before the money did is applied now.
    await _reconcile_reversal(ctx, session, payment, event_id)
    return "granted" if granted else "already_granted"


async def _session_completed(ctx: ServiceContext, session: AsyncSession, event_id: str, obj: dict[str, Any]) -> str:
    payment = await _payment_for_session(ctx, session, obj)
    if payment is None:
        return "unknown_session"
    if obj.get("payment_intent"):
        payment.stripe_payment_intent = str(obj["payment_intent"])
    # Delayed methods (bank debits) complete unpaid; async_payment_succeeded brings the money
    # (docs/providers/stripe.md#events-reelgate-handles).
    if obj.get("payment_status") == "paid":
        return await _grant(ctx, session, payment, event_id)
    if payment.status == "open":
        payment.status = "pending"
        payment.updated_at = ctx.clock()
    return "awaiting_payment"


async def _async_succeeded(ctx: ServiceContext, session: AsyncSession, event_id: str, obj: dict[str, Any]) -> str:
    payment = await _payment_for_session(ctx, session, obj)
    if payment is None:
        return "unknown_session"
    if obj.get("payment_intent"):
        payment.stripe_payment_intent = str(obj["payment_intent"])
    return await _grant(ctx, session, payment, event_id)


def _ended(status: str) -> Callable[[ServiceContext, AsyncSession, str, dict[str, Any]], Awaitable[str]]:
    async def handler(ctx: ServiceContext, session: AsyncSession, _event_id: str, obj: dict[str, Any]) -> str:
        payment = await _payment_for_session(ctx, session, obj)
        if payment is None:
            return "unknown_session"
        if payment.status == "paid":  # a late "failed" or "expired" never undoes money that arrived
            return "already_paid"
        payment.status = status
        payment.updated_at = ctx.clock()
        return status

    return handler


# ---------------------------------------------------------------- refunds and disputes


async def _payment_for_intent(session: AsyncSession, obj: dict[str, Any]) -> Payment:
    intent = obj.get("payment_intent")
    payment = None
    if intent:
        payment = (await session.execute(_locked(Payment.stripe_payment_intent == str(intent)))).scalar_one_or_none()
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


async def _reconcile_reversal(ctx: ServiceContext, session: AsyncSession, payment: Payment, event_id: str) -> None:
    """Brings the credits taken back in line with the money refunded or disputed (an `adjust` entry).
    Never below zero: what the balance cannot cover is recorded and the account is flagged."""
    if payment.status != "paid":
        return
    delta = _credits_to_reverse(payment) - payment.credits_reversed
    reference = f"{payment_reference(payment.id)}:{event_id}"
    if delta > 0:
        note = f"Refund or dispute of payment {payment.id}"
        taken = await ledger.debit_available(
            session, payment.user_id, delta, kind=EntryKind.ADJUST, reference=reference, note=note
        )
        payment.credits_unrecovered += delta - taken
        if taken < delta:
            await session.execute(update(User).where(User.id == payment.user_id).values(flagged=True))
            log.warning("payment %s: %d credits could not be taken back; user flagged", payment.id, delta - taken)
    elif delta < 0:  # a dispute was won: return what was actually taken
        forgiven = min(payment.credits_unrecovered, -delta)
        payment.credits_unrecovered -= forgiven
        returned = -delta - forgiven
        if returned > 0:
            note = f"Dispute won for payment {payment.id}"
            await ledger.credit(
                session, payment.user_id, returned, kind=EntryKind.ADJUST, reference=reference, note=note
            )
    payment.credits_reversed += delta
    payment.updated_at = ctx.clock()


async def _charge_refunded(ctx: ServiceContext, session: AsyncSession, event_id: str, obj: dict[str, Any]) -> str:
    payment = await _payment_for_intent(session, obj)
    # `amount_refunded` is cumulative on the charge, so a reordered older event never lowers it.
    payment.amount_refunded = max(payment.amount_refunded, int(obj.get("amount_refunded") or 0))
    await _reconcile_reversal(ctx, session, payment, event_id)
    return "refund_applied"


async def _dispute_created(ctx: ServiceContext, session: AsyncSession, event_id: str, obj: dict[str, Any]) -> str:
    payment = await _payment_for_intent(session, obj)
    payment.amount_disputed = max(payment.amount_disputed, int(obj.get("amount") or 0))
    await _reconcile_reversal(ctx, session, payment, event_id)
    return "dispute_applied"


async def _dispute_closed(ctx: ServiceContext, session: AsyncSession, event_id: str, obj: dict[str, Any]) -> str:
    payment = await _payment_for_intent(session, obj)
    if obj.get("status") != "won":
        return "dispute_lost"
    payment.amount_disputed = 0
    await _reconcile_reversal(ctx, session, payment, event_id)
    return "dispute_won"


_HANDLERS: dict[str, Callable[[ServiceContext, AsyncSession, str, dict[str, Any]], Awaitable[str]]] = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": _async_succeeded,
    "checkout.session.async_payment_failed": _ended("failed"),
    "checkout.session.expired": _ended("expired"),
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
