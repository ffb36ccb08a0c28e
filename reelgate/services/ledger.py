"""Balances and the ledger check. The credit movements themselves are named queries (db/queries/ledger.py), run
inside the transaction of the use case that moves the credits."""

from __future__ import annotations

from dataclasses import dataclass

from reelgate.db.queries import ledger as ledger_queries
from reelgate.db.sql import Tx
from reelgate.domain.ledger import BalanceSnapshot, EntryKind, InvariantViolation, check_account
from reelgate.services.context import ServiceContext


@dataclass(frozen=True)
class Credits:
    available: int
    held: int
    captured: int


def credits_in(tx: Tx, user_id: str) -> Credits:
    """The balance as this transaction sees it (an account always has a balance row)."""
    balance = ledger_queries.balance_of(tx, user_id)
    if balance is None:
        return Credits(0, 0, 0)
    return Credits(available=balance.available, held=balance.held, captured=balance.captured)


async def credits_of(ctx: ServiceContext, user_id: str) -> Credits:
    return await ctx.db.read(lambda tx: credits_in(tx, user_id))


def _check(tx: Tx) -> list[InvariantViolation]:
    per_user: dict[str, list[tuple[EntryKind, int]]] = {}
    for user_id, kind, total in ledger_queries.sums_per_account_and_kind(tx):
        per_user.setdefault(user_id, []).append((EntryKind(kind), total))
    problems: list[InvariantViolation] = []
    for balance in ledger_queries.all_balances(tx):
        snapshot = BalanceSnapshot(balance.available, balance.held, balance.captured)
        problems.extend(check_account(balance.user_id, per_user.pop(balance.user_id, []), snapshot))
    for orphan in per_user:
        problems.append(InvariantViolation(orphan, "ledger entries without a balance row"))
    # No hold outlives its generation: every terminal generation has exactly one settlement.
    for generation_id, user_id in ledger_queries.unsettled_terminal_generations(tx):
        problems.append(InvariantViolation(user_id, f"terminal generation {generation_id} still holds credits"))
    # The in-flight counter the cap relies on agrees with the generations themselves.
    for user_id, counted, active in ledger_queries.in_flight_mismatches(tx):
        problems.append(InvariantViolation(user_id, f"in-flight counter says {counted}, {active} generations run"))
    return problems


async def check_ledger(ctx: ServiceContext) -> list[InvariantViolation]:
    """Replays every account's entries against its balance row (`reelgate ledger check`), in one snapshot so a
    live database is never seen half-committed."""
    return await ctx.db.read(_check, snapshot=True)
