"""Tables of the billing feature (declared on the shared Base in reelgate.db.tables)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from reelgate.db.tables import Base
from reelgate.db.types import utcnow


class Payment(Base):
    """One Stripe Checkout Session for a credit package; its credits are granted once, as `payment:<id>`."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    stripe_session_id: Mapped[str] = mapped_column(String(255), unique=True)
    # Known once the session completes; refunds and disputes name the payment intent, not the session.
    stripe_payment_intent: Mapped[str | None] = mapped_column(String(255), index=True)
    package: Mapped[str] = mapped_column(String(40))
    credits: Mapped[int] = mapped_column(BigInteger)  # including the bonus
    bonus: Mapped[int] = mapped_column(BigInteger, default=0)
    amount: Mapped[int] = mapped_column(BigInteger)  # in the currency's minor unit (cents)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="open")
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_disputed: Mapped[int] = mapped_column(BigInteger, default=0)
    # Credits taken back for refunds and disputes, and the part the balance could not cover.
    credits_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_unrecovered: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column()


class StripeEvent(Base):
    """Stripe events already applied; a redelivered event id is rejected by the primary key."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
