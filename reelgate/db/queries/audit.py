"""The administrators' audit log: appended to, listed newest first, never changed."""

from __future__ import annotations

from reelgate.db.records import AuditEntry
from reelgate.db.sql import Tx, columns, insert_query, query, values_of

_INSERT = insert_query(AuditEntry)
_LATEST = query(
    f"SELECT {columns(AuditEntry)} FROM audit_log ORDER BY created_at DESC, id DESC LIMIT :limit", row=AuditEntry
)
_LATEST_FOR = query(
    f"SELECT {columns(AuditEntry)} FROM audit_log WHERE target_user_id = :user_id "
    "ORDER BY created_at DESC, id DESC LIMIT :limit",
    row=AuditEntry,
)


def insert_entry(tx: Tx, entry: AuditEntry) -> None:
    tx.run(_INSERT, values_of(entry))


def latest_entries(tx: Tx, *, user_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
    if user_id is None:
        return tx.all(_LATEST, {"limit": limit})
    return tx.all(_LATEST_FOR, {"user_id": user_id, "limit": limit})
