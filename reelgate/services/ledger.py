"""Credit movements. Each function runs inside the caller's transaction and writes entry + balance together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from reelgate.db.engine import Executor
from reelgate.db.prepared import Prepared
from reelgate.db.tables import Balance, LedgerEntry
from reelgate.db.types import utcnow
from reelgate.domain.errors import InsufficientCredits
from reelgate.domain.ledger import BalanceSnapshot, EntryKind, InvariantViolation, check_account


@dataclass(frozen=True)
class Credits:
    available: int
    held: int
    captured: int


_ENTRIES = cast(Table, LedgerEntry.__table__)
_BALANCES = cast(Table, Balance.__table__)
# Built once: constructing a statement costs more than SQLite takes to run it. They name the tables, not the
# mapped classes, so a Session runs them as plain Core (no ORM bulk path) and a Connection runs them as they are.
# No conflict target: any unique constraint (kind+reference, or the one-settlement index) makes it a no-op.
# RETURNING tells whether a row went in; psycopg reports rowcount -1 for this statement on PostgreSQL.
_ENTRY_KEYS = ("user_id", "kind", "amount", "reference", "generation_id", "note", "created_at")
_INSERT_ENTRY_ONCE = {
    "sqlite": Prepared(
        sqlite_insert(_ENTRIES).on_conflict_do_nothing().returning(_ENTRIES.c.id), column_keys=_ENTRY_KEYS
    ),
    "postgresql": Prepared(
        pg_insert(_ENTRIES).on_conflict_do_nothing().returning(_ENTRIES.c.id), column_keys=_ENTRY_KEYS
    ),
}
_HOLD = Prepared(
    update(_BALANCES)
    .where(_BALANCES.c.user_id == bindparam("b_user"), _BALANCES.c.available >= bindparam("b_amount"))
    .values(
        available=_BALANCES.c.available - bindparam("b_amount"),
        held=_BALANCES.c.held + bindparam("b_amount"),
        updated_at=bindparam("b_now"),
    )
)


def _dialect(executor: Executor) -> str:
    if isinstance(executor, AsyncConnection):
        return executor.dialect.name
    return executor.bind.dialect.name if executor.bind is not None else "sqlite"


async def _insert_entry_once(
    session: Executor,
    *,
    user_id: str,
    kind: EntryKind,
    amount: int,
    reference: str,
    generation_id: str | None = None,
    note: str = "",
) -> bool:
    """Insert unless (kind, reference) or the generation's settlement already exists; True if inserted."""
    values: dict[str, Any] = {
        "user_id": user_id,
        "kind": kind.value,
        "amount": amount,
        "reference": reference,
        "generation_id": generation_id,
        "note": note,
        "created_at": utcnow(),
    }
    statement = _INSERT_ENTRY_ONCE["postgresql" if _dialect(session) == "postgresql" else "sqlite"]
    return (await statement.run(session, values)).first() is not None


async def open_account(session: AsyncSession, user_id: str) -> None:
    session.add(Balance(user_id=user_id, available=0, held=0, captured=0))
    await session.flush()


async def credit(
    session: AsyncSession, user_id: str, amount: int, *, kind: EntryKind, reference: str, note: str = ""
) -> bool:
    """Add credits (grant, purchase, or a positive adjust). Idempotent per (kind, reference)."""
    if amount <= 0:
        raise ValueError("credit amount must be positive")
    if not await _insert_entry_once(session, user_id=user_id, kind=kind, amount=amount, reference=reference, note=note):
        return False
    await session.execute(
        update(Balance)
        .where(Balance.user_id == user_id)
        .values(available=Balance.available + amount, updated_at=utcnow())
    )
    return True


async def debit_available(
    session: AsyncSession, user_id: str, amount: int, *, kind: EntryKind, reference: str, note: str = ""
) -> int:
    """Take up to `amount` from available (negative adjust or expire); never below zero. Returns what was taken."""
    row = await session.execute(select(Balance.available).where(Balance.user_id == user_id).with_for_update())
    available = row.scalar_one()
    taken = min(amount, available)
    if taken <= 0:
        return 0
    signed = -taken if kind is EntryKind.ADJUST else taken
    if not await _insert_entry_once(session, user_id=user_id, kind=kind, amount=signed, reference=reference, note=note):
        return 0
    await session.execute(
        update(Balance)
        .where(Balance.user_id == user_id)
        .values(available=Balance.available - taken, updated_at=utcnow())
    )
    return taken


async def hold(session: Executor, user_id: str, amount: int, *, generation_id: str) -> None:
    """Move credits from available to held; a conditional update that cannot overdraw.

    The entry goes in first, so a repeated hold is refused before any balance moves; if the user
    cannot afford it, the raised InsufficientCredits rolls the entry back with the transaction.
    """
    inserted = await _insert_entry_once(
        session,
        user_id=user_id,
        kind=EntryKind.HOLD,
        amount=amount,
        reference=generation_id,
        generation_id=generation_id,
    )
    if not inserted:
        raise RuntimeError(f"generation {generation_id} already has a hold")
    result = await _HOLD.run(session, {"b_user": user_id, "b_amount": amount, "b_now": utcnow()})
    if result.rowcount != 1:
        available = (await session.execute(select(Balance.available).where(Balance.user_id == user_id))).scalar_one()
        raise InsufficientCredits(required=amount, available=int(available))


_SETTLE = {
    # capture: held -> captured; release: held -> available
    capture: Prepared(
        update(_BALANCES)
        .where(_BALANCES.c.user_id == bindparam("b_user"))
        .values(
            {
                _BALANCES.c.held: _BALANCES.c.held - bindparam("b_amount"),
                (_BALANCES.c.captured if capture else _BALANCES.c.available): (
                    (_BALANCES.c.captured if capture else _BALANCES.c.available) + bindparam("b_amount")
                ),
                _BALANCES.c.updated_at: bindparam("b_now"),
            }
        )
    )
    for capture in (True, False)
}


async def settle(session: Executor, user_id: str, amount: int, *, generation_id: str, capture: bool) -> bool:
    """End a hold with exactly one capture or one release; a second settlement is a no-op."""
    kind = EntryKind.CAPTURE if capture else EntryKind.RELEASE
    if not await _insert_entry_once(
        session, user_id=user_id, kind=kind, amount=amount, reference=generation_id, generation_id=generation_id
    ):
        return False
    await _SETTLE[capture].run(session, {"b_user": user_id, "b_amount": amount, "b_now": utcnow()})
    return True


async def credits_of(session: AsyncSession, user_id: str) -> Credits:
    row = (await session.execute(select(Balance).where(Balance.user_id == user_id))).scalar_one()
    return Credits(available=row.available, held=row.held, captured=row.captured)


async def check_ledger(session: AsyncSession) -> list[InvariantViolation]:
    """Replays every account's entries against its balance row (`reelgate ledger check`)."""
    sums = await session.execute(
        select(LedgerEntry.user_id, LedgerEntry.kind, func.sum(LedgerEntry.amount)).group_by(
            LedgerEntry.user_id, LedgerEntry.kind
        )
    )
    per_user: dict[str, list[tuple[EntryKind, int]]] = {}
    for user_id, kind, total in sums:
        per_user.setdefault(user_id, []).append((EntryKind(kind), int(total)))
    problems: list[InvariantViolation] = []
    for balance in (await session.execute(select(Balance))).scalars():
        snapshot = BalanceSnapshot(balance.available, balance.held, balance.captured)
        problems.extend(check_account(balance.user_id, per_user.pop(balance.user_id, []), snapshot))
    for orphan in per_user:
        problems.append(InvariantViolation(orphan, "ledger entries without a balance row"))
    problems.extend(await _holds_without_settlement_on_terminal(session))
    return problems


async def _holds_without_settlement_on_terminal(session: AsyncSession) -> list[InvariantViolation]:
    """No hold outlives its generation: every terminal generation has exactly one settlement."""
    from reelgate.db.tables import Generation  # local: keeps this module's top focused on balances
    from reelgate.domain.jobs import TERMINAL_STATES

    settled = select(LedgerEntry.reference).where(LedgerEntry.kind.in_(["capture", "release"]))
    rows = await session.execute(
        select(Generation.id, Generation.user_id).where(
            Generation.status.in_([s.value for s in TERMINAL_STATES]),
            Generation.credits_held > 0,
            Generation.id.not_in(settled),
        )
    )
    return [InvariantViolation(user_id, f"terminal generation {gid} still holds credits") for gid, user_id in rows]
