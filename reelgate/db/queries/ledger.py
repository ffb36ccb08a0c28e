"""Credit movements: each writes its append-only ledger entry and the balance row together, in the caller's
transaction. An entry is unique per (kind, reference), and a generation has at most one settlement (capture or
release), so a retried operation inserts nothing and moves nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from reelgate.db.codec import utc_now
from reelgate.db.records import Balance, LedgerEntry
from reelgate.db.sql import Tx, columns, in_states, query
from reelgate.domain.errors import InFlightLimitReached, InsufficientCredits
from reelgate.domain.jobs import ACTIVE_STATES, TERMINAL_STATES
from reelgate.domain.ledger import EntryKind

# No conflict target: either unique index (kind+reference, or the one-settlement index) makes it a no-op.
_INSERT_ENTRY_ONCE = query(
    """
    INSERT INTO ledger_entries (user_id, kind, amount, reference, generation_id, note, created_at)
    VALUES (:user_id, :kind, :amount, :reference, :generation_id, :note, :now)
    ON CONFLICT DO NOTHING RETURNING id
    """
)
_OPEN_ACCOUNT = query(
    "INSERT INTO balances (user_id, available, held, captured, updated_at) VALUES (:user_id, 0, 0, 0, :now)"
)
_ADD_AVAILABLE = query(
    "UPDATE balances SET available = available + :amount, updated_at = :now WHERE user_id = :user_id"
)
# The hold and the in-flight cap in one conditional UPDATE: on PostgreSQL it takes the account's row lock,
# and a submit runs it last, so the lock is held only until the COMMIT that follows.
_HOLD = query(
    """
    UPDATE balances SET available = available - :amount, held = held + :amount, in_flight = in_flight + 1,
        updated_at = :now
    WHERE user_id = :user_id AND available >= :amount AND in_flight < :max_in_flight
    """
)
_WHY_NOT_HELD = query("SELECT available, in_flight FROM balances WHERE user_id = :user_id")
# PostgreSQL runs the entry and the balance change as one statement (a data-modifying WITH): every statement
# is a network round trip and most of a transaction's cost there. SQLite has no such statement; it runs the
# two in turn (each costs microseconds in process).
_ENTRY_CTE = (
    "WITH entry AS (INSERT INTO ledger_entries (user_id, kind, amount, reference, generation_id, note, created_at) "
    "VALUES (:user_id, :kind, :amount, :reference, :generation_id, '', :now) ON CONFLICT DO NOTHING RETURNING id)"
)
_HOLD_AS_ONE = query(
    f"""
    {_ENTRY_CTE}, held AS (
        UPDATE balances SET available = available - :amount, held = held + :amount, in_flight = in_flight + 1,
            updated_at = :now
        WHERE user_id = :user_id AND available >= :amount AND in_flight < :max_in_flight
            AND EXISTS (SELECT 1 FROM entry)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM entry), (SELECT count(*) FROM held)
    """
)
# A job's end: its hold captured or released, and one fewer in flight (never below zero).
_ONE_FEWER = "in_flight = CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END"
_CAPTURE = query(
    f"UPDATE balances SET held = held - :amount, captured = captured + :amount, {_ONE_FEWER}, updated_at = :now "
    "WHERE user_id = :user_id"
)
_RELEASE = query(
    f"UPDATE balances SET held = held - :amount, available = available + :amount, {_ONE_FEWER}, "
    "updated_at = :now WHERE user_id = :user_id"
)
# A hold settled in part: the charge captured and the rest released by one update, with one fewer in flight.
_CAPTURE_PART = query(
    f"UPDATE balances SET held = held - :held, captured = captured + :charged, "
    f"available = available + :released, {_ONE_FEWER}, updated_at = :now WHERE user_id = :user_id"
)
_JOB_ENDED = query(f"UPDATE balances SET {_ONE_FEWER}, updated_at = :now WHERE user_id = :user_id")
_MOVED = "CASE WHEN EXISTS (SELECT 1 FROM entry) THEN :amount ELSE 0 END"
_SETTLE_AS_ONE = {
    capture: query(
        f"{_ENTRY_CTE} UPDATE balances SET held = held - {_MOVED}, "
        f"{'captured = captured' if capture else 'available = available'} + {_MOVED}, {_ONE_FEWER}, "
        "updated_at = :now WHERE user_id = :user_id RETURNING (SELECT count(*) FROM entry)"
    )
    for capture in (True, False)
}
_IN_FLIGHT_MISMATCHES = query(
    f"""
    SELECT b.user_id, b.in_flight, (
        SELECT count(*) FROM generations g
        WHERE g.account_id = b.user_id AND g.status IN {in_states(ACTIVE_STATES)}
    ) AS active
    FROM balances b
    """
)
_BALANCE = query(f"SELECT {columns(Balance)} FROM balances WHERE user_id = :user_id", row=Balance)
_AVAILABLE_LOCKED = query("SELECT available FROM balances WHERE user_id = :user_id FOR UPDATE")
_ALL_BALANCES = query(f"SELECT {columns(Balance)} FROM balances", row=Balance)
_SUMS_PER_ACCOUNT_AND_KIND = query("SELECT user_id, kind, SUM(amount) FROM ledger_entries GROUP BY user_id, kind")
_UNSETTLED_TERMINAL = query(
    f"""
    SELECT g.id, g.account_id FROM generations g
    WHERE g.status IN {in_states(TERMINAL_STATES)} AND g.credits_held > 0
      AND NOT EXISTS (
        SELECT 1 FROM ledger_entries e WHERE e.reference = g.id AND e.kind IN ('capture', 'release')
      )
    """
)
_ENTRIES_OF = query(
    f"SELECT {columns(LedgerEntry)} FROM ledger_entries WHERE user_id = :user_id ORDER BY id DESC LIMIT :limit",
    row=LedgerEntry,
)


def insert_entry_once(
    tx: Tx,
    *,
    user_id: str,
    kind: EntryKind,
    amount: int,
    reference: str,
    generation_id: str | None = None,
    note: str = "",
) -> bool:
    """True if the entry went in; False if (kind, reference) or the generation's settlement already exists."""
    values = {
        "user_id": user_id,
        "kind": kind.value,
        "amount": amount,
        "reference": reference,
        "generation_id": generation_id,
        "note": note,
        "now": utc_now(),
    }
    return tx.run(_INSERT_ENTRY_ONCE, values) == 1


def open_account(tx: Tx, user_id: str) -> None:
    tx.run(_OPEN_ACCOUNT, {"user_id": user_id, "now": utc_now()})


def credit_account(tx: Tx, user_id: str, amount: int, *, kind: EntryKind, reference: str, note: str = "") -> bool:
    """Adds credits (grant, purchase, or a positive adjust). Idempotent per (kind, reference)."""
    if amount <= 0:
        raise ValueError("credit amount must be positive")
    if not insert_entry_once(tx, user_id=user_id, kind=kind, amount=amount, reference=reference, note=note):
        return False
    tx.run(_ADD_AVAILABLE, {"user_id": user_id, "amount": amount, "now": utc_now()})
    return True


def debit_available(tx: Tx, user_id: str, amount: int, *, kind: EntryKind, reference: str, note: str = "") -> int:
    """Takes up to `amount` from available (a negative adjust, or expiry), never below zero; returns what was
    taken. The balance row is locked first (PostgreSQL), so the amount read is the amount taken."""
    taken = min(amount, available_locked(tx, user_id))
    if taken <= 0:
        return 0
    signed = -taken if kind is EntryKind.ADJUST else taken
    if not insert_entry_once(tx, user_id=user_id, kind=kind, amount=signed, reference=reference, note=note):
        return 0
    tx.run(_ADD_AVAILABLE, {"user_id": user_id, "amount": -taken, "now": utc_now()})
    return taken


def available_locked(tx: Tx, user_id: str) -> int:
    """The account's available credits, its balance row locked for the rest of the transaction (PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serializes writers)."""
    return int(tx.scalar(_AVAILABLE_LOCKED, {"user_id": user_id}) or 0)


NO_IN_FLIGHT_CAP = 2**31 - 1


def hold_credits(
    tx: Tx, user_id: str, amount: int, *, generation_id: str, max_in_flight: int = NO_IN_FLIGHT_CAP
) -> None:
    """Moves credits from available to held for a new job, and counts it in flight, with one conditional update
    that can neither overdraw nor pass the in-flight cap (`max_in_flight` unfinished jobs).

    The entry goes in first, so a repeated hold is refused before any balance moves; if the user cannot afford
    it or has too many jobs running, the raised error rolls the entry back with the transaction."""
    if tx.dialect == "postgresql":
        params = {
            "user_id": user_id,
            "amount": amount,
            "max_in_flight": max_in_flight,
            "now": utc_now(),
            "kind": EntryKind.HOLD.value,
            "reference": generation_id,
            "generation_id": generation_id,
        }
        entered, held = tx.one(_HOLD_AS_ONE, params)
        if not entered:
            raise RuntimeError(f"generation {generation_id} already has a hold")
    else:
        held = hold_in_steps(tx, user_id, amount, generation_id, max_in_flight)
    if not held:
        refuse_hold(tx, user_id, amount, max_in_flight)


def hold_in_steps(tx: Tx, user_id: str, amount: int, generation_id: str, max_in_flight: int) -> bool:
    """The hold as two statements (SQLite): the entry, then the conditional update; False when refused."""
    entered = insert_entry_once(
        tx, user_id=user_id, kind=EntryKind.HOLD, amount=amount, reference=generation_id, generation_id=generation_id
    )
    if not entered:
        raise RuntimeError(f"generation {generation_id} already has a hold")
    params = {"user_id": user_id, "amount": amount, "max_in_flight": max_in_flight, "now": utc_now()}
    return tx.run(_HOLD, params) == 1


def refuse_hold(tx: Tx, user_id: str, amount: int, max_in_flight: int) -> NoReturn:
    """Raises why a hold was refused: not enough credits (402), or too many jobs in flight (429)."""
    found = tx.one(_WHY_NOT_HELD, {"user_id": user_id})
    available, running = (int(found[0]), int(found[1])) if found is not None else (0, 0)
    if available < amount:
        raise InsufficientCredits(required=amount, available=available)
    raise InFlightLimitReached(running=running, limit=max_in_flight)


def settle_hold(tx: Tx, user_id: str, amount: int, *, generation_id: str, capture: bool) -> bool:
    """A job's end: its hold ends with exactly one capture (success) or one release, and the account has one
    job fewer in flight. Called once per generation, by its terminal transition; a second settlement of the
    same hold moves no credits (False)."""
    now = utc_now()
    kind = EntryKind.CAPTURE if capture else EntryKind.RELEASE
    if amount > 0 and tx.dialect == "postgresql":
        params = {"user_id": user_id, "kind": kind.value, "amount": amount, "reference": generation_id}
        return bool(tx.scalar(_SETTLE_AS_ONE[capture], {**params, "generation_id": generation_id, "now": now}))
    if amount > 0 and insert_entry_once(
        tx, user_id=user_id, kind=kind, amount=amount, reference=generation_id, generation_id=generation_id
    ):
        tx.run(_CAPTURE if capture else _RELEASE, {"user_id": user_id, "amount": amount, "now": now})
        return True
    tx.run(_JOB_ENDED, {"user_id": user_id, "now": now})
    return False


def remainder_reference(generation_id: str) -> str:
    """The release of what a partial capture left over is referenced apart from the settlement (the capture),
    which the one-settlement index keeps unique per generation."""
    return f"{generation_id}:rest"


def settle_hold_in_part(tx: Tx, user_id: str, held: int, charged: int, *, generation_id: str) -> bool:
    """A successful job that costs less than its hold (a per-token text job): `charged` is captured and the
    rest released, both entries and the balance change in this transaction. The capture is the generation's
    settlement, so a second settlement still moves nothing (False)."""
    charged = max(0, min(charged, held))
    if charged == held or charged == 0:
        return settle_hold(tx, user_id, held, generation_id=generation_id, capture=charged > 0)
    now = utc_now()
    captured = insert_entry_once(
        tx,
        user_id=user_id,
        kind=EntryKind.CAPTURE,
        amount=charged,
        reference=generation_id,
        generation_id=generation_id,
    )
    if not captured:
        tx.run(_JOB_ENDED, {"user_id": user_id, "now": now})
        return False
    insert_entry_once(
        tx,
        user_id=user_id,
        kind=EntryKind.RELEASE,
        amount=held - charged,
        reference=remainder_reference(generation_id),
        generation_id=generation_id,
        note="the part of the hold the job did not use",
    )
    params = {"user_id": user_id, "held": held, "charged": charged, "released": held - charged, "now": now}
    tx.run(_CAPTURE_PART, params)
    return True


def in_flight_mismatches(tx: Tx) -> list[tuple[str, int, int]]:
    """(account, counted in flight, unfinished generations) where the counter has drifted from the rows."""
    return [(u, int(n), int(a)) for u, n, a in tx.all(_IN_FLIGHT_MISMATCHES) if int(n) != int(a)]


def balance_of(tx: Tx, user_id: str) -> Balance | None:
    balance: Balance | None = tx.one(_BALANCE, {"user_id": user_id})
    return balance


def all_balances(tx: Tx) -> list[Balance]:
    return tx.all(_ALL_BALANCES)


def sums_per_account_and_kind(tx: Tx) -> list[tuple[str, str, int]]:
    return [(user_id, kind, int(total)) for user_id, kind, total in tx.all(_SUMS_PER_ACCOUNT_AND_KIND)]


def unsettled_terminal_generations(tx: Tx) -> list[tuple[str, str]]:
    """(generation id, user id) of terminal generations whose hold was never captured or released."""
    return [(gid, uid) for gid, uid in tx.all(_UNSETTLED_TERMINAL)]


def entries_of(tx: Tx, user_id: str, *, limit: int) -> list[LedgerEntry]:
    return tx.all(_ENTRIES_OF, {"user_id": user_id, "limit": limit})


_ACCOUNTS_WITH_AVAILABLE = query("SELECT user_id FROM balances WHERE available > 0")
# Kinds that bring credits in; each entry is a "lot" that ages from its own date.
_DEPOSITED_SINCE = query(
    "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE user_id = :user_id "
    "AND kind IN ('grant', 'purchase', 'adjust') AND amount > 0 AND created_at >= :since"
)


def accounts_with_available(tx: Tx) -> list[str]:
    return [str(row[0]) for row in tx.all(_ACCOUNTS_WITH_AVAILABLE)]


def deposited_since(tx: Tx, user_id: str, since: datetime) -> int:
    """Credits that came in (grants, purchases, positive adjustments) since `since`."""
    return int(tx.scalar(_DEPOSITED_SINCE, {"user_id": user_id, "since": since}))


def ledger_page(
    tx: Tx,
    user_id: str,
    *,
    kinds: tuple[str, ...],
    generation_id: str | None,
    reference_prefix: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[LedgerEntry]:
    """An account's entries, newest first, filtered; `before_id` is keyset pagination (ids only grow)."""
    conditions = ["user_id = :user_id"]
    params: dict[str, Any] = {"user_id": user_id, "limit": limit}
    if kinds:
        conditions.append("kind = ANY(:kinds)")
        params["kinds"] = list(kinds)
    for clause, name, value in (
        ("generation_id = :generation_id", "generation_id", generation_id),
        ("created_at >= :since", "since", since),
        ("created_at < :until", "until", until),
        ("id < :before_id", "before_id", before_id),
    ):
        if value is not None and value != "":
            conditions.append(clause)
            params[name] = value
    if reference_prefix:
        conditions.append("substr(reference, 1, :prefix_length) = :prefix")
        params.update(prefix=reference_prefix, prefix_length=len(reference_prefix))
    where = " AND ".join(conditions)
    sql = f"SELECT {columns(LedgerEntry)} FROM ledger_entries WHERE {where} ORDER BY id DESC LIMIT :limit"
    return tx.all(query(sql, row=LedgerEntry), params)
