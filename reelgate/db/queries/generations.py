"""Generations: the row that is the source of truth of a job, its status changes and their event rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from functools import lru_cache
from typing import Any

from reelgate.db.codec import moment
from reelgate.db.records import Generation
from reelgate.db.sql import Query, Tx, columns, in_states, insert_query, query, values_of
from reelgate.domain.jobs import ACTIVE_STATES, GenerationStatus

_COLUMNS = columns(Generation)
_FIELDS = frozenset(field.name for field in fields(Generation))
_ACTIVE = in_states(ACTIVE_STATES)
_S = GenerationStatus

_INSERT = insert_query(Generation)

# What a new submission's row holds beyond what the request decides: written into the submit's INSERT as
# constants (fewer parameters to send on the hottest statement), and used by services to build the record.
FRESH: dict[str, Any] = {
    "status": GenerationStatus.QUEUED.value,
    "progress": 0,
    "credits_charged": 0,
    "credits_refunded": 0,
    "provider_cost_micros": 0,
    "provider_job_id": None,
    "error_code": None,
    "error_message": None,
    "needs_review": False,
    "output_key": None,
    "output_content_type": None,
    "output_size": None,
    "output_sha256": None,
    "output_meta": {},
    "thumbnail_key": None,
    "submit_attempts": 0,
    "poll_count": 0,
    "transient_errors": 0,
    "next_poll_at": None,
    "lease_owner": None,
    "lease_until": None,
    "raw_provider": {},
    "submitted_at": None,
    "completed_at": None,
    "served_model": None,
    "provider_account": None,
    "enhanced_prompt": None,
    "favorite": False,
    "deleted_at": None,
    "media_removed_at": None,
}


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if value == {}:
        return "'{}'"
    if isinstance(value, str) and value.isidentifier():
        return f"'{value}'"
    raise ValueError(f"no literal for {value!r}")


def submission_insert_sql(project_condition: str, *, also: str = "") -> str:
    """INSERT ... SELECT from the project the generation goes into: no row when the user has no such project, so
    one statement both checks the project and inserts (`also`: a further condition, e.g. on a WITH).

    The project is the owner's own, or an organization's when the organization's wallet pays (`:paying`, the
    account id, is the organization's id then; the submit checked the membership in its transaction). So a
    generation is filed into a team's project only on the team's money, and counts against that project's budget."""
    names = [f.name for f in fields(Generation)]
    values = [_literal(FRESH[n]) if n in FRESH else ("p.id" if n == "project_id" else f":{n}") for n in names]
    return (
        f"INSERT INTO generations ({', '.join(names)}) SELECT {', '.join(values)} FROM projects p "
        "WHERE (p.organization_id IS NULL AND p.user_id = :owner OR p.organization_id = :paying) "
        f"AND {project_condition}{f' AND {also}' if also else ''}"
    )


INTO_PROJECT = "p.id = :project_id"
INTO_FIRST_PROJECT = (
    "p.id = (SELECT id FROM projects WHERE user_id = :owner AND organization_id IS NULL ORDER BY created_at LIMIT 1)"
)
# The parameters a submission sends: every column but those in FRESH and the project (taken from the SELECT).
_SUBMITTED = tuple(f.name for f in fields(Generation) if f.name != "project_id" and f.name not in FRESH)
_INSERT_INTO_PROJECT = query(submission_insert_sql(INTO_PROJECT) + " RETURNING project_id")
_INSERT_INTO_FIRST_PROJECT = query(submission_insert_sql(INTO_FIRST_PROJECT) + " RETURNING project_id")
_BY_ID = query(f"SELECT {_COLUMNS} FROM generations WHERE id = :id", row=Generation, confined_by="id")
# A deleted generation (a tombstone) is gone for its owner: it reads as not found.
_OF_USER = query(
    f"SELECT {_COLUMNS} FROM generations WHERE id = :id AND user_id = :user_id AND deleted_at IS NULL", row=Generation
)
# Paid by the wallet of an organization the user owns or administers (the wallet's account id is the
# organization's id), read through the membership so a manager who stepped down or left no longer sees it.
_MANAGED_BY = query(
    f"SELECT {_COLUMNS} FROM generations WHERE id = :id AND deleted_at IS NULL AND account_id IN "
    "(SELECT organization_id FROM organization_members WHERE user_id = :user_id AND role IN ('owner', 'admin'))",
    row=Generation,
)
_INSERT_EVENT = query(
    "INSERT INTO generation_events (generation_id, from_status, to_status, detail, at) "
    "VALUES (:generation_id, :from_status, :to_status, :detail, :at)",
    confined_by="generation_id",
)
_PROGRESS = query(
    f"UPDATE generations SET progress = :progress, updated_at = :now WHERE id = :id AND status = '{_S.PROCESSING}'",
    confined_by="id",
)
_SUBMIT_ANSWERED = query(
    f"""
    UPDATE generations SET submitted_at = :now, next_poll_at = :next_poll_at
    WHERE id = :id AND status = '{_S.PROCESSING}' AND provider_job_id = :provider_job_id AND submitted_at IS NULL
    """,
    confined_by="id",
)
_OUTCOME_UNKNOWN = query(
    f"""
    UPDATE generations SET needs_review = :needs_review, error_message = :error_message,
        next_poll_at = :next_poll_at, updated_at = :now
    WHERE id = :id AND status = '{_S.SUBMITTING}'
    """
)
_NEEDS_REVIEW = query(
    f"""
    UPDATE generations SET needs_review = TRUE, next_poll_at = :next_poll_at, updated_at = :now
    WHERE id = :id AND status = '{_S.SUBMITTING}'
    """
)
_POLLED = query(
    f"""
    UPDATE generations SET poll_count = poll_count + 1, transient_errors = 0, next_poll_at = :next_poll_at
    WHERE id = :id AND status = '{_S.PROCESSING}'
    """
)
_TRANSIENT_ERROR = query(
    "UPDATE generations SET transient_errors = transient_errors + 1, next_poll_at = :next_poll_at WHERE id = :id"
)
_BIND_ROUTE = query(
    f"""
    UPDATE generations SET provider = :provider, provider_model = :provider_model, served_model = :served_model,
        provider_account = :provider_account, updated_at = :now
    WHERE id = :id AND status = '{_S.SUBMITTING}'
    RETURNING {_COLUMNS}
    """,
    row=Generation,
)
_ENHANCED_PROMPT = query(
    f"""
    UPDATE generations SET enhanced_prompt = :enhanced_prompt, updated_at = :now
    WHERE id = :id AND status = '{_S.SUBMITTING}'
    RETURNING {_COLUMNS}
    """,
    row=Generation,
)
_CLAIM = query(
    f"""
    UPDATE generations SET lease_owner = :owner, lease_until = :until
    WHERE id = :id AND status IN {_ACTIVE}
      AND (lease_until IS NULL OR lease_until < :now OR lease_owner = :owner)
    """
)
_CLAIM_MANY = query(
    f"""
    UPDATE generations SET lease_owner = :owner, lease_until = :until
    WHERE id = ANY(:ids) AND status IN {_ACTIVE}
      AND (lease_until IS NULL OR lease_until < :now OR lease_owner = :owner)
    RETURNING id
    """
)
# `:until`: NULL frees it now; a moment keeps every worker's scan and claim off it until then (a failing step's
# pause), since nobody owns the lease and it has not lapsed.
_RELEASE_CLAIM = query(
    "UPDATE generations SET lease_owner = NULL, lease_until = :until WHERE id = :id AND lease_owner = :owner"
)
_EXTEND_LEASES = query("UPDATE generations SET lease_until = :until WHERE lease_owner = :owner AND id = ANY(:ids)")
_DROP_LEASE = query("UPDATE generations SET lease_owner = NULL, lease_until = NULL WHERE id = :id")
_DROP_LEASES = query(
    f"UPDATE generations SET lease_owner = NULL, lease_until = NULL "
    f"WHERE status IN {_ACTIVE} AND lease_owner IS NOT NULL"
)
_PROJECT_COUNT = query("SELECT count(*) FROM generations WHERE project_id = :project_id")


def insert_generation(tx: Tx, generation: Generation) -> None:
    tx.run(_INSERT, values_of(generation))


def submission_params(generation: Generation) -> dict[str, Any]:
    # The owner and the paying account are parameters of their own: PostgreSQL deduces one type per parameter, and
    # the select list's (text) and the WHERE's (varchar) would disagree.
    params = {name: getattr(generation, name) for name in _SUBMITTED}
    params["owner"] = generation.user_id
    params["paying"] = generation.account_id
    return params


def insert_submission(tx: Tx, generation: Generation, project_id: str | None) -> str | None:
    """Inserts a new submission (its columns in FRESH as they are there) into `project_id`, or into the user's
    first project when None; returns the project it went into, or None when the user has no such project."""
    params = submission_params(generation)
    if project_id is None:
        found = tx.scalar(_INSERT_INTO_FIRST_PROJECT, params)
    else:
        found = tx.scalar(_INSERT_INTO_PROJECT, {**params, "project_id": project_id})
    return None if found is None else str(found)


def generation_managed_by(tx: Tx, user_id: str, generation_id: str) -> Generation | None:
    """Another member's generation, when an organization the user owns or administers paid for it."""
    generation: Generation | None = tx.one(_MANAGED_BY, {"id": generation_id, "user_id": user_id})
    return generation


def generation_by_id(tx: Tx, generation_id: str) -> Generation | None:
    generation: Generation | None = tx.one(_BY_ID, {"id": generation_id})
    return generation


_ACTIVE_RETRY_OF = query(
    f"SELECT {_COLUMNS} FROM generations WHERE retry_of = :retry_of AND user_id = :user_id AND status IN {_ACTIVE}",
    row=Generation,
)


def active_retry_of(tx: Tx, user_id: str, generation_id: str) -> Generation | None:
    """The unfinished retry of a generation, if one is running (a unique index allows one at a time)."""
    generation: Generation | None = tx.one(_ACTIVE_RETRY_OF, {"retry_of": generation_id, "user_id": user_id})
    return generation


# Serializes the provider's in-flight count, its request window and the submission they allow (PostgreSQL; SQLite has
# one writer).
_LOCK_PROVIDER = query("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))", sqlite="SELECT 1")
_AT_PROVIDER = query(
    "SELECT count(*) FROM generations WHERE provider = :provider AND status IN ('submitting', 'processing')"
)
_HOLD_BACK = query(
    "UPDATE generations SET next_poll_at = :until, updated_at = :now WHERE id = :id AND status = 'queued'"
)


def lock_provider(tx: Tx, provider: str) -> None:
    """Holds the provider's lock until the transaction ends: its in-flight count, its request window and the
    submission they allow cannot interleave with another worker's. Taking it twice in one transaction is harmless."""
    tx.scalar(_LOCK_PROVIDER, {"key": f"reelgate.provider-in-flight:{provider}"})


def provider_in_flight_locked(tx: Tx, provider: str) -> int:
    """Jobs submitted to `provider` and not finished there, counted under the provider's lock."""
    lock_provider(tx, provider)
    return int(tx.scalar(_AT_PROVIDER, {"provider": provider}))


def hold_back(tx: Tx, generation_id: str, *, until: datetime, now: datetime) -> None:
    """A queued job that may not go to its provider yet looks again at `until` (no attempt is counted)."""
    tx.run(_HOLD_BACK, {"id": generation_id, "until": until, "now": now})


# The literal status and the NOT NULL are ix_generations_model_succeeded's predicate: with either bound as a
# parameter, PostgreSQL's generic plan could not prove the partial index covers the query.
_RECENT_COMPLETIONS = query(
    "SELECT created_at, completed_at FROM generations WHERE model = :model AND status = 'succeeded'"
    " AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT :limit"
)


def recent_completion_seconds(tx: Tx, model: str, *, limit: int) -> list[float]:
    """Seconds from request to stored result of the model's latest successful jobs, newest first."""
    rows = tx.all(_RECENT_COMPLETIONS, {"model": model, "limit": limit})
    return [_seconds_between(tx.dialect, created, done) for created, done in rows]


def _seconds_between(dialect: str, start: Any, end: Any) -> float:
    started, ended = moment(dialect, start), moment(dialect, end)
    assert started is not None and ended is not None
    return (ended - started).total_seconds()


def generation_of_user(tx: Tx, user_id: str, generation_id: str) -> Generation | None:
    """Scoped to its owner: another user's id reads as no generation at all."""
    generation: Generation | None = tx.one(_OF_USER, {"id": generation_id, "user_id": user_id})
    return generation


def generations_of_user(
    tx: Tx,
    user_id: str,
    *,
    status: str | None = None,
    project_id: str | None = None,
    model: str | None = None,
    kind: str | None = None,
    before_id: str | None = None,
    favorite: bool | None = None,
    limit: int,
) -> list[Generation]:
    """Newest first; ids are time-ordered, so `before_id` is keyset pagination. Deleted generations are left out."""
    conditions = ["user_id = :user_id", "deleted_at IS NULL"]
    params: dict[str, Any] = {"user_id": user_id, "limit": limit}
    for column, value in (("status", status), ("project_id", project_id), ("model", model), ("kind", kind)):
        if value:
            conditions.append(f"{column} = :{column}")
            params[column] = value
    if favorite is not None:
        conditions.append("favorite = :favorite")
        params["favorite"] = favorite
    if before_id:
        conditions.append("id < :before_id")
        params["before_id"] = before_id
    sql = f"SELECT {_COLUMNS} FROM generations WHERE {' AND '.join(conditions)} ORDER BY id DESC LIMIT :limit"
    return tx.all(_cached(sql), params)


@lru_cache(maxsize=64)
def _cached(sql: str) -> Query:
    """A statement whose text depends on which optional filters were given: built once per combination."""
    return query(sql, row=Generation)


@lru_cache(maxsize=256)
def _compare_and_set(
    sources: tuple[str, ...], keys: tuple[str, ...], increments: tuple[str, ...], copies: tuple[tuple[str, str], ...]
) -> Query:
    """The status change as one UPDATE per shape (source states, columns set), with its event row: on PostgreSQL
    in the same statement (a data-modifying WITH; a statement is a round trip there), on SQLite right after."""
    assignments = (
        [f"{key} = :v_{key}" for key in keys]
        + [f"{key} = {key} + 1" for key in increments]
        + [f"{target} = {source}" for target, source in copies]
    )
    update = f"UPDATE generations SET {', '.join(assignments)} WHERE id = :id AND status IN {in_states(sources)}"
    return query(
        f"WITH changed AS ({update} RETURNING {_COLUMNS}), "
        "event AS (INSERT INTO generation_events (generation_id, from_status, to_status, detail, at) "
        "SELECT id, :e_from, :e_to, :e_detail, :e_at FROM changed) "
        f"SELECT {_COLUMNS} FROM changed",
        sqlite=f"{update} RETURNING {_COLUMNS}",
        row=Generation,
        confined_by="id",
    )


def change_status(
    tx: Tx,
    generation_id: str,
    sources: Iterable[GenerationStatus],
    values: Mapping[str, Any],
    *,
    event: Mapping[str, Any],
    increments: tuple[str, ...] = (),
    copies: Mapping[str, str] | None = None,
) -> Generation | None:
    """The compare-and-set of a status change: sets `values` (adds one to each of `increments`, and sets each
    `copies` target to its source column's value) only if the generation is in one of `sources`, and records
    `event` (from_status, to_status, detail, at); the row as it is now, or None when it was in another state."""
    keys = tuple(sorted(values))
    copied = tuple(sorted((copies or {}).items()))
    unknown = (set(keys) | set(increments) | {c for pair in copied for c in pair}) - _FIELDS
    if unknown:
        raise ValueError(f"not columns of generations: {sorted(unknown)}")
    statement = _compare_and_set(tuple(sorted(s.value for s in sources)), keys, tuple(sorted(increments)), copied)
    params = {f"v_{key}": values[key] for key in keys}
    params["id"] = generation_id
    event_params = {"e_from": event["from_status"], "e_to": event["to_status"], "e_at": event["at"]}
    params.update(event_params, e_detail=dict(event["detail"]))
    generation: Generation | None = tx.one(statement, params)
    if generation is not None and tx.dialect != "postgresql":
        insert_event(tx, generation_id, **event)
    return generation


def insert_event(
    tx: Tx, generation_id: str, *, from_status: str | None, to_status: str, detail: Mapping[str, Any], at: datetime
) -> None:
    params = {
        "generation_id": generation_id,
        "from_status": from_status,
        "to_status": to_status,
        "detail": dict(detail),
        "at": at,
    }
    tx.run(_INSERT_EVENT, params)


def set_progress(tx: Tx, generation_id: str, progress: int, now: datetime) -> bool:
    """Only while processing; False when the status moved on since it was read."""
    return tx.run(_PROGRESS, {"id": generation_id, "progress": progress, "now": now}) == 1


def note_submit_answered(tx: Tx, generation_id: str, provider_job_id: str, now: datetime, next_poll: datetime) -> None:
    """A "started" webhook beat the submit's answer and moved the job on: keep the polling schedule anyway."""
    params = {"id": generation_id, "provider_job_id": provider_job_id, "now": now, "next_poll_at": next_poll}
    tx.run(_SUBMIT_ANSWERED, params)


def note_outcome_unknown(
    tx: Tx, generation_id: str, *, needs_review: bool, reason: str, now: datetime, next_poll: datetime
) -> None:
    params = {
        "id": generation_id,
        "needs_review": needs_review,
        "error_message": reason,
        "next_poll_at": next_poll,
        "now": now,
    }
    tx.run(_OUTCOME_UNKNOWN, params)


def mark_needs_review(tx: Tx, generation_id: str, *, now: datetime, next_poll: datetime) -> None:
    tx.run(_NEEDS_REVIEW, {"id": generation_id, "now": now, "next_poll_at": next_poll})


def note_polled(tx: Tx, generation_id: str, next_poll: datetime) -> None:
    """A good answer: counts the poll and ends a run of transient errors (the bound is on failures in a row)."""
    tx.run(_POLLED, {"id": generation_id, "next_poll_at": next_poll})


def note_transient_error(tx: Tx, generation_id: str, next_poll: datetime) -> None:
    tx.run(_TRANSIENT_ERROR, {"id": generation_id, "next_poll_at": next_poll})


def bind_route(
    tx: Tx,
    generation_id: str,
    *,
    provider: str,
    provider_model: str,
    served_model: str,
    provider_account: dict[str, Any],
    now: datetime,
) -> Generation | None:
    """Records the route while submitting; None when the job was canceled or expired meanwhile."""
    params = {
        "id": generation_id,
        "provider": provider,
        "provider_model": provider_model,
        "served_model": served_model,
        "provider_account": provider_account,
        "now": now,
    }
    generation: Generation | None = tx.one(_BIND_ROUTE, params)
    return generation


def save_enhanced_prompt(tx: Tx, generation_id: str, text: str, now: datetime) -> Generation | None:
    generation: Generation | None = tx.one(_ENHANCED_PROMPT, {"id": generation_id, "enhanced_prompt": text, "now": now})
    return generation


def claim(tx: Tx, generation_id: str, owner: str, *, now: datetime, until: datetime) -> bool:
    """A lease per generation keeps two workers from handling it at once; it lapses if its holder dies."""
    return tx.run(_CLAIM, {"id": generation_id, "owner": owner, "now": now, "until": until}) == 1


def claim_many(tx: Tx, generation_ids: list[str], owner: str, *, now: datetime, until: datetime) -> set[str]:
    """The leases of several generations in one statement; the ids of those it got (free, active, or ours)."""
    return {row[0] for row in tx.all(_CLAIM_MANY, {"ids": generation_ids, "owner": owner, "now": now, "until": until})}


def release_claim(tx: Tx, generation_id: str, owner: str, *, not_before: datetime | None = None) -> None:
    """Lets `owner`'s lease go; with `not_before`, no worker may take the generation before that moment."""
    tx.run(_RELEASE_CLAIM, {"id": generation_id, "owner": owner, "until": not_before})


def extend_leases(tx: Tx, owner: str, generation_ids: list[str], *, until: datetime) -> int:
    """Keeps the leases a live worker holds from lapsing while its steps run (renewed on its heartbeat)."""
    return tx.run(_EXTEND_LEASES, {"owner": owner, "ids": generation_ids, "until": until})


def drop_lease(tx: Tx, generation_id: str) -> None:
    """The lease of a generation whose holder the queue presumes dead (its heartbeat stopped)."""
    tx.run(_DROP_LEASE, {"id": generation_id})


def drop_all_leases(tx: Tx) -> int:
    """Every active generation's lease, at the start of the only process that drives jobs (embedded mode)."""
    return tx.run(_DROP_LEASES)


def count_in_project(tx: Tx, project_id: str) -> int:
    return int(tx.scalar(_PROJECT_COUNT, {"project_id": project_id}))


# ---------------------------------------------------------------- the worker's scan of due work

_STEP_STATES = (_S.QUEUED, _S.SUBMITTING, _S.PROCESSING, _S.STORING)


def _due_work_query(step_states: tuple[_S, ...] = _STEP_STATES, *, expiries: bool = True) -> Query:
    """Every branch of the scan in one UNION ALL; `expired` tells the two kinds of rows apart. With
    `step_states` narrowed to processing it is the scan of the poll budget: polls and expiries only; without
    processing and without `expiries` it is the scan of production mode's step budget, which leaves a generation
    past its deadline to the poll budget's expiry.

    Each branch is one status with a plain range condition (`next_poll_at <= now`, NULLs in a branch of their
    own, deadlines on (status, deadline_at)), so the scan reads index ranges instead of every active row: with
    10,000 jobs in flight that is the difference between ~0.1 ms and ~80 ms a scan."""
    free = "(lease_until IS NULL OR lease_until < :now)"
    picked = "id, status, next_poll_at, created_at"
    branches: list[str] = []
    if expiries:
        branches.extend(
            f"SELECT {picked}, 1 AS expired FROM generations "
            f"WHERE status = '{state}' AND deadline_at < :now AND {free} LIMIT :limit"
            for state in sorted(ACTIVE_STATES)
        )
    live = "" if expiries else " AND deadline_at >= :now"
    for state in step_states:
        branches.append(
            f"SELECT {picked}, 0 AS expired FROM generations WHERE status = '{state}' AND {free}{live} "
            f"AND next_poll_at <= :now ORDER BY next_poll_at LIMIT :limit"
        )
        branches.append(
            f"SELECT {picked}, 0 AS expired FROM generations WHERE status = '{state}' AND {free}{live} "
            f"AND next_poll_at IS NULL ORDER BY created_at LIMIT :limit"
        )
    # Wrapped: SQLite allows no LIMIT on a bare UNION member.
    return query(" UNION ALL ".join(f"SELECT * FROM ({branch}) AS b{i}" for i, branch in enumerate(branches)))


_STEP_BUDGET_STATES = tuple(state for state in _STEP_STATES if state is not _S.PROCESSING)
_DUE_WORK = _due_work_query()
_DUE_POLLS = _due_work_query((_S.PROCESSING,))
_DUE_STEPS = _due_work_query(_STEP_BUDGET_STATES, expiries=False)
# Production mode's step backlog for /readyz and /metrics: the steps due and not taken, those due later, and when
# the oldest due one fell due (a submission is due from its creation).
_STEP_BACKLOG = query(
    f"""
    SELECT count(*) FILTER (WHERE next_poll_at IS NULL OR next_poll_at <= :now) AS depth,
           count(*) FILTER (WHERE next_poll_at > :now) AS scheduled,
           min(coalesce(next_poll_at, created_at)) FILTER (WHERE next_poll_at IS NULL OR next_poll_at <= :now)
               AS oldest
      FROM generations
     WHERE status IN {in_states(_STEP_BUDGET_STATES)}
       AND (lease_until IS NULL OR lease_until < :now) AND deadline_at >= :now
    """
)


def due_work(
    tx: Tx, *, now: datetime, limit: int, polls_only: bool = False, steps_only: bool = False
) -> list[tuple[Any, ...]]:
    """(id, status, next_poll_at, created_at, expired) of the generations the worker should handle now. The
    moments come as the database gives them: they only order the rows. `polls_only`: the processing ones whose
    poll is due and the expired ones, what production mode's poll budget runs; `steps_only`: the due submits,
    reconciliations and downloads of generations within their deadline, what its step budget runs."""
    scan = _DUE_POLLS if polls_only else _DUE_STEPS if steps_only else _DUE_WORK
    return [tuple(row) for row in tx.all(scan, {"now": now, "limit": limit})]


def step_backlog(tx: Tx, *, now: datetime) -> tuple[int, int, datetime | None]:
    """(due and untaken, due later, when the oldest due one fell due) of production mode's step budget."""
    row = tx.one(_STEP_BACKLOG, {"now": now})
    return int(row[0]), int(row[1]), moment(tx.dialect, row[2])
