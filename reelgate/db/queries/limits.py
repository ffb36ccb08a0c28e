"""What the submission caps count: generations in flight and credits spent today."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.sql import Tx, in_states, query
from reelgate.domain.jobs import ACTIVE_STATES, GenerationStatus

# A refunded job spent nothing; everything else (held or charged) counts towards a spend cap.
_REFUNDED = in_states({GenerationStatus.FAILED, GenerationStatus.CANCELED, GenerationStatus.EXPIRED})
# `status IN (active)` rather than NOT IN (terminal): it ranges over the (user_id, status) index instead of
# reading the user's whole history.
_IN_FLIGHT = query(
    f"SELECT count(*) FROM generations WHERE user_id = :user_id AND status IN {in_states(ACTIVE_STATES)}"
)
_SPENT_BY_USER = query(
    "SELECT COALESCE(SUM(quote_total), 0) FROM generations "
    f"WHERE user_id = :user_id AND created_at >= :start AND created_at < :end AND status NOT IN {_REFUNDED}"
)
_SPENT_BY_ALL = query(
    "SELECT COALESCE(SUM(quote_total), 0) FROM generations "
    f"WHERE created_at >= :start AND created_at < :end AND status NOT IN {_REFUNDED}"
)
_GLOBAL_CAP_LOCK = 0x7265656C  # pg_advisory_xact_lock key for the global spend cap ("reel")
_LOCK_GLOBAL = query(f"SELECT pg_advisory_xact_lock({_GLOBAL_CAP_LOCK})")


def in_flight(tx: Tx, user_id: str) -> int:
    return int(tx.scalar(_IN_FLIGHT, {"user_id": user_id}))


def spent_between(tx: Tx, user_id: str | None, start: datetime, end: datetime) -> int:
    """Credits held or charged by generations created in [start, end): one user's, or everyone's."""
    if user_id is None:
        return int(tx.scalar(_SPENT_BY_ALL, {"start": start, "end": end}))
    return int(tx.scalar(_SPENT_BY_USER, {"user_id": user_id, "start": start, "end": end}))


def serialize_global_spending(tx: Tx) -> None:
    """Makes the global spend cap's count and the insert that follows it one step across every process, with a
    transaction-scoped advisory lock (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers)."""
    if tx.dialect == "postgresql":
        tx.run(_LOCK_GLOBAL)
