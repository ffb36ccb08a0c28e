"""Tables of the billing feature: Stripe payments and the Stripe events already applied."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table

from reelgate.db.tables import metadata
from reelgate.db.types import UTCDateTime

# One Stripe Checkout Session for a credit package; its credits are granted once, as `payment:<id>`.
payments = Table(
    "payments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),  # who bought
    # The ledger account the credits go to and are taken back from: the buyer's own, or an organization's wallet
    # that the buyer manages. No foreign key, as with the ledger's own account ids.
    Column("account_id", String(40), nullable=False),
    Column("stripe_session_id", String(255), nullable=False, unique=True),
    # Known once the session completes; refunds and disputes name the payment intent, not the session.
    Column("stripe_payment_intent", String(255), index=True),
    Column("package", String(40), nullable=False),
    Column("credits", BigInteger, nullable=False),  # including the bonus
    Column("bonus", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),  # in the currency's minor unit (cents)
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    Column("amount_disputed", BigInteger, nullable=False),
    # Credits taken back for refunds and disputes, and the part the balance could not cover.
    Column("credits_reversed", BigInteger, nullable=False),
    Column("credits_unrecovered", BigInteger, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("paid_at", UTCDateTime()),
    Index("ix_payments_user_created", "user_id", "created_at"),
    Index("ix_payments_account_created", "account_id", "created_at"),
)

# Stripe events already applied; a redelivered event id is rejected by the primary key.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("type", String(80), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
)
