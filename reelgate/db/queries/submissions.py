"""A new generation's whole write: its idempotency key, its row in its project, its hold (credits held, one more
job in flight), and what the checks after it need: the budget of the project it went into and the owner's storage
quota override. On PostgreSQL one statement (a data-modifying WITH: every statement is a network round trip
there); on SQLite the same steps in turn, in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from reelgate.db.queries import budgets, generations, idempotency, ledger, library
from reelgate.db.records import Generation
from reelgate.db.sql import Query, Tx, query
from reelgate.domain.ledger import EntryKind


@dataclass(frozen=True)
class Submitted:
    """What the write did. Only `held` means the submission is complete; otherwise the caller decides (and a
    raised error rolls back whatever was written)."""

    key_taken: bool  # the idempotency key was used before: nothing was written
    project_id: str | None  # where the row went; None: the user has no such project, so nothing was held
    held: bool  # credits held and the job counted in flight
    budget: int | None = None  # the project's budget in credits, read with the insert (None: it has none)
    # The owner's own storage quota in MB (None: the operator's default applies); read here so that the storage
    # check costs no round trip of its own on PostgreSQL.
    quota_override_mb: int | None = None


@cache
def _as_one(with_key: bool, into_project: bool) -> Query:
    key = (
        "k AS (INSERT INTO idempotency_keys (user_id, key, scope, request_hash, generation_id, created_at) "
        "VALUES (:owner, :key, 'generations', :request_hash, :key_generation, :created_at) "
        "ON CONFLICT DO NOTHING RETURNING 1), "
        if with_key
        else ""
    )
    project = generations.INTO_PROJECT if into_project else generations.INTO_FIRST_PROJECT
    also = "EXISTS (SELECT 1 FROM k)" if with_key else ""
    return query(
        f"""
        WITH {key}g AS ({generations.submission_insert_sql(project, also=also)} RETURNING id, project_id),
        e AS (
            INSERT INTO ledger_entries (user_id, kind, amount, reference, generation_id, note, created_at)
            SELECT :paying, '{EntryKind.HOLD.value}', :hold, g.id, g.id, '', :created_at FROM g
            ON CONFLICT DO NOTHING RETURNING id
        ),
        h AS (
            UPDATE balances SET available = available - :hold, held = held + :hold, in_flight = in_flight + 1,
                updated_at = :created_at
            WHERE user_id = :paying AND available >= :hold AND in_flight < :max_in_flight
                AND EXISTS (SELECT 1 FROM e)
            RETURNING 1
        )
        SELECT {"(SELECT count(*) FROM k)" if with_key else "1"}, (SELECT project_id FROM g), (SELECT count(*) FROM h),
            (SELECT budget_credits FROM projects WHERE id = (SELECT project_id FROM g)),
            (SELECT quota_mb FROM storage_quotas WHERE user_id = :owner)
        """
    )


def submit_generation(
    tx: Tx,
    generation: Generation,
    *,
    key: str | None,
    request_hash: str,
    project_id: str | None,
    max_in_flight: int,
) -> Submitted:
    """Records `key` (when given) for this generation, inserts the generation into `project_id` (or the user's
    first project), and holds its `credits_held`, refusing past `max_in_flight` unfinished jobs."""
    if tx.dialect != "postgresql":
        return _in_steps(tx, generation, key, request_hash, project_id, max_in_flight)
    params = generations.submission_params(generation)
    # The hold moves the paying account (the owner's own, or an organization's wallet); `:owner` is the owner.
    params.update(hold=generation.credits_held, max_in_flight=max_in_flight, project_id=project_id)
    if key is not None:
        params.update(key=key, request_hash=request_hash, key_generation=generation.id)
    fresh_key, placed, held, budget, quota = tx.one(_as_one(key is not None, project_id is not None), params)
    return Submitted(
        key_taken=not fresh_key,
        project_id=placed,
        held=bool(held),
        budget=None if budget is None else int(budget),
        quota_override_mb=None if quota is None else int(quota),
    )


def _in_steps(
    tx: Tx, generation: Generation, key: str | None, request_hash: str, project_id: str | None, max_in_flight: int
) -> Submitted:
    quota = library.quota_override(tx, generation.user_id)
    if key is not None and not idempotency.insert_key(
        tx, generation.user_id, key, request_hash, generation.id, generation.created_at
    ):
        return Submitted(key_taken=True, project_id=None, held=False, quota_override_mb=quota)
    placed = generations.insert_submission(tx, generation, project_id)
    if placed is None:
        return Submitted(key_taken=False, project_id=None, held=False, quota_override_mb=quota)
    held = ledger.hold_in_steps(tx, generation.account_id, generation.credits_held, generation.id, max_in_flight)
    budget = budgets.budget_of(tx, placed) if held else None
    return Submitted(key_taken=False, project_id=placed, held=held, budget=budget, quota_override_mb=quota)
