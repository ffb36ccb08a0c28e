"""Provider webhook deliveries already applied (a redelivery inserts nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any

from reelgate.db.codec import decode_row
from reelgate.db.queries.generations import generation_by_id
from reelgate.db.records import Generation
from reelgate.db.sql import Query, Tx, columns, in_states, query

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


_COLUMNS = columns(Generation)
_WIDTH = len(fields(Generation))


@dataclass(frozen=True)
class ChangeIfStillSent:
    """A status change that a delivery makes unless the job has moved on: made only if the delivery is new, the
    generation is in one of `sources`, still with the sender's provider and account (`account`: the fingerprint
    the job was sent with), and has no other provider job id than `job_id`, which it takes when it has none."""

    sources: tuple[str, ...]
    values: Mapping[str, Any]  # the columns set (provider_job_id aside), with their new values
    event: Mapping[str, Any]  # the event row: from_status, to_status, detail, at
    account: str | None
    job_id: str | None


@lru_cache(maxsize=16)
def _record_and_change(sources: tuple[str, ...], keys: tuple[str, ...]) -> Query:
    """PostgreSQL: the inbox row, the generation as it was, and the change with its event, in one statement (a
    round trip fewer than reading, deciding and then changing). Its guard is the one the services apply to the
    row they read (webhooks.Sender.still_sends, transitions.apply_provider_update), so the change is made exactly
    when they would make it; when it is not, they decide from the row as it was, as without this statement."""
    assignments = [f"{key} = :v_{key}" for key in keys]
    assignments.append("provider_job_id = COALESCE(NULLIF(provider_job_id, ''), :job_id)")
    # The account's fingerprint as routing.account_fingerprint reads it: a string, or nothing.
    fingerprint = (
        "CASE WHEN json_typeof(provider_account -> 'fingerprint') = 'string' "
        "THEN provider_account ->> 'fingerprint' END"
    )
    return query(
        "WITH delivery AS (INSERT INTO webhook_inbox (provider, delivery_id, generation_id, received_at) "
        "VALUES (:provider, :delivery_id, :generation_id, :now) ON CONFLICT DO NOTHING RETURNING id), "
        f"before AS (SELECT {_COLUMNS} FROM generations WHERE id = :id), "
        # Checked on the row as read, as the services check it; the UPDATE names the row by its key alone, so the
        # planner has no other index to choose for it (one on `provider` would read every job of the provider).
        "still_sent AS (SELECT 1 FROM before WHERE provider = :provider "
        f"AND ({fingerprint}) IS NOT DISTINCT FROM CAST(:account AS text) "
        "AND (COALESCE(provider_job_id, '') = '' OR COALESCE(CAST(:job_id AS text), '') = '' "
        "OR provider_job_id = :job_id)), "
        f"changed AS (UPDATE generations SET {', '.join(assignments)} "
        f"WHERE id = :id AND status IN {in_states(sources)} AND EXISTS (SELECT 1 FROM delivery) "
        f"AND EXISTS (SELECT 1 FROM still_sent) RETURNING {_COLUMNS}), "
        "event AS (INSERT INTO generation_events (generation_id, from_status, to_status, detail, at) "
        "SELECT id, :e_from, :e_to, :e_detail, :e_at FROM changed) "
        "SELECT (SELECT count(*) FROM delivery), before.*, changed.* "
        "FROM (SELECT 1) AS one LEFT JOIN before ON true LEFT JOIN changed ON true",
        confined_by="id",
    )


def record_delivery_then_change(
    tx: Tx, provider: str, delivery_id: str, generation_id: str, now: datetime, change: ChangeIfStillSent | None
) -> tuple[bool, Generation | None, Generation | None]:
    """Records the delivery (True the first time it is seen), reads the generation as it is, and on PostgreSQL
    makes `change` (if any) in the same statement when its guard holds. Returns (first, the generation before,
    the generation after the change, or None when it was not made: SQLite, in steps, leaves it to the caller)."""
    if change is None or tx.dialect != "postgresql":
        first, current = record_delivery_then_read(tx, provider, delivery_id, generation_id, now)
        return first, current, None
    keys = tuple(sorted(change.values))
    params: dict[str, Any] = {f"v_{key}": change.values[key] for key in keys}
    params.update(
        provider=provider,
        delivery_id=delivery_id,
        generation_id=generation_id,
        id=generation_id,
        now=now,
        account=change.account,
        job_id=change.job_id,
        e_from=change.event["from_status"],
        e_to=change.event["to_status"],
        e_detail=dict(change.event["detail"]),
        e_at=change.event["at"],
    )
    row = tx.one(_record_and_change(change.sources, keys), params)
    before, after = row[1 : 1 + _WIDTH], row[1 + _WIDTH :]
    return (
        bool(row[0]),
        None if before[0] is None else decode_row(Generation, tx.dialect, before),
        None if after[0] is None else decode_row(Generation, tx.dialect, after),
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
