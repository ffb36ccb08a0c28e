"""Generation use cases for users: estimate, create (hold + insert in one transaction), read, cancel, retry."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from reelgate.db.errors import IntegrityViolation, UniqueViolation
from reelgate.db.queries import generations as generation_queries
from reelgate.db.queries import idempotency
from reelgate.db.queries import projects as project_queries
from reelgate.db.queries.ledger import NO_IN_FLIGHT_CAP, refuse_hold
from reelgate.db.queries.submissions import submit_generation
from reelgate.db.queries.uploads import owns_upload
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain import estimates, tiers
from reelgate.domain.catalog import GenerationInput, ModelSpec, ResolvedRequest, resolve_request
from reelgate.domain.errors import (
    Conflict,
    IdempotencyConflict,
    ModelUnavailable,
    NotFound,
    RateLimited,
    ReelgateError,
    ValidationFailed,
)
from reelgate.domain.ids import new_id
from reelgate.domain.jobs import TERMINAL_STATES, GenerationStatus
from reelgate.domain.pricing import Quote, quote
from reelgate.domain.tiers import Constraints
from reelgate.services import budgets, limits, mail, projects, prompting, routing, storage_quota, uploads
from reelgate.services.context import ServiceContext
from reelgate.services.generate_limit import GenerateLimit
from reelgate.services.member_caps import check_member_cap
from reelgate.services.org_wallet import paying_account
from reelgate.services.safe_fetch import UnsafeURL, check_url
from reelgate.services.text_jobs import text_params
from reelgate.services.transitions import transition

log = logging.getLogger("reelgate.generations")
EXPECTED_TIME_TTL_SECONDS = 60.0
RECENT_COMPLETIONS = 20  # the expected time is the median of this many latest successful jobs
_RETRYABLE = frozenset({GenerationStatus.FAILED, GenerationStatus.CANCELED, GenerationStatus.EXPIRED})


@dataclass(frozen=True)
class GenerationOrder:
    """A user's request, as the API received it (before validation against the model)."""

    model: str
    prompt: str | None = None
    negative_prompt: str | None = None
    duration: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    seed: int | None = None
    start_image: str | None = None
    end_image: str | None = None
    audio: bool = False
    enhance_prompt: bool = False
    project_id: str | None = None
    callback_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # Smart routing (`model` naming a tier or `auto`): the pick may cost at most `max_credits` (which also caps
    # a named model's quote) and, when no resolution is asked for, offer at least `min_resolution`.
    max_credits: int | None = None
    min_resolution: str | None = None
    # The organization whose wallet pays (the caller must belong to it); None: the caller's own account.
    organization: str | None = None
    # Where start/end images given by URL came from, once they are uploads: the request as the client sent it
    # (for idempotency, a replay carries the URL again, never the upload id it became).
    image_urls: tuple[str | None, str | None] = (None, None)

    def fingerprint(self) -> str:
        """Identifies the request body for idempotency: same key + different body is a conflict."""
        body = dict(self.__dict__)
        start_url, end_url = body.pop("image_urls")
        body["start_image"] = start_url or body["start_image"]
        body["end_image"] = end_url or body["end_image"]
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def images_by_url(self) -> bool:
        return any(value is not None and uploads.is_image_url(value) for value in (self.start_image, self.end_image))


@dataclass(frozen=True)
class Estimate:
    spec: ModelSpec
    request: ResolvedRequest
    quote: Quote
    available: bool


def model_available(ctx: ServiceContext, spec: ModelSpec) -> tuple[bool, str]:
    """Whether jobs can be sold for this model now, and why not."""
    if not spec.accepting_jobs(ctx.clock().date()):
        return False, "This model has reached its sunset date."
    if spec.provider not in ctx.providers.names():
        return False, f"Provider {spec.provider!r} is not supported."
    if not ctx.providers.get(spec.provider).configured():
        return False, f"Provider {spec.provider!r} has no credentials configured."
    return True, ""


def available_model_ids(ctx: ServiceContext) -> frozenset[str]:
    """The models that can take jobs now: what smart routing may pick from."""
    return frozenset(spec.id for spec in ctx.catalog.models if model_available(ctx, spec)[0])


def estimate(
    ctx: ServiceContext,
    given: GenerationInput,
    model_id: str,
    *,
    require_prompt: bool = False,
    constraints: Constraints | None = None,
) -> Estimate:
    """The single quote used by /estimate and by the hold, so users pay what they were shown. `model_id` may
    name a tier or `auto`: the cheapest available model that fits is picked, and the quote is that model's."""
    constraints = constraints or Constraints()
    if tiers.is_choice(ctx.catalog, model_id):
        pick = tiers.pick_model(
            ctx.catalog,
            model_id,
            given,
            available=available_model_ids(ctx),
            constraints=constraints,
            require_prompt=require_prompt,
        )
        return Estimate(spec=pick.spec, request=pick.request, quote=pick.quote, available=True)
    if constraints.min_resolution is not None:
        raise ValidationFailed("min_resolution", "min_resolution applies when `model` names a tier or auto")
    spec = ctx.catalog.get(model_id)
    resolved = resolve_request(spec, given, require_prompt=require_prompt)
    priced = quote(spec, resolved)
    if constraints.max_credits is not None and priced.total > constraints.max_credits:
        raise ValidationFailed(
            "max_credits",
            f"{spec.id} costs {priced.total} credits for this request, over max_credits ({constraints.max_credits})",
        )
    available, _ = model_available(ctx, spec)
    return Estimate(spec=spec, request=resolved, quote=priced, available=available)


async def expected_seconds(ctx: ServiceContext, spec: ModelSpec) -> int | None:
    """How long a job of this model is expected to take: the median of its latest completions, else the
    catalog's figure. Read at most once a minute per model and process, so creates pay no query for it."""
    now = time.monotonic()
    cached = ctx.expected_times.get(spec.id)
    if cached is not None and now - cached[0] < EXPECTED_TIME_TTL_SECONDS:
        return cached[1]
    recent = await ctx.db.read(
        lambda tx: generation_queries.recent_completion_seconds(tx, spec.id, limit=RECENT_COMPLETIONS)
    )
    seconds = estimates.expected_seconds(spec, recent)
    ctx.expected_times[spec.id] = (now, seconds)
    return seconds


def constraints_of(order: GenerationOrder) -> Constraints:
    return Constraints(max_credits=order.max_credits, min_resolution=order.min_resolution)


def _input_of(order: GenerationOrder) -> GenerationInput:
    return GenerationInput(
        prompt=order.prompt,
        negative_prompt=order.negative_prompt,
        duration=order.duration,
        resolution=order.resolution,
        aspect_ratio=order.aspect_ratio,
        seed=order.seed,
        start_image=order.start_image is not None,
        end_image=order.end_image is not None,
        audio=order.audio,
        enhance_prompt=order.enhance_prompt,
        options=dict(order.options),
    )


def _check_uploads(tx: Tx, user_id: str, order: GenerationOrder) -> None:
    """Uploads must belong to the caller; another user's id reads as not found."""
    for field_name in ("start_image", "end_image"):
        upload_id = getattr(order, field_name)
        if upload_id is not None and not owns_upload(tx, user_id, upload_id):
            raise NotFound(f"Upload {upload_id!r} not found.", details={"field": field_name})


def _check_callback(ctx: ServiceContext, url: str | None) -> None:
    if url is None:
        return
    try:
        check_url(url, allow_hosts=ctx.config.fetch_allow_hosts)
    except UnsafeURL as exc:
        raise ValidationFailed("callback_url", f"callback_url is not allowed: {exc}") from exc


async def create_generation(
    ctx: ServiceContext,
    user_id: str,
    order: GenerationOrder,
    *,
    idempotency_key: str | None = None,
    retry_of: str | None = None,
) -> tuple[Generation, bool]:
    """Validates, quotes, and in ONE transaction records the idempotency key, holds the credits and
    inserts the generation. Returns (generation, replayed)."""
    quoted = estimate(ctx, _input_of(order), order.model, require_prompt=True, constraints=constraints_of(order))
    available, why = model_available(ctx, quoted.spec)
    if not available:
        raise ModelUnavailable(why, details={"model": order.model})
    if quoted.request.enhance_prompt:
        prompting.check_enhancer(ctx)
    _check_callback(ctx, order.callback_url)
    limit = ctx.generate_limit
    replay = None if limit is None else await _replay_if_limited(ctx, limit, user_id, idempotency_key, order)
    if replay is None and order.images_by_url:
        # Answered before anything is fetched: a replay stores no second copy of its images.
        replay = await _replay_of(ctx, user_id, idempotency_key, order)
        order = order if replay is not None else await _images_fetched(ctx, user_id, order)
    if replay is not None:
        return replay, True
    now = ctx.clock()

    def submit(tx: Tx) -> tuple[Generation, bool]:
        generation = _new_generation(ctx, user_id, "", order, quoted, now)
        generation.account_id = paying_account(tx, user_id, order.organization)
        generation.retry_of = retry_of
        generation, replayed = _record_submission(ctx, tx, generation, order, idempotency_key, now)
        if not replayed:
            ctx.wake_with_commit(tx, generation.id)
        return generation, replayed

    generation, replayed = await _submitted(ctx, submit, user_id, idempotency_key, order)
    if not replayed:
        ctx.wake_after_commit(generation.id)
        if limit is not None:
            await limit.count(user_id)
    return generation, replayed


async def _submitted(
    ctx: ServiceContext,
    submit: Callable[[Tx], tuple[Generation, bool]],
    user_id: str,
    key: str | None,
    order: GenerationOrder,
) -> tuple[Generation, bool]:
    """Runs the submit's transaction, answering the two races it can lose on PostgreSQL as the request deserves."""
    try:
        return await ctx.db.write(submit, grouped=True)
    except IntegrityViolation:
        # The project was deleted while this submit waited for its row: nothing was written.
        if order.project_id is None:
            raise
        raise NotFound("Project not found.", details={"field": "project_id"}) from None
    except UniqueViolation:
        # A concurrent twin with the same key committed first; answer with its generation.
        if key is None:
            raise
        replay = await _replay_of(ctx, user_id, key, order)
        if replay is None:
            raise
        return replay, True


async def _replay_if_limited(
    ctx: ServiceContext, limit: GenerateLimit, user_id: str, key: str | None, order: GenerationOrder
) -> Generation | None:
    """None when the generation limit lets one more through. Over it, a replay of a request already recorded
    is answered as always (it starts nothing new); anything else is refused with 429."""
    try:
        await limit.check(user_id)
    except RateLimited:
        replay = await _replay_of(ctx, user_id, key, order)
        if replay is None:
            raise
        return replay
    return None


async def _replay_of(ctx: ServiceContext, user_id: str, key: str | None, order: GenerationOrder) -> Generation | None:
    return None if key is None else await ctx.db.read(lambda tx: _replay(ctx, tx, user_id, key, order))


async def _images_fetched(ctx: ServiceContext, user_id: str, order: GenerationOrder) -> GenerationOrder:
    """Start and end images given by URL become the user's uploads (fetched through the SSRF guard and checked
    by content like any upload); the order keeps the URLs for its fingerprint."""
    start, end = order.start_image, order.end_image
    if start is not None and uploads.is_image_url(start):
        start = (await uploads.upload_from_url(ctx, user_id, start, "start_image")).id
    if end is not None and uploads.is_image_url(end):
        end = (await uploads.upload_from_url(ctx, user_id, end, "end_image")).id
    urls = (
        order.start_image if start != order.start_image else None,
        order.end_image if end != order.end_image else None,
    )
    return replace(order, start_image=start, end_image=end, image_urls=urls)


def _record_submission(
    ctx: ServiceContext, tx: Tx, generation: Generation, order: GenerationOrder, key: str | None, now: datetime
) -> tuple[Generation, bool]:
    """The submit's transaction: one hop to the database; on PostgreSQL the write itself is one statement
    (db/queries/submissions.py), whose hold takes the account's row lock only until the COMMIT. Returns the
    generation and whether it is a replay of the key's first request."""
    user_id, account_id, total = generation.user_id, generation.account_id, generation.credits_held
    _check_uploads(tx, user_id, order)
    cap = ctx.config.max_in_flight or NO_IN_FLIGHT_CAP
    project_id = order.project_id
    for _ in range(3):  # a retry only after freeing an expired key or making the user's first project
        done = submit_generation(
            tx, generation, key=key, request_hash=order.fingerprint(), project_id=project_id, max_in_flight=cap
        )
        # A full storage refuses new work, replays included; raising here undoes what the write did.
        quota_mb = storage_quota.applicable_quota_mb(ctx.config.storage_quota_mb, done.quota_override_mb)
        storage_quota.check_room_under(tx, quota_mb, user_id, 0)
        if done.key_taken:
            assert key is not None
            replay = _claim_key(ctx, tx, user_id, key, order, now)
            if replay is not None:
                return replay, True
            continue  # the key had expired and was freed
        key = None  # recorded in this transaction
        if done.project_id is None:
            if project_id is not None:
                raise _not_placed(tx, user_id, project_id)
            project_id = projects.default_project_in(tx, user_id)
            continue
        if not done.held:
            refuse_hold(tx, account_id, total, cap)
        generation.project_id = done.project_id
        if done.budget is not None:  # most projects have none: no further statement for them
            budgets.check_in(tx, done.project_id, total)
        limits.check_spend_caps(ctx, tx, user_id, total, now)
        if account_id != user_id:
            check_member_cap(tx, account_id, user_id, total, now)
        # The low-balance email is about the caller's own account; an organization's wallet sends none.
        elif mail.enabled(ctx):
            threshold = ctx.config.low_credit_threshold
            mail.queue_low_balance(tx, user_id, spent=total, threshold=threshold, reference=generation.id, now=now)
        return generation, False
    raise RuntimeError("submission could not be recorded")


def _not_placed(tx: Tx, user_id: str, project_id: str) -> ReelgateError:
    """Why the submit's insert found no project to go into (read only on this failure path): an organization's
    project the caller belongs to but did not pay from that organization's wallet, or no project of theirs."""
    project = project_queries.project_of_user(tx, user_id, project_id)
    if project is not None and project.organization_id is not None:
        return ValidationFailed(
            "organization",
            "This project belongs to an organization: generations go into it on that organization's wallet. "
            f'Pass "organization": "{project.organization_id}".',
            allowed=[project.organization_id],
        )
    return NotFound("Project not found.", details={"field": "project_id"})


def _key_conflict(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        "This Idempotency-Key was already used with a different request body.", details={"key": key}
    )


def _claim_key(
    ctx: ServiceContext, tx: Tx, user_id: str, key: str, order: GenerationOrder, now: datetime
) -> Generation | None:
    """The key was used before: the generation it made (Stripe's semantics: the first response is replayed), or
    None when it is older than the TTL and has been freed for this request."""
    record = idempotency.key_record(tx, user_id, key)
    if record is None:  # the twin that held it rolled back meanwhile: the next attempt takes it
        return None
    if record.created_at < now - timedelta(hours=ctx.config.idempotency_ttl_hours):
        idempotency.forget_key(tx, user_id, key)
        return None
    if record.request_hash != order.fingerprint():
        raise _key_conflict(key)
    replay = generation_queries.generation_by_id(tx, record.generation_id) if record.generation_id else None
    if replay is None:
        raise UniqueViolation("idempotency key of a generation that no longer exists")
    return replay


def _new_generation(
    ctx: ServiceContext, user_id: str, project_id: str, order: GenerationOrder, quoted: Estimate, now: datetime
) -> Generation:
    spec, resolved = quoted.spec, quoted.request
    params = {
        "duration": resolved.duration,
        "resolution": resolved.resolution,
        "aspect_ratio": resolved.aspect_ratio,
        "width": resolved.width,
        "height": resolved.height,
        "seed": resolved.seed,
        "audio": resolved.audio,
        "enhance_prompt": resolved.enhance_prompt,
        "options": dict(resolved.options),
    }
    if spec.kind == "text":
        params["text"] = text_params(spec)
    return Generation(
        id=new_id("gen"),
        user_id=user_id,
        project_id=project_id,
        model=spec.id,
        provider=spec.provider,
        provider_model=spec.provider_model,
        kind=spec.kind,
        prompt=resolved.prompt or "",
        negative_prompt=resolved.negative_prompt,
        params=params,
        start_upload_id=order.start_image,
        end_upload_id=order.end_image,
        quote_total=quoted.quote.total,
        quote_breakdown=dict(quoted.quote.breakdown),
        credits_held=quoted.quote.total,
        webhook_token=None,  # its webhook address is signed instead (services/webhook_links.py)
        deadline_at=now + timedelta(seconds=spec.deadline_seconds),
        callback_url=order.callback_url,
        retry_of=None,
        created_at=now,
        updated_at=now,
        account_id=user_id,
        **copy.deepcopy(generation_queries.FRESH),
    )


def _replay(ctx: ServiceContext, tx: Tx, user_id: str, key: str, order: GenerationOrder) -> Generation | None:
    record = idempotency.key_record(tx, user_id, key)
    if record is None or record.created_at < ctx.clock() - timedelta(hours=ctx.config.idempotency_ttl_hours):
        return None
    if record.request_hash != order.fingerprint():
        raise _key_conflict(key)
    return generation_queries.generation_by_id(tx, record.generation_id) if record.generation_id else None


async def get_generation(ctx: ServiceContext, user_id: str, generation_id: str) -> Generation:
    generation = await ctx.db.read(lambda tx: generation_queries.generation_of_user(tx, user_id, generation_id))
    if generation is None:
        raise NotFound("Generation not found.")
    return generation


async def viewable_generation(ctx: ServiceContext, user_id: str, generation_id: str) -> Generation:
    """A generation the user may look at and download: their own, or one an organization they own or administer
    paid for (a manager sees the team's work; it stays its maker's to cancel, retry or delete). The second lookup
    runs only when the first misses, so a user's own reads stay one indexed statement."""

    def read(tx: Tx) -> Generation | None:
        own = generation_queries.generation_of_user(tx, user_id, generation_id)
        return own if own is not None else generation_queries.generation_managed_by(tx, user_id, generation_id)

    generation = await ctx.db.read(read)
    if generation is None:
        raise NotFound("Generation not found.")
    return generation


@dataclass(frozen=True)
class GenerationFilter:
    status: str | None = None
    project_id: str | None = None
    model: str | None = None
    favorite: bool | None = None
    kind: str | None = None  # "image": the studio's picture gallery


async def output_text(ctx: ServiceContext, user_id: str, generation_id: str) -> str:
    """The stored text of the user's finished text generation (404 for another user's, 409 before it is done)."""
    generation = await get_generation(ctx, user_id, generation_id)
    if generation.kind != "text" or generation.status != GenerationStatus.SUCCEEDED.value or not generation.output_key:
        raise Conflict("This generation has no text.", code="not_ready", details={"status": generation.status})
    data = await ctx.store.read_bytes(generation.output_key)
    return data.decode("utf-8", errors="replace")


async def list_generations(
    ctx: ServiceContext, user_id: str, *, filters: GenerationFilter, limit: int = 20, cursor: str | None = None
) -> tuple[list[Generation], str | None]:
    """Newest first. The cursor is the last id seen: ids are time-ordered, so this is keyset pagination."""

    def page(tx: Tx) -> list[Generation]:
        return generation_queries.generations_of_user(
            tx,
            user_id,
            status=filters.status,
            project_id=filters.project_id,
            model=filters.model,
            kind=filters.kind,
            favorite=filters.favorite,
            before_id=cursor,
            limit=limit + 1,
        )

    rows = await ctx.db.read(page)
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


async def cancel_generation(ctx: ServiceContext, user_id: str, generation_id: str) -> Generation:
    """Cancels at the provider (best effort), then ends the job and releases the hold."""
    generation = await get_generation(ctx, user_id, generation_id)
    if GenerationStatus(generation.status) in TERMINAL_STATES:
        raise Conflict(f"This generation already {generation.status}.", details={"status": generation.status})
    if generation.provider_job_id:
        provider = routing.bound_provider(ctx, generation)
        try:
            await provider.cancel(generation.provider_job_id)
        except Exception:  # noqa: BLE001 - the job ends for the user either way; polling stops with it
            log.warning("provider cancel failed for %s", generation_id, exc_info=True)
    ended = await ctx.db.write(
        lambda tx: transition(
            tx,
            generation_id,
            GenerationStatus.CANCELED,
            now=ctx.clock(),
            error_code="canceled",
            error_message="Canceled by the user.",
        )
    )
    if ended is None:
        # It finished while we were canceling; report what actually happened.
        return await get_generation(ctx, user_id, generation_id)
    return ended


def order_from_generation(generation: Generation, *, prompt: str | None = None) -> GenerationOrder:
    """The order that made `generation` (optionally with a new prompt): for retries and remixes."""
    params = generation.params or {}
    if generation.kind == "text":  # its neutral duration and size were never asked for, and would be refused
        params = {key: value for key, value in params.items() if key not in ("duration", "resolution", "aspect_ratio")}
    return GenerationOrder(
        model=generation.model,
        prompt=prompt if prompt is not None else (generation.prompt or None),
        negative_prompt=generation.negative_prompt,
        duration=params.get("duration"),
        resolution=params.get("resolution"),
        aspect_ratio=params.get("aspect_ratio"),
        seed=params.get("seed"),
        start_image=generation.start_upload_id,
        end_image=generation.end_upload_id,
        audio=bool(params.get("audio")),
        enhance_prompt=bool(params.get("enhance_prompt")),
        project_id=generation.project_id,
        callback_url=generation.callback_url,
        options=dict(params.get("options") or {}),
        organization=generation.account_id if generation.account_id != generation.user_id else None,
    )


async def retry_generation(
    ctx: ServiceContext, user_id: str, generation_id: str, *, idempotency_key: str | None = None
) -> tuple[Generation, bool]:
    """Starts a new generation with the same settings (a new quote and hold); the old one stays as it was.

    One retry of a generation runs at a time: while it is unfinished, retrying again (a double click, a client
    resending) answers with that retry instead of charging for another; a unique index settles concurrent
    retries. An Idempotency-Key replays its first answer as on create. Returns (generation, replayed)."""
    old = await get_generation(ctx, user_id, generation_id)
    if GenerationStatus(old.status) not in _RETRYABLE:
        raise Conflict("Only failed, canceled or expired generations can be retried.", details={"status": old.status})
    if idempotency_key is None:
        running = await ctx.db.read(lambda tx: generation_queries.active_retry_of(tx, user_id, old.id))
        if running is not None:
            return running, True
    order = order_from_generation(old)
    for attempt in range(20):
        try:
            return await create_generation(ctx, user_id, order, idempotency_key=idempotency_key, retry_of=old.id)
        except UniqueViolation:
            # Another retry of this job went in first. Read it once its transaction is durable (SQLite's writer
            # commits a batch of transactions together); if it has finished meanwhile, this retry may run.
            running = await ctx.db.read(lambda tx: generation_queries.active_retry_of(tx, user_id, old.id))
            if running is not None:
                return running, True
            await asyncio.sleep(0.01 * (attempt + 1))
    raise Conflict("This generation is being retried right now; try again in a moment.")
