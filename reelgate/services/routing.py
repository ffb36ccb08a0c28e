"""Routing: which model and provider account serve a job, trying the catalog's fallbacks in order.

Rules (the price is never re-quoted: the user pays the quote they accepted, whichever route serves it,
and the operator's margin absorbs any difference in provider cost):
- Routes are the chosen model, then its `fallbacks` in catalog order. A fallback is used only when its
  provider is configured, it is before its sunset, and it can serve the job's request as the catalog's
  fallback map changes it (`domain.fallbacks.fallback_request`); the provider then receives that request.
- When the routes span more than one provider, providers that are degraded (out of credit) or fail a
  health check (cached for HEALTH_TTL seconds) are skipped. When nothing is left, the chosen model is
  tried anyway, so a job without an alternative behaves as it would without routing. Health and
  out-of-credit marks live in each process (each worker learns them on its own).
- During one submit step, a refusal for provider credit or capacity moves on to the next route; so does
  RetryLater once the job's submit attempts are used up. Any other refusal fails the job.
- Before the provider is called, the generation records the route (`served_model`, `provider`,
  `provider_model`) and the provider account (`provider_account`). A submit whose outcome is unknown
  pins the job to that route: resending elsewhere could run it twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reelgate.db.queries.generations import bind_route
from reelgate.db.queries.provider_rates import take_request_slot
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.catalog import Fallback, ModelSpec, ResolvedRequest, resolve_request
from reelgate.domain.errors import NotFound, ValidationFailed
from reelgate.domain.fallbacks import fallback_request
from reelgate.providers.base import (
    HealthReport,
    JobRequest,
    Provider,
    ProviderRejected,
    RetryLater,
    SubmitOutcomeUnknown,
    SubmitResult,
)
from reelgate.services import prompting
from reelgate.services.context import ServiceContext
from reelgate.services.job_inputs import asked_input

log = logging.getLogger("reelgate.routing")

# A health check is a network call: one per provider per minute at most, and never a slow one.
HEALTH_TTL = 60.0
HEALTH_TIMEOUT = 5.0
OUT_OF_CREDIT = "out of provider credit"
# Refusals that say "not here, not now" rather than "not this request": another route may serve it.
REROUTABLE = frozenset({ProviderRejected.OUT_OF_CREDIT, ProviderRejected.CAPACITY})


@dataclass(frozen=True)
class Route:
    spec: ModelSpec
    provider: Provider
    account: dict[str, str | None]
    # What a fallback receives when its map changed the request (None: the job's own parameters).
    request: ResolvedRequest | None = None


@dataclass(frozen=True)
class Attempt:
    """How a submit step ended: `result` when a route accepted the job, else the last route's error."""

    generation: Generation
    provider: Provider
    result: SubmitResult | None = None
    error: RetryLater | ProviderRejected | SubmitOutcomeUnknown | None = None
    untried: bool = False  # no provider was called: every route was waiting for its place in a request rate


def account_fingerprint(generation: Generation) -> str | None:
    """The fingerprint of the provider account the job is bound to; None when it was never bound."""
    fingerprint = (generation.provider_account or {}).get("fingerprint")
    return fingerprint if isinstance(fingerprint, str) else None


def bound_provider(ctx: ServiceContext, generation: Generation) -> Provider:
    """The adapter for the account the job was submitted with (status, cancel, download, webhooks)."""
    return ctx.providers.get_bound(generation.provider, account_fingerprint(generation))


def _usable(ctx: ServiceContext, spec: ModelSpec) -> bool:
    if spec.provider not in ctx.providers.names() or not ctx.providers.get(spec.provider).configured():
        return False
    return spec.accepting_jobs(ctx.clock().date())


def _source_request(primary: ModelSpec, generation: Generation) -> ResolvedRequest | None:
    try:
        return resolve_request(primary, asked_input(generation), require_prompt=True)
    except ValidationFailed:
        return None  # the catalog changed since the job was accepted: no fallback can be proven to fit


def _served_request(
    ctx: ServiceContext, primary: ModelSpec, source: ResolvedRequest | None, fallback: Fallback
) -> tuple[ModelSpec, ResolvedRequest] | None:
    """The fallback and the request it would receive, when it can serve this job now."""
    try:
        target = ctx.catalog.get(fallback.model)
    except NotFound:
        return None
    if source is None or not _usable(ctx, target):
        return None
    served = fallback_request(primary, source, fallback, target)
    return None if served is None else (target, served)


def _route(ctx: ServiceContext, spec: ModelSpec, request: ResolvedRequest | None = None) -> Route:
    return Route(spec, ctx.providers.get(spec.provider), ctx.providers.account(spec.provider), request)


async def provider_healthy(ctx: ServiceContext, name: str) -> bool:
    """Recent health, checked at most every HEALTH_TTL seconds; a healthy check lifts an out-of-credit mark
    (the next submit proves it either way, and a credit refusal is immediate and free)."""
    now = time.monotonic()
    cached = ctx.provider_health.get(name)
    if cached is None or now - cached[0] > HEALTH_TTL:
        try:
            report = await asyncio.wait_for(ctx.providers.get(name).health(), HEALTH_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - a failing check is an unhealthy provider, not a failed job
            report = HealthReport(healthy=False, detail=f"health check failed ({type(exc).__name__})")
        ctx.provider_health[name] = cached = (now, report)
        if report.out_of_credit:
            ctx.degraded_providers[name] = OUT_OF_CREDIT
        elif report.healthy and ctx.degraded_providers.get(name) == OUT_OF_CREDIT:
            ctx.degraded_providers.pop(name, None)
        if not report.healthy:
            log.warning("provider %s is unhealthy (%s): routing around it", name, report.detail)
    return cached[1].healthy and name not in ctx.degraded_providers


def _pinned(ctx: ServiceContext, generation: Generation) -> Route | None:
    """A route a submit may already have reached: only that route may be tried again."""
    if generation.served_model is None or generation.provider_job_id is not None:
        return None
    try:
        spec = ctx.catalog.get(generation.served_model)
    except NotFound:
        return None
    request = _pinned_request(ctx, generation, spec)
    return Route(spec, bound_provider(ctx, generation), dict(generation.provider_account or {}), request)


def _pinned_request(ctx: ServiceContext, generation: Generation, spec: ModelSpec) -> ResolvedRequest | None:
    """A pinned fallback is sent the same request as before: its map applied to the job again."""
    if spec.id == generation.model:
        return None
    try:
        primary = ctx.catalog.get(generation.model)
    except NotFound:
        return None
    fallback = next((f for f in primary.fallbacks if f.model == spec.id), None)
    source = _source_request(primary, generation)
    if fallback is None or source is None:
        return None
    return fallback_request(primary, source, fallback, spec)


async def choose_route(ctx: ServiceContext, generation: Generation) -> list[Route]:
    """The routes to try, best first; never empty."""
    pinned = _pinned(ctx, generation)
    if pinned is not None:
        return [pinned]
    primary = ctx.catalog.get(generation.model)
    source = _source_request(primary, generation)
    candidates: list[tuple[ModelSpec, ResolvedRequest | None]] = [(primary, None)]
    for fallback in primary.fallbacks:
        served = _served_request(ctx, primary, source, fallback)
        if served is not None:
            candidates.append(served)
    if len({spec.provider for spec, _ in candidates}) > 1:
        names = dict.fromkeys(spec.provider for spec, _ in candidates)
        healthy = {name: await provider_healthy(ctx, name) for name in names}
        candidates = [c for c in candidates if healthy[c[0].provider]] or [(primary, None)]
    return [_route(ctx, spec, request) for spec, request in candidates]


def _as_served(request: JobRequest, served: ResolvedRequest | None) -> JobRequest:
    """The job request with a fallback's mapped parameters in place of the job's own."""
    if served is None:
        return request
    return dataclasses.replace(
        request,
        duration=served.duration,
        resolution=served.resolution,
        aspect_ratio=served.aspect_ratio,
        width=served.width,
        height=served.height,
        negative_prompt=served.negative_prompt,
        seed=served.seed,
        options=dict(served.options),
    )


async def _bind(ctx: ServiceContext, generation: Generation, route: Route, *, pace: bool) -> Generation | float | None:
    """Records the route before the call, so a webhook racing the answer finds the right provider. With `pace`,
    first takes a place in the provider's request rate in the same transaction; over the rate, binds nothing and
    returns the seconds until a place frees."""
    rate = ctx.config.provider_rate_limits.get(route.spec.provider) if pace else None

    def bind(tx: Tx) -> Generation | float | None:
        if rate is not None:
            wait = take_request_slot(tx, route.spec.provider, rate, ctx.clock)
            if wait is not None:
                return wait
        return bind_route(
            tx,
            generation.id,
            provider=route.spec.provider,
            provider_model=route.spec.provider_model,
            served_model=route.spec.id,
            provider_account=route.account,
            now=ctx.clock(),
        )

    return await ctx.db.write(bind)


class _Pacing:
    """Which routes of one submit step take a place in their provider's request rate, and what the step comes to
    when a route had to wait for one."""

    def __init__(self, ctx: ServiceContext, generation: Generation) -> None:
        self.ctx = ctx
        # The submit step already took a place for the provider the job was bound to (services/pipeline.py);
        # a request to any other paced provider, or a second one to that provider, takes its own.
        self.paid = {generation.provider} & set(ctx.config.provider_rate_limits)
        self.soonest: float | None = None  # when the first route skipped for its rate may go

    def needs_place(self, provider: str) -> bool:
        needed = provider not in self.paid
        self.paid.discard(provider)
        return needed

    def skipped(self, wait: float) -> None:
        self.soonest = wait if self.soonest is None else min(self.soonest, wait)

    def outcome(self, generation: Generation, attempt: Attempt | None) -> Attempt | None:
        """With a route left waiting for its rate, the job tries again when that place frees rather than fail on
        the other routes' "not here, not now"; when no provider was called at all, nothing was refused."""
        if self.soonest is None:
            return attempt
        wait = RetryLater("the provider is at its request rate", after=self.soonest)
        provider = self.ctx.providers.get(generation.provider)
        return Attempt(generation, provider, error=wait, untried=attempt is None)


def _note_refusal(ctx: ServiceContext, route: Route, exc: ProviderRejected, out_of_credit: set[str]) -> None:
    if exc.code == ProviderRejected.OUT_OF_CREDIT:
        out_of_credit.add(route.spec.provider)
        ctx.degraded_providers[route.spec.provider] = OUT_OF_CREDIT
        # Counts as a fresh failed check, so the mark holds a full HEALTH_TTL before the account is probed again.
        report = HealthReport(healthy=False, detail=OUT_OF_CREDIT, out_of_credit=True)
        ctx.provider_health[route.spec.provider] = (time.monotonic(), report)
    log.warning("route %s (%s) refused: %s; trying the next one", route.spec.id, route.spec.provider, exc)


async def submit_routed(
    ctx: ServiceContext,
    generation: Generation,
    build_request: Callable[[ServiceContext, Generation], Awaitable[JobRequest]],
) -> Attempt | None:
    """Enhances the prompt if asked, then submits along the routes. None when the job ended meanwhile."""
    try:
        generation = await prompting.enhance_once(ctx, generation)
    except (RetryLater, ProviderRejected) as exc:
        return Attempt(generation, ctx.providers.get(generation.provider), error=exc)
    routes = await choose_route(ctx, generation)
    attempt: Attempt | None = None
    out_of_credit: set[str] = set()  # an account without credit refuses every model it serves
    pacing = _Pacing(ctx, generation)
    for index, route in enumerate(routes):
        if route.spec.provider in out_of_credit:
            continue
        bound = await _bind(ctx, generation, route, pace=pacing.needs_place(route.spec.provider))
        if isinstance(bound, float):
            # Over our own pace for this provider: not a refusal by it (no mark), so the next route may serve.
            pacing.skipped(bound)
            continue
        if bound is None:
            return None
        generation, last = bound, index == len(routes) - 1
        try:
            result = await route.provider.submit(_as_served(await build_request(ctx, generation), route.request))
        except RetryLater as exc:
            attempt = Attempt(generation, route.provider, error=exc)
            if last or generation.submit_attempts < ctx.config.max_submit_attempts:
                return attempt
            continue
        except ProviderRejected as exc:
            attempt = Attempt(generation, route.provider, error=exc)
            if last or exc.code not in REROUTABLE:
                return attempt
            _note_refusal(ctx, route, exc, out_of_credit)
            continue
        except SubmitOutcomeUnknown as exc:
            return Attempt(generation, route.provider, error=exc)
        if route.spec.id != generation.model:
            log.info("generation %s served by fallback %s", generation.id, route.spec.id)
        return Attempt(generation, route.provider, result=result)
    return pacing.outcome(generation, attempt)
