"""A user's credit history from the ledger: paginated and filtered, and exported as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from reelgate.db.queries.ledger import ledger_page
from reelgate.db.records import LedgerEntry
from reelgate.db.sql import Tx
from reelgate.domain.errors import ValidationFailed
from reelgate.services.context import ServiceContext
from reelgate.services.stripe_events import payment_reference

# ---------------------------------------------------------------- transactions

# How each kind moves the spendable balance (`available`); capture moves held credits to charged.
_AVAILABLE_SIGN = {"grant": 1, "purchase": 1, "adjust": 1, "release": 1, "expire": -1, "hold": -1, "capture": 0}


@dataclass(frozen=True)
class Transaction:
    id: int
    kind: str
    amount: int  # as recorded: positive, except a negative adjustment
    available_change: int  # what it did to the spendable balance
    note: str
    reference: str
    generation_id: str | None
    payment_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class TransactionFilter:
    kinds: Sequence[str] = field(default_factory=tuple)
    generation_id: str | None = None
    payment_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _payment_of(reference: str) -> str | None:
    return reference.split(":")[1] if reference.startswith("payment:") else None


def _transaction(row: LedgerEntry) -> Transaction:
    return Transaction(
        id=row.id,
        kind=row.kind,
        amount=row.amount,
        available_change=_AVAILABLE_SIGN.get(row.kind, 0) * row.amount,
        note=row.note,
        reference=row.reference,
        generation_id=row.generation_id,
        payment_id=_payment_of(row.reference),
        created_at=row.created_at,
    )


def _check_kinds(kinds: tuple[str, ...]) -> None:
    known = set(_AVAILABLE_SIGN)
    for kind in kinds:
        if kind not in known:
            raise ValidationFailed("kind", f"Unknown transaction kind {kind!r}.", allowed=sorted(known))


async def list_transactions(
    ctx: ServiceContext,
    user_id: str,
    filters: TransactionFilter | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Transaction], str | None]:
    """Newest first; the cursor is the last entry id seen (entries are append-only, so ids only grow)."""
    if not 1 <= limit <= 500:
        raise ValidationFailed("limit", "limit must be between 1 and 500.", allowed={"min": 1, "max": 500})
    chosen = filters or TransactionFilter()
    _check_kinds(tuple(chosen.kinds))
    if cursor and not cursor.isdigit():
        raise ValidationFailed("cursor", "Invalid cursor.")

    def page(tx: Tx) -> list[LedgerEntry]:
        return ledger_page(
            tx,
            user_id,
            kinds=tuple(chosen.kinds),
            generation_id=chosen.generation_id,
            reference_prefix=payment_reference(chosen.payment_id) if chosen.payment_id else None,
            since=chosen.since,
            until=chosen.until,
            before_id=int(cursor) if cursor else None,
            limit=limit + 1,
        )

    rows = await ctx.db.read(page)
    page_rows = [_transaction(row) for row in rows[:limit]]
    return page_rows, (str(page_rows[-1].id) if len(rows) > limit else None)


CSV_COLUMNS = (
    "id",
    "created_at",
    "kind",
    "amount",
    "available_change",
    "generation_id",
    "payment_id",
    "reference",
    "note",
)


async def iter_transactions_csv(
    ctx: ServiceContext, user_id: str, filters: TransactionFilter | None = None
) -> AsyncIterator[str]:
    """Every matching entry as CSV, a page at a time so a long history never sits in memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    cursor: str | None = None
    while True:
        page, cursor = await list_transactions(ctx, user_id, filters, limit=500, cursor=cursor)
        for t in page:
            writer.writerow(
                [
                    t.id,
                    t.created_at.isoformat(),
                    t.kind,
                    t.amount,
                    t.available_change,
                    t.generation_id or "",
                    t.payment_id or "",
                    t.reference,
                    t.note,
                ]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if cursor is None:
            return
