"""The one place a generation's status changes: compare-and-set, an event row, and settlement on terminal."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, Update, bindparam, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ClauseElement

from reelgate.db.engine import Executor
from reelgate.db.prepared import sql_constant
from reelgate.db.rows import instance_from_row
from reelgate.db.tables import Generation, GenerationEvent
from reelgate.db.types import UTCDateTime
from reelgate.domain.jobs import TERMINAL_STATES, GenerationStatus, ProviderState, allowed_sources, settles_by_capture
from reelgate.providers.base import OutputRef, ProviderUpdate
from reelgate.services import events, ledger

log = logging.getLogger("reelgate.jobs")


_G = cast(Table, Generation.__table__)
_INSERT_EVENT = cast(Table, GenerationEvent.__table__).insert()
# What a terminal transition records beside the ledger entry: the credits charged, or refunded.
_RECORD_SETTLEMENT = {
    capture: update(_G)
    .where(_G.c.id == bindparam("gid", type_=String()))
    .values({"credits_charged" if capture else "credits_refunded": bindparam("amount")})
    for capture in (True, False)
}


@functools.lru_cache(maxsize=128)
def _compare_and_set(sources: tuple[str, ...], keys: tuple[str, ...]) -> Update:
    """The status change as one UPDATE: built once per shape (source states and columns set), as every webhook,
    poll and worker step runs one. Values bind as `v_<column>` (UPDATE reserves the column names)."""
    return (
        update(_G)
        .where(
            _G.c.id == bindparam("gid", type_=String()),
            _G.c.status.in_([sql_constant(state) for state in sources]),
        )
        .values({key: bindparam(f"v_{key}", type_=_G.c[key].type) for key in keys})
        .returning(_G.c.user_id, _G.c.credits_held)
    )


async def transition(
    session: AsyncSession,
    generation_id: str,
    target: GenerationStatus,
    *,
    now: datetime,
    from_states: frozenset[GenerationStatus] | None = None,
    detail: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Generation | None:
    """Moves the generation to `target` if it is in an allowed state; None (and no change) otherwise.

    Entering a terminal state settles the credit hold in the same transaction: capture on success,
    release otherwise. The ledger's unique settlement index makes a second settlement impossible.
    """
    sources = from_states if from_states is not None else allowed_sources(target)
    values: dict[str, Any] = {"status": target.value, "updated_at": now, **fields}
    if target in TERMINAL_STATES:
        values.setdefault("completed_at", now)
        values.update(lease_owner=None, lease_until=None, next_poll_at=None)
    # A value given as SQL (`submit_attempts + 1`) is written into the statement; the rest are bound.
    computed = {key: value for key, value in values.items() if isinstance(value, ClauseElement)}
    bound = {key: value for key, value in values.items() if key not in computed}
    statement = _compare_and_set(tuple(sorted(s.value for s in sources)), tuple(sorted(bound)))
    if computed:
        statement = statement.values(computed)
    params = {f"v_{key}": value for key, value in bound.items()}
    params["gid"] = generation_id
    row = (await session.execute(statement, params)).first()
    if row is None:
        return None
    user_id, held = row
    previous = next(iter(sources)) if len(sources) == 1 else None
    event = {
        "generation_id": generation_id,
        "from_status": previous and previous.value,
        "to_status": target.value,
        "detail": dict(detail or {}),
        "at": now,
    }
    await session.execute(_INSERT_EVENT, event)
    if target in TERMINAL_STATES and held > 0:
        capture = settles_by_capture(target)
        await ledger.settle(session, user_id, held, generation_id=generation_id, capture=capture)
        await session.execute(_RECORD_SETTLEMENT[capture], {"gid": generation_id, "amount": held})
    generation = await session.get(Generation, generation_id, populate_existing=True)
    if generation is not None and target in TERMINAL_STATES:
        await events.record_terminal_event(session, generation)
    log.info("generation %s -> %s", generation_id, target.value, extra={"generation_id": generation_id})
    return generation


async def fail(
    session: AsyncSession,
    generation_id: str,
    *,
    now: datetime,
    code: str,
    message: str,
    target: GenerationStatus = GenerationStatus.FAILED,
) -> Generation | None:
    return await transition(
        session, generation_id, target, now=now, error_code=code, error_message=message[:2000], detail={"code": code}
    )


def _output_to_json(output: OutputRef | None) -> dict[str, Any] | None:
    if output is None:
        return None
    return {
        k: v
        for k, v in {
            "url": output.url,
            "base64": output.base64_data,
            "path": output.path,
            "content_type": output.content_type,
        }.items()
        if v is not None
    }


def _trim_raw(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the provider's payload for debugging, without multi-megabyte base64 videos."""
    trimmed: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and len(value) > 2000:
            trimmed[key] = f"<{len(value)} characters>"
        elif isinstance(value, Mapping):
            trimmed[key] = _trim_raw(value)
        else:
            trimmed[key] = value
    return trimmed


# Every poll and webhook runs these: built once, and table-level so a Session runs them as plain Core. The
# names are not column names (UPDATE reserves those for its SET values).
_GENERATION = select(_G).where(_G.c.id == bindparam("gid", type_=String()))
_PROGRESS = (
    update(_G)
    .where(
        _G.c.id == bindparam("gid", type_=String()),
        _G.c.status == sql_constant(GenerationStatus.PROCESSING.value),
    )
    .values(progress=bindparam("new_progress"), updated_at=bindparam("now", type_=UTCDateTime()))
)


async def generation_by_id(executor: Executor, generation_id: str) -> Generation | None:
    """The whole row as a detached Generation (no Session involved): the hot paths' read of one generation."""
    row = (await executor.execute(_GENERATION, {"gid": generation_id})).first()
    return None if row is None else instance_from_row(Generation, row._asdict())


async def apply_provider_update(
    session: AsyncSession, generation_id: str, update_: ProviderUpdate, *, now: datetime
) -> Generation | None:
    """Applies what a provider said about a job (webhook or poll). Late, stale or duplicate updates change nothing.

    Returns the generation after the update, or None when the update was ignored.
    """
    generation = await generation_by_id(session, generation_id)
    if generation is None or GenerationStatus(generation.status) in TERMINAL_STATES:
        return None
    if generation.provider_job_id and update_.provider_job_id and generation.provider_job_id != update_.provider_job_id:
        log.warning(
            "ignoring update for job %s: generation %s belongs to job %s",
            update_.provider_job_id,
            generation_id,
            generation.provider_job_id,
        )
        return None
    status = GenerationStatus(generation.status)
    raw = _trim_raw(update_.raw)
    if update_.state in (ProviderState.QUEUED, ProviderState.RUNNING):
        return await _note_progress(session, generation, status, update_, raw, now)
    if update_.state is ProviderState.SUCCEEDED:
        if update_.output is None:
            return await fail(
                session,
                generation_id,
                now=now,
                code="provider_no_output",
                message="The provider reported success but returned no video.",
            )
        return await transition(
            session,
            generation_id,
            GenerationStatus.STORING,
            now=now,
            from_states=frozenset({GenerationStatus.SUBMITTING, GenerationStatus.PROCESSING}),
            provider_job_id=generation.provider_job_id or update_.provider_job_id,
            needs_review=False,
            raw_provider={"output": _output_to_json(update_.output), "payload": raw},
            progress=100,
            next_poll_at=None,
        )
    if update_.state is ProviderState.CANCELED:
        return await fail(
            session,
            generation_id,
            now=now,
            code="provider_canceled",
            message=update_.error_message or "The provider canceled this job.",
            target=GenerationStatus.CANCELED,
        )
    return await fail(
        session,
        generation_id,
        now=now,
        code=update_.error_code or "provider_failed",
        message=update_.error_message or "The provider could not generate this video.",
    )


async def _note_progress(
    session: AsyncSession,
    generation: Generation,
    status: GenerationStatus,
    update_: ProviderUpdate,
    raw: dict[str, Any],
    now: datetime,
) -> Generation | None:
    progress = max(generation.progress, min(update_.progress or 0, 99))
    if status is GenerationStatus.SUBMITTING and update_.provider_job_id:
        # A "started" webhook can beat our own submit call back: record the job id it carries.
        return await transition(
            session,
            generation.id,
            GenerationStatus.PROCESSING,
            now=now,
            from_states=frozenset({GenerationStatus.SUBMITTING}),
            provider_job_id=update_.provider_job_id,
            # The provider told us the job exists: nothing is left for the operator to review.
            needs_review=False,
            progress=progress,
            raw_provider={"payload": raw},
        )
    if status is not GenerationStatus.PROCESSING or progress == generation.progress:
        return None
    result = await session.execute(_PROGRESS, {"gid": generation.id, "new_progress": progress, "now": now})
    if not cast(CursorResult[Any], result).rowcount:
        # The status moved on since the read: answer with the row as it is now.
        return await session.get(Generation, generation.id, populate_existing=True)
    generation.progress = progress
    generation.updated_at = now
    return generation
