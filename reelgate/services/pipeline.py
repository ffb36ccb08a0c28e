"""Worker steps of a generation: claim, submit, poll, expire. Storing the output lives in services/outputs.py."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from reelgate.db.errors import DatabaseUnavailable
from reelgate.db.queries import generations as generation_queries
from reelgate.db.queries.provider_rates import take_request_slot
from reelgate.db.queries.uploads import upload_by_id
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.jobs import GenerationStatus
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
from reelgate.services.image_transport import with_image_transport
from reelgate.services.output_staging import discard_recorded_staging, discard_staged, stage_output
from reelgate.services.transitions import apply_provider_update, fail, transition
from reelgate.services.webhook_links import webhook_url

log = logging.getLogger("reelgate.worker")

_S = GenerationStatus

# How long a worker keeps trying to record a provider's job id while the database is unreachable (a restart, a
# failover): the id exists nowhere else, and without it the job's outcome becomes unknown.
RECORD_ACCEPTED_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
PROVIDER_FULL_RECHECK_SECONDS = 3.0  # a job held back because its provider is full looks again after this


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


def slot_wait(seconds: float) -> float:
    """How long a job over its provider's rate waits: until the window frees a place, never sooner, and a little
    later at random, so the jobs held back for the same place do not all come for it at the same moment."""
    return seconds * random.uniform(1.0, 1.1) + random.uniform(0.0, 0.05)


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


async def due_work(
    ctx: ServiceContext, *, limit: int = 50, polls_only: bool = False, steps_only: bool = False
) -> list[DueWork]:
    """What the worker should do now. The database row is the truth, so this also re-drives anything a lost
    wake-up, a crash or a restart left behind (see generation_queries.due_work for how the scan stays cheap).
    `polls_only`: due polls and expiries only (production mode's poll budget); `steps_only`: the other steps of
    generations within their deadline (its step budget)."""
    now = ctx.clock()
    found = await ctx.db.read(
        lambda tx: generation_queries.due_work(tx, now=now, limit=limit, polls_only=polls_only, steps_only=steps_only)
    )
    expired = [r[0] for r in found if r[4]][:limit]
    rows = [r for r in found if not r[4]]
    work = [DueWork(gid, Step.EXPIRE) for gid in expired]
    # Never-scheduled work first (new submissions), then the most overdue.
    rows.sort(key=lambda r: (r[2] is not None, r[2] or r[3], r[3]))
    seen = set(expired)
    work.extend(DueWork(r[0], _STEP_OF[r[1]]) for r in rows[:limit] if r[0] not in seen)
    return work


async def step_backlog(ctx: ServiceContext) -> dict[str, float]:
    """Production mode's step budget behind the workers: steps due and untaken (`depth`), due later
    (`scheduled`), and the seconds the oldest due one has waited (`lag_seconds`)."""
    now = ctx.clock()
    depth, scheduled, oldest = await ctx.db.read(lambda tx: generation_queries.step_backlog(tx, now=now))
    lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return {"depth": float(depth), "scheduled": float(scheduled), "lag_seconds": lag}


async def claim(ctx: ServiceContext, generation_id: str, owner: str) -> bool:
    """A lease per generation keeps two workers from handling it at once; it lapses if the holder dies."""
    now = ctx.clock()
    until = now + timedelta(seconds=ctx.config.lease_seconds)
    return await ctx.db.write(lambda tx: generation_queries.claim(tx, generation_id, owner, now=now, until=until))


async def claim_many(ctx: ServiceContext, generation_ids: list[str], owner: str) -> set[str]:
    """`claim` for several generations in one write; the ids whose lease `owner` now holds."""
    if not generation_ids:
        return set()
    now = ctx.clock()
    until = now + timedelta(seconds=ctx.config.lease_seconds)
    return await ctx.db.write(lambda tx: generation_queries.claim_many(tx, generation_ids, owner, now=now, until=until))


async def release_claim(ctx: ServiceContext, generation_id: str, owner: str, *, pause: float = 0.0) -> None:
    """Lets the lease go; with `pause` (seconds), no worker may take the generation again before it has passed."""
    not_before = ctx.clock() + timedelta(seconds=pause) if pause > 0 else None
    await ctx.db.write(lambda tx: generation_queries.release_claim(tx, generation_id, owner, not_before=not_before))


async def extend_claims(ctx: ServiceContext, generation_ids: list[str], owner: str) -> int:
    """Pushes back the lapse of the leases `owner` holds on these generations by another lease period."""
    until = ctx.clock() + timedelta(seconds=ctx.config.lease_seconds)
    return await ctx.db.write(lambda tx: generation_queries.extend_leases(tx, owner, generation_ids, until=until))


async def drop_claim(ctx: ServiceContext, generation_id: str) -> None:
    """Frees a generation whose holder is presumed dead, so the next worker need not wait for the lease."""
    await ctx.db.write(lambda tx: generation_queries.drop_lease(tx, generation_id))


async def read_generation(ctx: ServiceContext, generation_id: str) -> Generation | None:
    """The row as every worker step starts with it."""
    return await ctx.db.read(lambda tx: generation_queries.generation_by_id(tx, generation_id))


async def _load(ctx: ServiceContext, generation_id: str) -> Generation | None:
    return await read_generation(ctx, generation_id)


async def _image_input(ctx: ServiceContext, upload_id: str | None) -> ImageInput | None:
    if upload_id is None:
        return None
    upload = await ctx.db.read(lambda tx: upload_by_id(tx, upload_id))
    if upload is None:
        return None
    data = await ctx.store.read_bytes(upload.object_key)
    return ImageInput(data=data, content_type=upload.content_type, width=upload.width, height=upload.height)


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
        system_prompt=(params.get("text") or {}).get("system_prompt") or None,
        max_output_tokens=(params.get("text") or {}).get("max_output_tokens"),
    )


async def submission_request(ctx: ServiceContext, generation: Generation) -> JobRequest:
    """The request a submit sends: images that must travel by address carry a signed input link (polls need none)."""
    provider = routing.bound_provider(ctx, generation)
    return with_image_transport(ctx, provider, generation, await job_request(ctx, generation))


async def submit(ctx: ServiceContext, generation_id: str) -> None:
    """queued → submitting → provider call → processing (job id stored the moment it is known). A provider
    that already has as many of our jobs as it takes at once gets no more: the job stays queued and looks
    again shortly, without counting an attempt. A provider that had as many requests as its rate allows in
    the last period gets none either: the job stays queued until the moment the window frees a place."""
    now = ctx.clock()
    caps, rates = ctx.config.provider_in_flight_caps, ctx.config.provider_rate_limits

    def start(tx: Tx) -> Generation | None:
        provider = _queued_provider(tx, generation_id) if caps or rates else None
        if provider is None:
            return transition(tx, generation_id, _S.SUBMITTING, now=now, increments=("submit_attempts",))
        if provider in caps and generation_queries.provider_in_flight_locked(tx, provider) >= caps[provider]:
            later = now + timedelta(seconds=_jitter(PROVIDER_FULL_RECHECK_SECONDS))
            generation_queries.hold_back(tx, generation_id, until=later, now=now)
            return None
        if provider in rates:
            wait = take_request_slot(tx, provider, rates[provider], ctx.clock)
            if wait is not None:
                later = ctx.clock() + timedelta(seconds=slot_wait(wait))
                generation_queries.hold_back(tx, generation_id, until=later, now=now)
                return None
        return transition(tx, generation_id, _S.SUBMITTING, now=now, increments=("submit_attempts",))

    generation = await ctx.db.write(start)
    if generation is None:
        return
    await _send(ctx, generation)


def _queued_provider(tx: Tx, generation_id: str) -> str | None:
    """The provider a queued job is bound to (its first route, or the route a past submit pinned it to)."""
    current = generation_queries.generation_by_id(tx, generation_id)
    return current.provider if current is not None and current.status == _S.QUEUED.value else None


async def _send(ctx: ServiceContext, generation: Generation) -> None:
    # Routing tries the model, then its fallbacks; `generation` comes back bound to the last route tried.
    attempt = await routing.submit_routed(ctx, generation, submission_request)
    if attempt is None:
        return
    generation, provider, error = attempt.generation, attempt.provider, attempt.error
    if attempt.untried and isinstance(error, RetryLater):
        await _wait_for_rate(ctx, generation, str(error), error.after or 0.0)
        return
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
    # A synchronous answer (a text completion) is put in the object store first, like any output that arrives
    # as bytes, so the step that stores it may run on any host.
    finished = await stage_output(ctx, generation.id, result.update) if result.update is not None else None
    now = ctx.clock()
    first_poll = now + timedelta(seconds=poll_delay(ctx, 0))
    job_id = result.provider_job_id

    def accepted(tx: Tx) -> bool:
        moved = transition(
            tx,
            generation.id,
            _S.PROCESSING,
            now=now,
            from_states=frozenset({_S.SUBMITTING}),
            provider_job_id=job_id,
            submitted_at=now,
            needs_review=False,
            next_poll_at=first_poll,
        )
        if moved is None:
            generation_queries.note_submit_answered(tx, generation.id, job_id, now, first_poll)
        if finished is None:
            return False
        updated = apply_provider_update(tx, generation.id, finished, now=now)
        return updated is not None and updated.status == _S.STORING.value

    kept = False
    try:
        kept = await _record_accepted(ctx, generation, job_id, accepted)
    finally:
        if not kept:  # the job had ended meanwhile, or the record failed: the staged answer has no owner
            await discard_staged(ctx, finished)


async def _record_accepted(
    ctx: ServiceContext, generation: Generation, job_id: str, accepted: Callable[[Tx], bool]
) -> bool:
    """Records the provider's answer, waiting out a database that is briefly unreachable (the job id exists
    nowhere else); True when a synchronous answer was recorded as the job's output."""
    for wait in RECORD_ACCEPTED_WAITS:
        try:
            return await ctx.db.write(accepted)
        except DatabaseUnavailable:
            log.warning(
                "could not record job %s of %s yet; trying again in %.1f s",
                job_id,
                generation.id,
                wait,
                extra={"generation_id": generation.id},
            )
            await asyncio.sleep(wait)
    return await ctx.db.write(accepted)


async def _submit_later(ctx: ServiceContext, generation: Generation, reason: str, after: float | None) -> None:
    now = ctx.clock()

    def later(tx: Tx) -> None:
        if generation.submit_attempts >= ctx.config.max_submit_attempts:
            fail(
                tx,
                generation.id,
                now=now,
                code="provider_unavailable",
                message=f"The provider stayed unavailable after {generation.submit_attempts} attempts: {reason}",
            )
            return
        delay = after if after is not None else _jitter(2.0**generation.submit_attempts)
        transition(
            tx,
            generation.id,
            _S.QUEUED,
            now=now,
            from_states=frozenset({_S.SUBMITTING}),
            next_poll_at=now + timedelta(seconds=delay),
            detail={"retry_in": delay, "reason": reason},
            served_model=None,  # no job was started: the next submit may route anew
        )

    await ctx.db.write(later)


async def _wait_for_rate(ctx: ServiceContext, generation: Generation, reason: str, after: float) -> None:
    """Back to queued without counting the attempt: no provider was asked, each route was waiting for its rate."""
    now = ctx.clock()

    def wait(tx: Tx) -> None:
        transition(
            tx,
            generation.id,
            _S.QUEUED,
            now=now,
            from_states=frozenset({_S.SUBMITTING}),
            next_poll_at=now + timedelta(seconds=slot_wait(after)),
            detail={"retry_in": after, "reason": reason},
            served_model=None,
            submit_attempts=max(0, generation.submit_attempts - 1),
        )

    await ctx.db.write(wait)


async def _rejected(ctx: ServiceContext, generation: Generation, exc: ProviderRejected) -> None:
    """A permanent refusal fails the job with the provider's reason and releases the hold."""
    if exc.code == ProviderRejected.OUT_OF_CREDIT:
        # /readyz reports the provider degraded until a submit succeeds again (the operator topped up).
        ctx.degraded_providers[generation.provider] = "out of provider credit"
        log.error("provider %s is out of credit: top up the account (%s)", generation.provider, exc)
    await ctx.db.write(lambda tx: fail(tx, generation.id, now=ctx.clock(), code=exc.code, message=str(exc)))


async def _outcome_unknown(ctx: ServiceContext, generation: Generation, provider: Provider, reason: str) -> None:
    """The request may have started a job; resending could run and bill it twice at the provider."""
    now = ctx.clock()

    def unknown(tx: Tx) -> None:
        if provider.idempotent_submit:
            transition(
                tx,
                generation.id,
                _S.QUEUED,
                now=now,
                from_states=frozenset({_S.SUBMITTING}),
                next_poll_at=now + timedelta(seconds=_jitter(2.0)),
                detail={"reason": reason},
            )
            return
        # Stay in `submitting`: reconcile by lookup where the API allows, else wait for the operator.
        generation_queries.note_outcome_unknown(
            tx,
            generation.id,
            needs_review=not provider.supports_lookup,
            reason=f"Submit outcome unknown: {reason}",
            now=now,
            next_poll=now + timedelta(seconds=poll_delay(ctx, 1)),
        )

    await ctx.db.write(unknown)
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
        found = await stage_output(ctx, generation.id, found)
        update_ = found
        updated = await ctx.db.write(lambda tx: apply_provider_update(tx, generation.id, update_, now=now))
        if updated is None or updated.status != _S.STORING.value:
            await discard_staged(ctx, found)
        return
    log.warning(
        "generation %s needs review: its submit outcome is unknown and %s cannot look it up",
        generation.id,
        generation.provider,
        extra={"generation_id": generation.id},
    )
    next_poll = now + timedelta(seconds=ctx.config.poll_max)
    await ctx.db.write(lambda tx: generation_queries.mark_needs_review(tx, generation.id, now=now, next_poll=next_poll))


async def poll(ctx: ServiceContext, generation_id: str) -> bool:
    """Asks the provider how the job is doing and records the answer; True when the generation now waits to be
    stored (the answer, or a webhook before it, found the output ready), so the caller can hand it on."""
    generation = await _load(ctx, generation_id)
    if generation is None or generation.status != _S.PROCESSING.value or not generation.provider_job_id:
        return generation is not None and generation.status == _S.STORING.value
    provider = routing.bound_provider(ctx, generation)
    try:
        update_ = await provider.status(generation.provider_job_id, await job_request(ctx, generation))
    except RetryLater as exc:
        await _transient(ctx, generation, str(exc), exc.after)
        return False
    except ProviderRejected as exc:
        await _rejected(ctx, generation, exc)
        return False
    update_ = await stage_output(ctx, generation.id, update_)
    now = ctx.clock()
    # A good answer ends a run of transient errors: the bound is on failures in a row.
    next_poll = now + timedelta(seconds=poll_delay(ctx, generation.poll_count + 1, update_.poll_after_seconds))

    def polled(tx: Tx) -> bool:
        updated = apply_provider_update(tx, generation.id, update_, now=now)
        generation_queries.note_polled(tx, generation.id, next_poll)
        return updated is not None and updated.status == _S.STORING.value

    kept = False
    try:
        kept = await ctx.db.write(polled)
    finally:
        if not kept:
            await discard_staged(ctx, update_)
    return kept


async def _transient(ctx: ServiceContext, generation: Generation, reason: str, after: float | None) -> None:
    now = ctx.clock()

    def transient(tx: Tx) -> None:
        if generation.transient_errors + 1 >= ctx.config.max_transient_errors:
            fail(
                tx, generation.id, now=now, code="provider_unavailable", message=f"The provider kept failing: {reason}"
            )
            return
        delay = after if after is not None else poll_delay(ctx, generation.poll_count + 1)
        generation_queries.note_transient_error(tx, generation.id, now + timedelta(seconds=delay))

    await ctx.db.write(transient)


async def expire(ctx: ServiceContext, generation_id: str) -> None:
    """Past its model's deadline: cancel at the provider (best effort), end as expired, release the hold."""
    generation = await _load(ctx, generation_id)
    now = ctx.clock()
    if generation is None or generation.deadline_at >= now:
        return
    # The expiry is recorded before the provider is asked to cancel: the provider's own "canceled" answer (a
    # webhook or a concurrent poll) then meets a job that has already ended and cannot turn it into a cancel.
    ended = await ctx.db.write(
        lambda tx: fail(
            tx,
            generation_id,
            now=now,
            code="deadline_exceeded",
            target=_S.EXPIRED,
            message="The provider did not finish in time; your credits were returned.",
        )
    )
    if ended is None:
        return
    await discard_recorded_staging(ctx, generation.raw_provider)
    if generation.provider_job_id:
        try:
            await routing.bound_provider(ctx, generation).cancel(generation.provider_job_id)
        except Exception:  # noqa: BLE001 - expiry must not depend on the provider answering
            log.warning("cancel at provider failed for expired %s", generation_id)


async def resume_all(ctx: ServiceContext) -> int:
    """At start-up: drop leases held by processes that no longer exist, so every active job is re-driven."""
    return await ctx.db.write(generation_queries.drop_all_leases)


def now_plus(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)
