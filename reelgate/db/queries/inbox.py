"""Provider webhook deliveries already applied (a redelivery inserts nothing)."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.codec import decode_row
from reelgate.db.queries.generations import generation_by_id
from reelgate.db.records import Generation
from reelgate.db.sql import Tx, columns, query

_RECORD = query(
    "INSERT INTO webhook_inbox (provider, delivery_id, generation_id, received_at) "
    "VALUES (:provider, :delivery_id, :generation_id, :now) ON CONFLICT DO NOTHING RETURNING id",
    confined_by="generation_id",
)
# PostgreSQL: the inbox row and the generation's current row in one statement (a round trip saved).
_RECORD_AND_READ = query(
    "WITH delivery AS (INSERT INTO webhook_inbox (provider, delivery_id, generation_id, received_at) "
    "VALUES (:provider, :delivery_id, :generation_id, :now) ON CONFLICT DO NOTHING RETURNING id) "
    f"SELECT (SELECT count(*) FROM delivery), {columns(Generation)} FROM generations WHERE id = :id",
    confined_by="id",
)


def record_webhook_delivery(tx: Tx, provider: str, delivery_id: str, generation_id: str, now: datetime) -> bool:
    """True the first time this (provider, delivery id) is seen."""
    params = {"provider": provider, "delivery_id": delivery_id, "generation_id": generation_id, "now": now}
    return tx.run(_RECORD, params) == 1


def record_delivery_then_read(
    tx: Tx, provider: str, delivery_id: str, generation_id: str, now: datetime
) -> tuple[bool, Generation | None]:
    """Records the delivery (True the first time it is seen) and reads the generation it is about, as it is now."""
    if tx.dialect != "postgresql":
        first = record_webhook_delivery(tx, provider, delivery_id, generation_id, now)
        return first, generation_by_id(tx, generation_id) if first else None
    params = {"provider": provider, "delivery_id": delivery_id, "generation_id": generation_id, "now": now}
    row = tx.one(_RECORD_AND_READ, {**params, "id": generation_id})
    if row is None:
        return True, None
    return bool(row[0]), decode_row(Generation, tx.dialect, row[1:])
