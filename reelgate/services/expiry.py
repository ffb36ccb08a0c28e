"""Credit expiry (off by default): credits older than the configured age lapse as `expire` entries."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.sql import Tx
from reelgate.domain.ledger import EntryKind
from reelgate.services.context import ServiceContext

log = logging.getLogger("reelgate.expiry")


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
    candidates = await ctx.db.read(ledger_queries.accounts_with_available)
    total = 0
    for user_id in candidates:
        total += await _expire_account(ctx, user_id, cutoff, days)
    if total:
        log.info("expired %d credits older than %d days", total, days)
    return total


async def _expire_account(ctx: ServiceContext, user_id: str, cutoff: datetime, days: int) -> int:
    now = ctx.clock()

    def expire(tx: Tx) -> int:
        # The balance is locked first, so the amount computed here is the amount taken.
        available = ledger_queries.available_locked(tx, user_id)
        lapsed = available - ledger_queries.deposited_since(tx, user_id, cutoff)
        if lapsed <= 0:
            return 0
        return ledger_queries.debit_available(
            tx,
            user_id,
            lapsed,
            kind=EntryKind.EXPIRE,
            reference=f"expiry:{user_id}:{now.isoformat(timespec='seconds')}",
            note=f"Credits older than {days} days expired",
        )

    return await ctx.db.write(expire)
