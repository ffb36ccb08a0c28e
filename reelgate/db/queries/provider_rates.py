"""A provider's request rate, kept in the database so every worker and process shares one count.

The shape is a sliding window log: one row per submit, pruned once it is older than the rate's period. A token
bucket would need one row, but lets a full bucket and its refill through within one period (up to twice the rate
in a window straddling the refill), which is exactly what a provider counting a sliding window refuses. The log
holds at most the rate's count of live rows per provider, and the next free moment is read off it exactly: the
count-th latest submit plus the period.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from reelgate.db.codec import moment
from reelgate.db.queries.generations import lock_provider
from reelgate.db.sql import Tx, query
from reelgate.domain.request_rates import RequestRate

_PRUNE = query("DELETE FROM provider_requests WHERE provider = :provider AND sent_at <= :since")
_OLDEST_COUNTED = query(
    "SELECT sent_at FROM provider_requests WHERE provider = :provider ORDER BY sent_at DESC LIMIT 1 OFFSET :skip"
)
_RECORD = query("INSERT INTO provider_requests (provider, sent_at) VALUES (:provider, :now)")


def take_request_slot(tx: Tx, provider: str, rate: RequestRate, clock: Callable[[], datetime]) -> float | None:
    """Records a request to `provider` now and returns None when the rate allows one; otherwise records nothing
    and returns the seconds until it will. Holds the provider's lock until the transaction ends, and reads the
    clock only once it has it, so a worker that waited for the lock never records a moment before the holder's."""
    lock_provider(tx, provider)
    now = clock()
    period = timedelta(seconds=rate.period_seconds)
    tx.run(_PRUNE, {"provider": provider, "since": now - period})
    counted = tx.scalar(_OLDEST_COUNTED, {"provider": provider, "skip": rate.count - 1})
    if counted is not None:
        frees_at = moment(tx.dialect, counted)
        assert frees_at is not None
        wait = (frees_at + period - now).total_seconds()
        if wait > 0:
            return wait
    tx.run(_RECORD, {"provider": provider, "now": now})
    return None
