"""Idempotency keys of generation requests: Stripe's semantics, the first response replayed per user and key."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.records import IdempotencyKey
from reelgate.db.sql import Tx, columns, query

_RECORD = query(
    f"SELECT {columns(IdempotencyKey)} FROM idempotency_keys WHERE user_id = :user_id AND key = :key",
    row=IdempotencyKey,
)
_DELETE = query("DELETE FROM idempotency_keys WHERE user_id = :user_id AND key = :key")
_INSERT = query(
    "INSERT INTO idempotency_keys (user_id, key, scope, request_hash, generation_id, created_at) "
    "VALUES (:user_id, :key, 'generations', :request_hash, :generation_id, :now) ON CONFLICT DO NOTHING RETURNING 1"
)


def key_record(tx: Tx, user_id: str, key: str) -> IdempotencyKey | None:
    record: IdempotencyKey | None = tx.one(_RECORD, {"user_id": user_id, "key": key})
    return record


def forget_key(tx: Tx, user_id: str, key: str) -> None:
    tx.run(_DELETE, {"user_id": user_id, "key": key})


def insert_key(tx: Tx, user_id: str, key: str, request_hash: str, generation_id: str, now: datetime) -> bool:
    """Records the key with the generation it is about to make; False when the user used it already. On
    PostgreSQL a concurrent twin waits here for the first to commit or roll back, before any credit moves."""
    params = {"user_id": user_id, "key": key, "request_hash": request_hash, "generation_id": generation_id, "now": now}
    return tx.run(_INSERT, params) == 1
