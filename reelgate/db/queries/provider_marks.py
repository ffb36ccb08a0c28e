"""Degraded-provider marks shared between processes."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.sql import Tx, query

_UPSERT = query(
    "INSERT INTO provider_marks (provider, reason, updated_at) VALUES (:provider, :reason, :now) "
    "ON CONFLICT (provider) DO UPDATE SET reason = excluded.reason, updated_at = excluded.updated_at"
)
_DELETE = query("DELETE FROM provider_marks WHERE provider = :provider")
_ALL = query("SELECT provider, reason FROM provider_marks")


def set_mark(tx: Tx, provider: str, reason: str, now: datetime) -> None:
    tx.run(_UPSERT, {"provider": provider, "reason": reason, "now": now})


def clear_mark(tx: Tx, provider: str) -> None:
    tx.run(_DELETE, {"provider": provider})


def all_marks(tx: Tx) -> dict[str, str]:
    return {provider: reason for provider, reason in tx.all(_ALL)}
