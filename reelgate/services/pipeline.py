"""Worker steps of a generation: claim, submit, poll, expire. Storing the output lives in services/outputs.py."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from sqlalchemy import Integer, String, Table, bindparam, literal_column, null, or_, select, union_all, update
from sqlalchemy.sql import ColumnElement, Executable

from reelgate.db.prepared import Prepared, sql_constant
from reelgate.db.tables import Generation, Upload
from reelgate.db.types import UTCDateTime
from reelgate.domain.jobs import ACTIVE_STATES, GenerationStatus
from reelgate.faults import AFTER_PROVIDER_ACCEPTED, crash_point
from reelgate.providers.base import (
    ImageInput,
    JobRequest,
    Provider,
    ProviderRejected,
    RetryLater,
    SubmitOutcomeUnknown,
)
from reelgate.services import routing
from reelgate.services.context import ServiceContext
from reelgate.services.outputs import discard_spilled, discard_stored_spill, spill_inline_output
from reelgate.services.transitions import apply_provider_update, fail, generation_by_id, transition

log = logging.getLogger("reelgate.worker")

_S = GenerationStatus


class Step(StrEnum):
    SUBMIT = "submit"
    RECONCILE = "reconcile"
    POLL = "poll"
    STORE = "store"
    EXPIRE = "expire"


@dataclass(frozen=True)
class DueWork:
    generation_id: str
    step: Step


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(0.8, 1.2)


def poll_delay(ctx: ServiceContext, poll_count: int, hint: float | None = None) -> float:
    """Adaptive backoff: quick first looks, then slower, always jittered so polls don't bunch up."""
    if hint is not None and hint > 0:
        return min(hint, ctx.config.poll_max)
    base = ctx.config.poll_initial * (ctx.config.poll_growth ** min(poll_count, 30))
    return _jitter(min(base, ctx.config.poll_max))


_STEP_OF = {
    _S.QUEUED.value: Step.SUBMIT,
    _S.SUBMITTING.value: Step.RECONCILE,
    _S.PROCESSING.value: Step.POLL,
    _S.STORING.value: Step.STORE,
}


_G = cast(Table, Generation.__table__)


_NOW = bindparam("now", type_=UTCDateTime())
_LIMIT = bindparam("limit", type_=Integer())
# The states are written into the SQL (they never change): no list to expand, one compiled statement.
_ACTIVE_SQL = [sql_constant(s.value) for s in ACTIVE_STATES]


def _due_work_statement() -> Executable:
    """Every branch of the scan in one UNION ALL, built once; `expired` tells the two kinds of rows apart."""
    c = _G.c
    free = or_(c.lease_until.is_(None), c.lease_until < _NOW)
    columns = (c.id, c.status, c.next_poll_at, c.created_at)
    parts = [
        select(*columns, literal_column("1").label("expired"))
        .where(c.status == sql_constant(s.value), c.deadline_at < _NOW, free)
        .limit(_LIMIT)
        for s in ACTIVE_STATES
    ]
    for status in _STEP_OF:
        at_status = (c.status == sql_constant(status), free)
        due: tuple[ColumnElement[object], ...] = (*columns, literal_column("0").label("expired"))
        parts.append(select(*due).where(*at_status, c.next_poll_at <= _NOW).order_by(c.next_poll_at).limit(_LIMIT))
        parts.append(select(*due).where(*at_status, c.next_poll_at.is_(None)).order_by(c.created_at).limit(_LIMIT))
    return union_all(*(p.subquery().select() for p in parts))


_DUE_WORK = _due_work_statement()


async def due_work(ctx: ServiceContext, *, limit: int = 50) -> list[DueWork]:
    """What the worker should do now. The database row is the truth, so this also re-drives anything a
    lost wake-up, a crash or a restart left behind.

    Each branch is one status with a plain range condition (`next_poll_at <= now`, NULLs in a branch of
    their own, deadlines on (status, deadline_at)), so the scan reads index ranges instead of every
    active row: with 10,000 jobs in flight that is the difference between ~0.1 ms and ~80 ms a scan.
    The worker scans after every finished step, so the statement is built and compiled once.
    """
    async with ctx.db.read_connection() as connection:
        result = await connection.execute(_DUE_WORK, {"now": ctx.clock(), "limit": limit})
        found = result.all()
    expired = [r[0] for r in found if r[4]][:limit]
    rows = [r for r in found if not r[4]]
    work = [DueWork(gid, Step.EXPIRE) for gid in expired]
    # Never-scheduled work first (new submissions), then the most overdue.
    rows.sort(key=lambda r: (r[2] is not None, r[2] or r[3], r[3]))
    seen = set(expired)
    work.extend(DueWork(r[0], _STEP_OF[r[1]]) for r in rows[:limit] if r[0] not in seen)
    return work


_ID = bindparam("gid", type_=String())  # not a column name: UPDATE reserves those for its SET values
_CLAIM = Prepared(
    update(_G)
    .where(
        _G.c.id == _ID,
        _G.c.status.in_(_ACTIVE_SQL),
        or_(_G.c.lease_until.is_(None), _G.c.lease_until < _NOW, _G.c.lease_owner == bindparam("owner")),
    )
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until", type_=UTCDateTime()))
)
_RELEASE_CLAIM = Prepared(
    update(_G)
    .where(_G.c.id == _ID, _G.c.lease_owner == bindparam("owner"))
    .values(lease_owner=null(), lease_until=null())
)


async def claim(ctx: ServiceContext, generation_id: str, owner: str) -> bool:
    """A lease per generation keeps two workers from handling it at once; it lapses if the holder dies."""
    now = ctx.clock()
    until = now + timedelta(seconds=ctx.config.lease_seconds)
    async with ctx.db.write_connection() as connection:
        result = await _CLAIM.run(connection, {"gid": generation_id, "now": now, "owner": owner, "until": until})
        return bool(result.rowcount)


async def release_claim(ctx: ServiceContext, generation_id: str, owner: str) -> None:
    async with ctx.db.write_connection() as connection:
        await _RELEASE_CLAIM.run(connection, {"gid": generation_id, "owner": owner})


async def read_generation(ctx: ServiceContext, generation_id: str) -> Generation | None:
    """The row as a detached Generation, without a Session (every worker step starts with this read)."""
    async with ctx.db.read_connection() as connection:
        return await generation_by_id(connection, generation_id)


async def _load(ctx: ServiceContext, generation_id: str) -> Generation | None:
    return await read_generation(ctx, generation_id)


async def _image_input(ctx: ServiceContext, upload_id: str | None) -> ImageInput | None:
    if upload_id is None:
        return None
    async with ctx.db.reader() as session:
        upload = await session.get(Upload, upload_id)
    if upload is None:
        return None
    data = await ctx.store.read_bytes(upload.object_key)
    return ImageInput(data=data, content_type=upload.content_type, width=upload.width, height=upload.height)


def webhook_url(ctx: ServiceContext, generation: Generation) -> str:
    """Per-generation URL with an unguessable token: the only proof on providers that don't sign webhooks."""
    return f"{ctx.config.public_url}/webhooks/{generation.provider}?g={generation.id}&t={generation.webhook_token}"


async def job_request(ctx: ServiceContext, generation: Generation) -> JobRequest:
    params = generation.params
    return JobRequest(
        generation_id=generation.id,
        model_ref=generation.provider_model,
        kind=generation.kind,
        prompt=generation.enhanced_prompt or generation.prompt,
        duration=int(params["duration"]),
        resolution=params["resolution"],
        aspect_ratio=params["aspect_ratio"],
        width=int(params["width"]),
        height=int(params["height"]),
        negative_prompt=generation.negative_prompt,
        seed=params.get("seed"),
        start_image=await _image_input(ctx, generation.start_upload_id),
        end_image=await _image_input(ctx, generation.end_upload_id),
        audio=bool(params.get("audio")),
        options=dict(params.get("options") or {}),
        webhook_url=webhook_url(ctx, generation),
    )


async def submit(ctx: ServiceContext, generation_id: str) -> None:
    """queued → submitting → provider call → processing (job id stored the moment it is known)."""
    now = ctx.clock()
    async with ctx.db.transaction() as session:
        generation = await transition(
            session, generation_id, _S.SUBMITTING, now=now, submit_attempts=Generation.submit_attempts + 1
        )
    if generation is None:
        return
    await _send(ctx, generation)


async def _send(ctx: ServiceContext, generation: Generation) -> None:
    # Routing tries the model, then its fallbacks; `generation` comes back bound to the last route tried.
    attempt = await routing.submit_routed(ctx, generation, job_request)
    if attempt is None:
        return
    generation, provider, error = attempt.generation, attempt.provider, attempt.error
    if isinstance(error, RetryLater):
        await _submit_later(ctx, generation, str(error), error.after)
        return
    if isinstance(error, ProviderRejected):
        await _rejected(ctx, generation, error)
        return
    if isinstance(error, SubmitOutcomeUnknown) or attempt.result is None:
        await _outcome_unknown(ctx, generation, provider, str(error))
        return
    result = attempt.result
    crash_point(AFTER_PROVIDER_ACCEPTED)
    if ctx.degraded_providers.get(generation.provider) == "out of provider credit":
        ctx.degraded_providers.pop(generation.provider, None)
        log.info("provider %s accepts jobs again", generation.provider)
    now = ctx.clock()
    first_poll = now + timedelta(seconds=poll_delay(ctx, 0))
    async with ctx.db.transaction() as session:
        moved = await transition(
            session,
            generation.id,
            _S.PROCESSING,
            now=now,
            from_states=frozenset({_S.SUBMITTING}),
            provider_job_id=result.provider_job_id,
            submitted_at=now,
            needs_review=False,
            next_poll_at=first_poll,
        )
        if moved is None:
            # A "started" webhook beat this answer and already recorded the job: keep the polling schedule.
            await session.execute(
                update(Generation)
                .where(
                    Generation.id == generation.id,
                    Generation.status == _S.PROCESSING.value,
                    Generation.provider_job_id == result.provider_job_id,
                    Generation.submitted_at.is_(None),
                )
                .values(submitted_at=now, next_poll_at=first_poll)
            )


async def _submit_later(ctx: ServiceContext, generation: Generation, reason: str, after: float | None) -> None:
    now = ctx.clock()
    async with ctx.db.transaction() as session:
        if generation.submit_attempts >= ctx.config.max_submit_attempts:
            await fail(
                session,
                generation.id,
                now=now,
                code="provider_unavailable",
                message=f"The provider stayed unavailable after {generation.submit_attempts} attempts: {reason}",
            )
            return
        delay = after if after is not None else _jitter(2.0**generation.submit_attempts)
        await transition(
            session,
            generation.id,
            _S.QUEUED,
            now=now,
            from_states=frozenset({_S.SUBMITTING}),
            next_poll_at=now + timedelta(seconds=delay),
            detail={"retry_in": delay, "reason": reason},
            served_model=None,  # no job was started: the next submit may route anew
        )


async def _rejected(ctx: ServiceContext, generation: Generation, exc: ProviderRejected) -> None:
    """A permanent refusal fails the job with the provider's reason and releases the hold."""
    if exc.code == ProviderRejected.OUT_OF_CREDIT:
        # /readyz reports the provider degraded until a submit succeeds again (the operator topped up).
        ctx.degraded_providers[generation.provider] = "out of provider credit"
        log.error("provider %s is out of credit: top up the account (%s)", generation.provider, exc)
    async with ctx.db.transaction() as session:
        await fail(session, generation.id, now=ctx.clock(), code=exc.code, message=str(exc))


async def _outcome_unknown(ctx: ServiceContext, generation: Generation, provider: Provider, reason: str) -> None:
    """The request may have started a job; resending could run and bill it twice at the provider."""
    now = ctx.clock()
    async with ctx.db.transaction() as session:
        if provider.idempotent_submit:
            await transition(
                session,
                generation.id,
                _S.QUEUED,
                now=now,
                from_states=frozenset({_S.SUBMITTING}),
                next_poll_at=now + timedelta(seconds=_jitter(2.0)),
                detail={"reason": reason},
            )
        else:
            # Stay in `submitting`: reconcile by lookup where the API allows, else wait for the operator.
            await session.execute(
                update(Generation)
                .where(Generation.id == generation.id, Generation.status == _S.SUBMITTING.value)
                .values(
                    needs_review=not provider.supports_lookup,
                    error_message=f"Submit outcome unknown: {reason}",
                    next_poll_at=now + timedelta(seconds=poll_delay(ctx, 1)),
                    updated_at=now,
                )
            )
    log.warning("submit outcome unknown for %s: %s", generation.id, reason, extra={"generation_id": generation.id})


async def reconcile(ctx: ServiceContext, generation_id: str) -> None:
    """A generation left in `submitting` (crash or unknown outcome): find its job, resend if safe, or wait."""
    generation = await _load(ctx, generation_id)
    if generation is None or generation.status != _S.SUBMITTING.value:
        return
    provider = routing.bound_provider(ctx, generation)
    if provider.idempotent_submit:
        await _send(ctx, generation)
        return
    found = await provider.lookup(generation.id) if provider.supports_lookup else None
    now = ctx.clock()
    if found is not None:
        found = await spill_inline_output(ctx, generation.id, found)
        async with ctx.db.transaction() as session:
            updated = await apply_provider_update(session, generation.id, found, now=now)
        if updated is None or updated.status != _S.STORING.value:
            discard_spilled(ctx, found)
        return
    log.warning(
        "generation %s needs review: its submit outcome is unknown and %s cannot look it up",
        generation.id,
        generation.provider,
        extra={"generation_id": generation.id},
    )
    async with ctx.db.transaction() as session:
        await session.execute(
            update(Generation)
            .where(Generation.id == generation.id, Generation.status == _S.SUBMITTING.value)
            .values(needs_review=True, next_poll_at=now + timedelta(seconds=ctx.config.poll_max), updated_at=now)
        )


_NEXT_POLL_AT = bindparam("next_poll", type_=UTCDateTime())
_POLLED = Prepared(
    update(_G)
    .where(_G.c.id == _ID, _G.c.status == sql_constant(_S.PROCESSING.value))
    .values(poll_count=_G.c.poll_count + 1, transient_errors=0, next_poll_at=_NEXT_POLL_AT)
)
_TRANSIENT = Prepared(
    update(_G).where(_G.c.id == _ID).values(transient_errors=_G.c.transient_errors + 1, next_poll_at=_NEXT_POLL_AT)
)


async def poll(ctx: ServiceContext, generation_id: str) -> None:
    generation = await _load(ctx, generation_id)
    if generation is None or generation.status != _S.PROCESSING.value or not generation.provider_job_id:
        return
    provider = routing.bound_provider(ctx, generation)
    try:
        update_ = await provider.status(generation.provider_job_id, await job_request(ctx, generation))
    except RetryLater as exc:
        await _transient(ctx, generation, str(exc), exc.after)
        return
    except ProviderRejected as exc:
        await _rejected(ctx, generation, exc)
        return
    update_ = await spill_inline_output(ctx, generation.id, update_)
    now = ctx.clock()
    kept = False
    try:
        async with ctx.db.transaction() as session:
            updated = await apply_provider_update(session, generation.id, update_, now=now)
            kept = updated is not None and updated.status == _S.STORING.value
            # A good answer ends a run of transient errors: the bound is on failures in a row.
            delay = poll_delay(ctx, generation.poll_count + 1, update_.poll_after_seconds)
            await _POLLED.run(session, {"gid": generation.id, "next_poll": now + timedelta(seconds=delay)})
    finally:
        if not kept:
            discard_spilled(ctx, update_)


async def _transient(ctx: ServiceContext, generation: Generation, reason: str, after: float | None) -> None:
    now = ctx.clock()
    async with ctx.db.transaction() as session:
        if generation.transient_errors + 1 >= ctx.config.max_transient_errors:
            await fail(
                session,
                generation.id,
                now=now,
                code="provider_unavailable",
                message=f"The provider kept failing: {reason}",
            )
            return
        delay = after if after is not None else poll_delay(ctx, generation.poll_count + 1)
        await _TRANSIENT.run(session, {"gid": generation.id, "next_poll": now + timedelta(seconds=delay)})


async def expire(ctx: ServiceContext, generation_id: str) -> None:
    """Past its model's deadline: cancel at the provider (best effort), end as expired, release the hold."""
    generation = await _load(ctx, generation_id)
    now = ctx.clock()
    if generation is None or generation.deadline_at >= now:
        return
    if generation.provider_job_id:
        try:
            await routing.bound_provider(ctx, generation).cancel(generation.provider_job_id)
        except Exception:  # noqa: BLE001 - expiry must not depend on the provider answering
            log.warning("cancel at provider failed for expired %s", generation_id)
    async with ctx.db.transaction() as session:
        ended = await fail(
            session,
            generation_id,
            now=now,
            code="deadline_exceeded",
            target=_S.EXPIRED,
            message="The provider did not finish in time; your credits were returned.",
        )
    if ended is not None:
        discard_stored_spill(ctx, generation.raw_provider)


async def resume_all(ctx: ServiceContext) -> int:
    """At start-up: drop leases held by processes that no longer exist, so every active job is re-driven."""
    async with ctx.db.transaction() as session:
        result = await session.execute(
            update(Generation)
            .where(Generation.status.in_([s.value for s in ACTIVE_STATES]), Generation.lease_owner.is_not(None))
            .values(lease_owner=None, lease_until=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def now_plus(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)
