"""The operator's numbers: read straight from the ledger, the generations and the payments."""

from __future__ import annotations

from datetime import datetime

from reelgate.db.codec import decode_row
from reelgate.db.records import Generation, LedgerEntry, Payment
from reelgate.db.sql import Tx, columns, query

_CAPTURES = query(
    f"SELECT {columns(LedgerEntry, 'e')}, {columns(Generation, 'g')} FROM ledger_entries e "
    "JOIN generations g ON g.id = e.generation_id "
    "WHERE e.kind = 'capture' AND e.created_at >= :start AND e.created_at < :end ORDER BY e.id DESC"
)
_CREATED = query(
    f"SELECT {columns(Generation)} FROM generations WHERE created_at >= :start AND created_at < :end",
    row=Generation,
)
_PAID = query(f"SELECT {columns(Payment)} FROM payments WHERE paid_at >= :start AND paid_at < :end", row=Payment)
_RELEASED = query(
    "SELECT amount FROM ledger_entries WHERE kind = 'release' AND created_at >= :start AND created_at < :end"
)
# Reversal entries are the negative adjustments referencing a payment ("payment:<id>:<event>").
_REVERSALS = query(
    "SELECT reference, amount FROM ledger_entries WHERE kind = 'adjust' AND reference LIKE 'payment:%' "
    "AND amount < 0 AND created_at >= :start AND created_at < :end"
)
_REVERSED_PAYMENTS = query(
    f"SELECT {columns(Payment)} FROM payments WHERE updated_at >= :start AND updated_at < :end "
    "AND amount_refunded + amount_disputed > 0",
    row=Payment,
)
_EMAILS = query("SELECT id, email FROM users")
_SUMS_PER_KIND = query("SELECT kind, SUM(amount) FROM ledger_entries GROUP BY kind")
_COUNT_PER_STATUS = query("SELECT status, count(*) FROM generations GROUP BY status")
_COUNT_PER_STATUS_AND_MODEL = query("SELECT status, model, count(*) FROM generations GROUP BY status, model")
_TOTAL_HELD = query("SELECT COALESCE(SUM(held), 0) FROM balances")


def captures_between(tx: Tx, start: datetime, end: datetime) -> list[tuple[LedgerEntry, Generation]]:
    """Every capture in [start, end) with its generation, newest first."""
    width = len(LedgerEntry.__dataclass_fields__)
    return [
        (decode_row(LedgerEntry, tx.dialect, row[:width]), decode_row(Generation, tx.dialect, row[width:]))
        for row in tx.all(_CAPTURES, {"start": start, "end": end})
    ]


def generations_created_between(tx: Tx, start: datetime, end: datetime) -> list[Generation]:
    return tx.all(_CREATED, {"start": start, "end": end})


def payments_paid_between(tx: Tx, start: datetime, end: datetime) -> list[Payment]:
    return tx.all(_PAID, {"start": start, "end": end})


def released_amounts_between(tx: Tx, start: datetime, end: datetime) -> list[int]:
    return [int(amount) for (amount,) in tx.all(_RELEASED, {"start": start, "end": end})]


def payment_reversals_between(tx: Tx, start: datetime, end: datetime) -> list[tuple[str, int]]:
    return [(reference, int(amount)) for reference, amount in tx.all(_REVERSALS, {"start": start, "end": end})]


def payments_reversed_between(tx: Tx, start: datetime, end: datetime) -> list[Payment]:
    return tx.all(_REVERSED_PAYMENTS, {"start": start, "end": end})


def user_emails(tx: Tx) -> dict[str, str]:
    return {user_id: email for user_id, email in tx.all(_EMAILS)}


def ledger_sums_per_kind(tx: Tx) -> dict[str, int]:
    return {kind: int(total or 0) for kind, total in tx.all(_SUMS_PER_KIND)}


def generations_per_status(tx: Tx) -> dict[str, int]:
    return {status: int(count) for status, count in tx.all(_COUNT_PER_STATUS)}


def generations_per_status_and_model(tx: Tx) -> list[tuple[str, str, int]]:
    return [(status, model, int(count)) for status, model, count in tx.all(_COUNT_PER_STATUS_AND_MODEL)]


def total_held(tx: Tx) -> int:
    return int(tx.scalar(_TOTAL_HELD))
