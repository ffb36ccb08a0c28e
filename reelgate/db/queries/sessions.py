"""Studio sessions kept on the server: one row per signed-in browser, found by the hash of its cookie."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.records import Session
from reelgate.db.sql import Tx, columns, insert_query, query, values_of

_INSERT = insert_query(Session)
_BY_ID = query(f"SELECT {columns(Session)} FROM sessions WHERE id = :id", row=Session)
_OF_USER = query(
    f"SELECT {columns(Session)} FROM sessions WHERE user_id = :user_id ORDER BY last_used_at DESC", row=Session
)
_TOUCH = query("UPDATE sessions SET last_used_at = :now WHERE id = :id")
_REAUTHENTICATED = query("UPDATE sessions SET authenticated_at = :now, last_used_at = :now WHERE id = :id")
_DELETE = query("DELETE FROM sessions WHERE id = :id AND user_id = :user_id")
_DELETE_ALL = query("DELETE FROM sessions WHERE user_id = :user_id")
_DELETE_OTHERS = query("DELETE FROM sessions WHERE user_id = :user_id AND id <> :keep")
_DELETE_STALE = query("DELETE FROM sessions WHERE last_used_at < :idle_before OR created_at < :created_before")


def insert_session(tx: Tx, session: Session) -> None:
    tx.run(_INSERT, values_of(session))


def session_by_id(tx: Tx, session_id: str) -> Session | None:
    session: Session | None = tx.one(_BY_ID, {"id": session_id})
    return session


def sessions_of(tx: Tx, user_id: str) -> list[Session]:
    return tx.all(_OF_USER, {"user_id": user_id})


def touch_session(tx: Tx, session_id: str, now: datetime) -> None:
    tx.run(_TOUCH, {"id": session_id, "now": now})


def mark_reauthenticated(tx: Tx, session_id: str, now: datetime) -> None:
    tx.run(_REAUTHENTICATED, {"id": session_id, "now": now})


def delete_session(tx: Tx, user_id: str, session_id: str) -> bool:
    return tx.run(_DELETE, {"id": session_id, "user_id": user_id}) == 1


def delete_sessions_of(tx: Tx, user_id: str, *, keep: str | None = None) -> int:
    if keep is None:
        return tx.run(_DELETE_ALL, {"user_id": user_id})
    return tx.run(_DELETE_OTHERS, {"user_id": user_id, "keep": keep})


def delete_stale_sessions(tx: Tx, idle_before: datetime, created_before: datetime) -> int:
    return tx.run(_DELETE_STALE, {"idle_before": idle_before, "created_before": created_before})
