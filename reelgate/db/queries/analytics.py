"""The operator's numbers: read straight from the ledger, the generations and the payments."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reelgate.db.codec import decode_row
from reelgate.db.records import Generation, LedgerEntry, Payment
from reelgate.db.sql import Query, Tx, columns, query

# Of a generation `g`: the model that served it (a fallback, or the model asked for), and whether its provider cost
# was recorded when it succeeded (0 is what a job from before costs were recorded carries).
SERVED_BY = "COALESCE(NULLIF(g.served_model, ''), g.model)"
COST_RECORDED = "CASE WHEN g.provider_cost_micros <> 0 THEN 1 ELSE 0 END"
# Captures summed per day, model, serving model, provider and user, apart for jobs whose provider cost was recorded:
# a large business's window holds far more jobs than groups, and the database sums them where they are.
_CAPTURE_GROUPS_SQL = f"""
SELECT {{day}} AS day, g.model, {SERVED_BY} AS served, g.provider, g.user_id, {COST_RECORDED} AS recorded,
       count(*), SUM(e.amount), SUM(g.provider_cost_micros)
FROM ledger_entries e JOIN generations g ON g.id = e.generation_id
WHERE e.kind = 'capture' AND e.created_at >= :start AND e.created_at < :end
GROUP BY 1, 2, 3, 4, 5, 6
"""
_CAPTURE_GROUPS = query(
    _CAPTURE_GROUPS_SQL.format(day="to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
    sqlite=_CAPTURE_GROUPS_SQL.format(day="substr(e.created_at, 1, 10)"),  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC
)
_NEWEST_CAPTURES = query(
    f"SELECT {columns(LedgerEntry, 'e')}, {columns(Generation, 'g')} FROM ledger_entries e "
    "JOIN generations g ON g.id = e.generation_id "
    "WHERE e.kind = 'capture' AND e.created_at >= :start AND e.created_at < :end ORDER BY e.id DESC LIMIT :limit"
)
_UNRECORDED_COST_CAPTURES = query(
    f"SELECT {columns(LedgerEntry, 'e')}, {columns(Generation, 'g')} FROM ledger_entries e "
    "JOIN generations g ON g.id = e.generation_id "
    "WHERE e.kind = 'capture' AND e.created_at >= :start AND e.created_at < :end AND g.provider_cost_micros = 0 "
    f"AND {SERVED_BY} = ANY(:models) ORDER BY e.id DESC"
)
# Per model and status; for the successes, how many have an end and their durations' sum in microseconds.
_OUTCOMES_SQL = """
SELECT model, status, count(*), SUM(CASE WHEN status = 'succeeded' AND completed_at IS NOT NULL THEN 1 ELSE 0 END),
       SUM(CASE WHEN status = 'succeeded' AND completed_at IS NOT NULL THEN {micros} ELSE 0 END)
FROM generations WHERE created_at >= :start AND created_at < :end GROUP BY model, status
"""
_OUTCOMES_PER_MODEL = query(
    _OUTCOMES_SQL.format(micros="CAST(round(extract(epoch FROM completed_at - created_at) * 1000000) AS BIGINT)"),
    sqlite=_OUTCOMES_SQL.format(
        micros="(CAST(strftime('%s', completed_at) AS INTEGER) - CAST(strftime('%s', created_at) AS INTEGER)) "
        "* 1000000 + CAST(substr(completed_at, 21) AS INTEGER) - CAST(substr(created_at, 21) AS INTEGER)"
    ),
)
_RELEASES = query(
    "SELECT count(*), COALESCE(SUM(amount), 0) FROM ledger_entries "
    "WHERE kind = 'release' AND created_at >= :start AND created_at < :end"
)
_EMAILS_OF = query("SELECT id, email FROM users WHERE id = ANY(:ids)")
_PAID = query(f"SELECT {columns(Payment)} FROM payments WHERE paid_at >= :start AND paid_at < :end", row=Payment)
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
_SUMS_PER_KIND = query("SELECT kind, SUM(amount) FROM ledger_entries GROUP BY kind")
_COUNT_PER_STATUS = query("SELECT status, count(*) FROM generations GROUP BY status")
_COUNT_PER_STATUS_AND_MODEL = query("SELECT status, model, count(*) FROM generations GROUP BY status, model")
_TOTAL_HELD = query("SELECT COALESCE(SUM(held), 0) FROM balances")


def _captures(tx: Tx, captures: Query, params: dict[str, Any]) -> list[tuple[LedgerEntry, Generation]]:
    width = len(LedgerEntry.__dataclass_fields__)
    return [
        (decode_row(LedgerEntry, tx.dialect, row[:width]), decode_row(Generation, tx.dialect, row[width:]))
        for row in tx.all(captures, params)
    ]


@dataclass(frozen=True)
class ChargedGroup:
    """Captures of one day, model, serving model, provider and user, with or without a recorded provider cost."""

    day: str  # YYYY-MM-DD, UTC
    model: str
    served_model: str  # the fallback that served the jobs, or the model itself
    provider: str
    user_id: str
    cost_recorded: bool
    jobs: int
    credits: int
    provider_cost_micros: int  # the recorded costs' sum; 0 in a group without them


@dataclass(frozen=True)
class Outcomes:
    """Generations of one model and status created in a window."""

    model: str
    status: str
    jobs: int
    timed: int  # successes with an end time
    timed_micros: int  # their durations' sum


def charged_groups_between(tx: Tx, start: datetime, end: datetime) -> list[ChargedGroup]:
    return [
        ChargedGroup(day, model, served, provider, user_id, bool(recorded), int(jobs), int(credits), int(cost or 0))
        for day, model, served, provider, user_id, recorded, jobs, credits, cost in tx.all(
            _CAPTURE_GROUPS, {"start": start, "end": end}
        )
    ]


def newest_captures_between(tx: Tx, start: datetime, end: datetime, limit: int) -> list[tuple[LedgerEntry, Generation]]:
    return _captures(tx, _NEWEST_CAPTURES, {"start": start, "end": end, "limit": limit})


def captures_without_recorded_cost(
    tx: Tx, start: datetime, end: datetime, models: Collection[str]
) -> list[tuple[LedgerEntry, Generation]]:
    """The captures in [start, end) whose job recorded no provider cost and was served by one of `models`."""
    if not models:
        return []
    return _captures(tx, _UNRECORDED_COST_CAPTURES, {"start": start, "end": end, "models": sorted(models)})


def outcomes_per_model_between(tx: Tx, start: datetime, end: datetime) -> list[Outcomes]:
    return [
        Outcomes(model, status, int(jobs), int(timed or 0), int(micros or 0))
        for model, status, jobs, timed, micros in tx.all(_OUTCOMES_PER_MODEL, {"start": start, "end": end})
    ]


def releases_between(tx: Tx, start: datetime, end: datetime) -> tuple[int, int]:
    """How many holds were released in [start, end), and the credits they gave back."""
    count, credits = tx.one(_RELEASES, {"start": start, "end": end})
    return int(count), int(credits)


def emails_of(tx: Tx, user_ids: Collection[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    return {user_id: email for user_id, email in tx.all(_EMAILS_OF, {"ids": sorted(user_ids)})}


def payments_paid_between(tx: Tx, start: datetime, end: datetime) -> list[Payment]:
    return tx.all(_PAID, {"start": start, "end": end})


def payment_reversals_between(tx: Tx, start: datetime, end: datetime) -> list[tuple[str, int]]:
    return [(reference, int(amount)) for reference, amount in tx.all(_REVERSALS, {"start": start, "end": end})]


def payments_reversed_between(tx: Tx, start: datetime, end: datetime) -> list[Payment]:
    return tx.all(_REVERSED_PAYMENTS, {"start": start, "end": end})


def ledger_sums_per_kind(tx: Tx) -> dict[str, int]:
    return {kind: int(total or 0) for kind, total in tx.all(_SUMS_PER_KIND)}


def generations_per_status(tx: Tx) -> dict[str, int]:
    return {status: int(count) for status, count in tx.all(_COUNT_PER_STATUS)}


def generations_per_status_and_model(tx: Tx) -> list[tuple[str, str, int]]:
    return [(status, model, int(count)) for status, model, count in tx.all(_COUNT_PER_STATUS_AND_MODEL)]


def total_held(tx: Tx) -> int:
    return int(tx.scalar(_TOTAL_HELD))
