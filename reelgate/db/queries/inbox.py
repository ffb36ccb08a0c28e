"""Provider webhook deliveries already applied (a redelivery inserts nothing)."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.sql import Tx, query

_RECORD = query(
    "INSERT INTO webhook_inbox (provider, delivery_id, generation_id, received_at) "
    "VALUES (:provider, :delivery_id, :generation_id, :now) ON CONFLICT DO NOTHING RETURNING id"
)


def record_webhook_delivery(tx: Tx, provider: str, delivery_id: str, generation_id: str, now: datetime) -> bool:
    """True the first time this (provider, delivery id) is seen."""
    params = {"provider": provider, "delivery_id": delivery_id, "generation_id": generation_id, "now": now}
    return tx.run(_RECORD, params) == 1
