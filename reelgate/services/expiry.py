"""Credit expiry (off by default): credits older than the configured age lapse as `expire` entries."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select

from reelgate.db.tables import Balance, LedgerEntry
from reelgate.domain.ledger import EntryKind
from reelgate.services import ledger
from reelgate.services.context import ServiceContext

log = logging.getLogger("reelgate.expiry")
# Kinds that bring credits in; each entry is a "lot" that ages from its own date.
_DEPOSITS = (EntryKind.GRANT.value, EntryKind.PURCHASE.value, EntryKind.ADJUST.value)


async def expire_credits(ctx: ServiceContext) -> int:
    """Expires, for every account, the credits older than `credit_expiry_days`; returns how many lapsed.

    Spending uses the oldest credits first, so the credits still available belong to the newest lots:
    what may lapse is `available − credits deposited within the window` (never negative). Held and spent
    credits never lapse. A 90-day expiry is a common choice to limit the liability of unused credit.
    """
    days = ctx.config.credit_expiry_days
    if days <= 0:
        return 0
    now = ctx.clock()
    cutoff = now - timedelta(days=days)
    async with ctx.db.reader() as session:
        candidates = list((await session.execute(select(Balance.user_id).where(Balance.available > 0))).scalars())
    total = 0
    for user_id in candidates:
        total += await _expire_account(ctx, user_id, cutoff, days)
    if total:
        log.info("expired %d credits older than %d days", total, days)
    return total


async def _expire_account(ctx: ServiceContext, user_id: str, cutoff: datetime, days: int) -> int:
    now = ctx.clock()
    async with ctx.db.transaction() as session:
        # Lock the balance first so the amount computed below is the amount taken (PostgreSQL; SQLite
        # write transactions are already serialized by BEGIN IMMEDIATE).
        available = (
            await session.execute(select(Balance.available).where(Balance.user_id == user_id).with_for_update())
        ).scalar_one()
        recent = (
            await session.execute(
                select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                    LedgerEntry.user_id == user_id,
                    LedgerEntry.kind.in_(_DEPOSITS),
                    LedgerEntry.amount > 0,
                    LedgerEntry.created_at >= cutoff,
                )
            )
        ).scalar_one()
        lapsed = available - int(recent)
        if lapsed <= 0:
            return 0
        return await ledger.debit_available(
            session,
            user_id,
            lapsed,
            kind=EntryKind.EXPIRE,
            reference=f"expiry:{user_id}:{now.isoformat(timespec='seconds')}",
            note=f"Credits older than {days} days expired",
        )
