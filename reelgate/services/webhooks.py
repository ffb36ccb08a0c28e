"""Provider webhook ingest: token and signature checked, delivery deduplicated, update applied, one transaction."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from reelgate.db.queries.inbox import record_delivery_then_read
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound, Unauthorized
from reelgate.domain.jobs import GenerationStatus
from reelgate.providers.base import ProviderUpdate, WebhookRejected
from reelgate.services import pipeline, routing
from reelgate.services.context import ServiceContext
from reelgate.services.output_staging import discard_staged, stage_output
from reelgate.services.transitions import apply_provider_update

log = logging.getLogger("reelgate.webhooks")


async def ingest_provider_webhook(
    ctx: ServiceContext, provider_name: str, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
) -> str:
    """Returns "applied", "duplicate" or "ignored". Raises Unauthorized for a bad token or signature."""
    if provider_name not in ctx.providers.names():
        raise NotFound(f"Unknown provider {provider_name!r}.")
    generation_id, token = query.get("g", ""), query.get("t", "")
    generation = await pipeline.read_generation(ctx, generation_id)
    if generation is not None and generation.provider != provider_name:
        generation = None
    # The token is checked for every provider; for unsigned ones (RunPod, ModelsLab) it is the only proof.
    if generation is None or not hmac.compare_digest(generation.webhook_token.encode(), token.encode()):
        log.warning("rejected %s webhook: unknown generation or bad token (g=%r)", provider_name, generation_id)
        raise Unauthorized("Unknown generation or bad webhook token.")
    # Verified with the account the job was submitted with (its webhook secret), even after a key change.
    provider = routing.bound_provider(ctx, generation)
    try:
        event = await provider.verify_and_parse_webhook(headers, body, query)
    except WebhookRejected as exc:
        log.warning("rejected %s webhook for %s: %s", provider_name, generation_id, exc)
        raise Unauthorized(f"Webhook rejected: {exc}") from exc
    # Stage an inline video in the object store before the transaction; drop it if the update is not applied.
    # A generation past `processing` ignores the update anyway, so a redelivered video is not decoded again.
    active = generation.status in (GenerationStatus.SUBMITTING.value, GenerationStatus.PROCESSING.value)
    update_ = await stage_output(ctx, generation_id, event.update) if active else event.update
    kept = False
    try:
        result, kept = await _record_and_apply(ctx, provider_name, generation_id, event.delivery_id, update_)
    finally:
        if not kept:
            await discard_staged(ctx, update_)
    return result


async def _record_and_apply(
    ctx: ServiceContext, provider_name: str, generation_id: str, delivery_id: str, update_: ProviderUpdate
) -> tuple[str, bool]:
    """The inbox row and the update commit together, so a redelivery can neither skip nor repeat the update."""
    now = ctx.clock()

    def record_and_apply(tx: Tx) -> tuple[bool, Generation | None]:
        first, current = record_delivery_then_read(tx, provider_name, delivery_id, generation_id, now)
        if not first or current is None:
            return first, None
        return True, apply_provider_update(tx, generation_id, update_, now=now, current=current)

    first, updated = await ctx.db.write(record_and_apply, grouped=True)
    if not first:
        return "duplicate", False
    if updated is None:
        return "ignored", False
    storing = updated.status == GenerationStatus.STORING.value
    if storing:
        ctx.wake(generation_id)
    return "applied", storing
