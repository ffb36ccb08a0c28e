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
    "VALUES (:user_id, :key, 'generations', :request_hash, NULL, :now)"
)
_LINK = query("UPDATE idempotency_keys SET generation_id = :generation_id WHERE user_id = :user_id AND key = :key")


def key_record(tx: Tx, user_id: str, key: str) -> IdempotencyKey | None:
    record: IdempotencyKey | None = tx.one(_RECORD, {"user_id": user_id, "key": key})
    return record


def forget_key(tx: Tx, user_id: str, key: str) -> None:
    tx.run(_DELETE, {"user_id": user_id, "key": key})


def insert_key(tx: Tx, user_id: str, key: str, request_hash: str, now: datetime) -> None:
    """A concurrent twin with the same key fails here (UniqueViolation), before any credit moves."""
    tx.run(_INSERT, {"user_id": user_id, "key": key, "request_hash": request_hash, "now": now})


def link_key(tx: Tx, user_id: str, key: str, generation_id: str) -> None:
    tx.run(_LINK, {"user_id": user_id, "key": key, "generation_id": generation_id})
