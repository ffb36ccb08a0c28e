"""Routing: which model and provider account serve a job, trying the catalog's fallbacks in order.

Rules (the price is never re-quoted: the user pays the quote they accepted, whichever route serves it,
and the operator's margin absorbs any difference in provider cost):
- Routes are the chosen model, then its `fallbacks` in catalog order. A fallback is used only when its
  provider is configured, it is before its sunset, and the job's request (options included) fits it.
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
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reelgate.db.queries.generations import bind_route
from reelgate.db.records import Generation
from reelgate.domain.catalog import GenerationInput, ModelSpec, resolve_request
from reelgate.domain.errors import NotFound, ValidationFailed
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


@dataclass(frozen=True)
class Attempt:
    """How a submit step ended: `result` when a route accepted the job, else the last route's error."""

    generation: Generation
    provider: Provider
    result: SubmitResult | None = None
    error: RetryLater | ProviderRejected | SubmitOutcomeUnknown | None = None


def bound_provider(ctx: ServiceContext, generation: Generation) -> Provider:
    """The adapter for the account the job was submitted with (status, cancel, download, webhooks)."""
    fingerprint = (generation.provider_account or {}).get("fingerprint")
    return ctx.providers.get_bound(generation.provider, fingerprint if isinstance(fingerprint, str) else None)


def _given(generation: Generation) -> GenerationInput:
    params = generation.params or {}
    return GenerationInput(
        prompt=generation.prompt,
        negative_prompt=generation.negative_prompt,
        duration=params.get("duration"),
        resolution=params.get("resolution"),
        aspect_ratio=params.get("aspect_ratio"),
        seed=params.get("seed"),
        start_image=generation.start_upload_id is not None,
        end_image=generation.end_upload_id is not None,
        audio=bool(params.get("audio")),
        # Enhancement is done here (Poe), not by the provider: a fallback need not offer it.
        enhance_prompt=False,
        options=dict(params.get("options") or {}),
    )


def _fits(ctx: ServiceContext, spec: ModelSpec, generation: Generation) -> bool:
    if spec.provider not in ctx.providers.names() or not ctx.providers.get(spec.provider).configured():
        return False
    if not spec.accepting_jobs(ctx.clock().date()):
        return False
    try:
        # The whole request must fit, options included: a "pro" order is never served by a model without it.
        resolve_request(spec, _given(generation), require_prompt=True)
    except ValidationFailed:
        return False
    return True


def _route(ctx: ServiceContext, spec: ModelSpec) -> Route:
    return Route(spec, ctx.providers.get(spec.provider), ctx.providers.account(spec.provider))


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
    return Route(spec, bound_provider(ctx, generation), dict(generation.provider_account or {}))


async def choose_route(ctx: ServiceContext, generation: Generation) -> list[Route]:
    """The routes to try, best first; never empty."""
    pinned = _pinned(ctx, generation)
    if pinned is not None:
        return [pinned]
    primary = ctx.catalog.get(generation.model)
    candidates = [primary]
    for fallback_id in primary.fallbacks:
        try:
            candidates.append(ctx.catalog.get(fallback_id))
        except NotFound:
            continue
    usable = [spec for spec in candidates if spec is primary or _fits(ctx, spec, generation)]
    if len({spec.provider for spec in usable}) > 1:
        healthy = {name: await provider_healthy(ctx, name) for name in dict.fromkeys(s.provider for s in usable)}
        usable = [spec for spec in usable if healthy[spec.provider]] or [primary]
    return [_route(ctx, spec) for spec in usable]


async def _bind(ctx: ServiceContext, generation: Generation, route: Route) -> Generation | None:
    """Records the route before the call, so a webhook racing the answer finds the right provider."""
    return await ctx.db.write(
        lambda tx: bind_route(
            tx,
            generation.id,
            provider=route.spec.provider,
            provider_model=route.spec.provider_model,
            served_model=route.spec.id,
            provider_account=route.account,
            now=ctx.clock(),
        )
    )


def _note_refusal(ctx: ServiceContext, route: Route, exc: ProviderRejected) -> None:
    if exc.code == ProviderRejected.OUT_OF_CREDIT:
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
    for index, route in enumerate(routes):
        if route.spec.provider in out_of_credit:
            continue
        bound = await _bind(ctx, generation, route)
        if bound is None:
            return None
        generation, last = bound, index == len(routes) - 1
        try:
            result = await route.provider.submit(await build_request(ctx, generation))
        except RetryLater as exc:
            attempt = Attempt(generation, route.provider, error=exc)
            if last or generation.submit_attempts < ctx.config.max_submit_attempts:
                return attempt
            continue
        except ProviderRejected as exc:
            attempt = Attempt(generation, route.provider, error=exc)
            if last or exc.code not in REROUTABLE:
                return attempt
            _note_refusal(ctx, route, exc)
            if exc.code == ProviderRejected.OUT_OF_CREDIT:
                out_of_credit.add(route.spec.provider)
            continue
        except SubmitOutcomeUnknown as exc:
            return Attempt(generation, route.provider, error=exc)
        if route.spec.id != generation.model:
            log.info("generation %s served by fallback %s", generation.id, route.spec.id)
        return Attempt(generation, route.provider, result=result)
    return attempt
