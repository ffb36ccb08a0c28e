"""Provider webhook ingest: token and signature checked, delivery deduplicated, update applied, one transaction."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from reelgate.db.queries.inbox import record_delivery_then_change
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.domain.errors import NotFound, Unauthorized
from reelgate.domain.jobs import GenerationStatus
from reelgate.providers.base import ProviderUpdate, WebhookRejected
from reelgate.services import pipeline
from reelgate.services.context import ServiceContext
from reelgate.services.output_staging import carries_inline_output, discard_staged, stage_output
from reelgate.services.routing import account_fingerprint
from reelgate.services.transitions import (
    apply_provider_update,
    changes_only_the_generation,
    made_with_delivery,
    success_if_still_sent,
)
from reelgate.services.webhook_links import Sender, signed_sender

log = logging.getLogger("reelgate.webhooks")

_ACTIVE = (GenerationStatus.SUBMITTING.value, GenerationStatus.PROCESSING.value)
_STORING = GenerationStatus.STORING.value


async def ingest_provider_webhook(
    ctx: ServiceContext, provider_name: str, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
) -> str:
    """Returns "applied", "duplicate" or "ignored". Raises Unauthorized for a bad token or signature."""
    if provider_name not in ctx.providers.names():
        raise NotFound(f"Unknown provider {provider_name!r}.")
    generation_id = query.get("g", "")
    # The token is checked for every provider; for unsigned ones (RunPod, ModelsLab) it is the only proof.
    sender, generation = signed_sender(ctx, provider_name, query), None
    if sender is None:
        generation = await _with_stored_token(ctx, provider_name, generation_id, query.get("t", ""))
        sender = Sender(generation_id, provider_name, account_fingerprint(generation))
    # Verified with the account the job was sent with (its webhook secret), even after a key change.
    provider = ctx.providers.get_bound(sender.provider, sender.account)
    try:
        event = await provider.verify_and_parse_webhook(headers, body, query)
    except WebhookRejected as exc:
        log.warning("rejected %s webhook for %s: %s", provider_name, generation_id, exc)
        raise Unauthorized(f"Webhook rejected: {exc}") from exc
    update_ = event.update
    # Stage an inline video in the object store before the transaction; drop it if the update is not applied.
    # A generation past `processing` ignores the update anyway, so a redelivered video is not decoded again.
    if carries_inline_output(update_):
        generation = generation or await pipeline.read_generation(ctx, generation_id)
        if generation is not None and generation.status in _ACTIVE:
            update_ = await stage_output(ctx, generation_id, update_)
    kept = False
    try:
        result, kept = await _record_and_apply(ctx, sender, event.delivery_id, update_)
    finally:
        if not kept:
            await discard_staged(ctx, update_)
    return result


async def _with_stored_token(ctx: ServiceContext, provider_name: str, generation_id: str, token: str) -> Generation:
    """The generation an address handed out before tokens were signed names, when its stored token matches."""
    generation = await pipeline.read_generation(ctx, generation_id)
    stored = None if generation is None else generation.webhook_token
    if (
        generation is None
        or stored is None  # a job whose address was signed: only its signed token is proof
        or generation.provider != provider_name
        or not hmac.compare_digest(stored.encode(), token.encode())
    ):
        log.warning("rejected %s webhook: unknown generation or bad token (g=%r)", provider_name, generation_id)
        raise Unauthorized("Unknown generation or bad webhook token.")
    return generation


async def _record_and_apply(
    ctx: ServiceContext, sender: Sender, delivery_id: str, update_: ProviderUpdate
) -> tuple[str, bool]:
    """The inbox row and the update commit together, so a redelivery can neither skip nor repeat the update."""
    now, generation_id = ctx.clock(), sender.generation_id
    # A success is made with the delivery's record where the database can (one statement on PostgreSQL).
    change = success_if_still_sent(update_, now=now, account=sender.account)

    def record_and_apply(tx: Tx) -> tuple[bool, Generation | None]:
        first, current, changed = record_delivery_then_change(
            tx, sender.provider, delivery_id, generation_id, now, change
        )
        # A job that moved to another provider or account since the address was handed out ignores the old one.
        if not first or current is None or not sender.still_sends(current):
            return first, None
        if changed is not None:
            updated: Generation | None = made_with_delivery(changed)
        else:
            updated = apply_provider_update(tx, generation_id, update_, now=now, current=current)
        if updated is not None and updated.status == _STORING:
            ctx.wake_with_commit(tx, generation_id)  # the download is due
        return True, updated

    # An update that cannot end the job changes only the generation's rows: it may commit beside other jobs'.
    confined_to = generation_id if changes_only_the_generation(update_) else None
    first, updated = await ctx.db.write(record_and_apply, grouped=True, confined_to=confined_to)
    if not first:
        return "duplicate", False
    if updated is None:
        return "ignored", False
    storing = updated.status == _STORING
    if storing:
        ctx.wake_after_commit(generation_id)
    return "applied", storing
