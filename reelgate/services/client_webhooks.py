"""Webhooks to API clients: endpoints and secrets, the terminal-event outbox, the delivery log, redelivery.

Signing follows Standard Webhooks (https://www.standardwebhooks.com/): every delivery carries
`webhook-id` (the delivery id, the same on every retry, so receivers can deduplicate),
`webhook-timestamp` and `webhook-signature`. Account endpoints each have their own `whsec_` secret; a
generation's own `callback_url` is signed with the account's callback secret (one per account, read
and rotated with /api/v1/callback-secret), because a URL given per request has nowhere to keep a key.
A rotated secret keeps signing alongside the new one for ROTATION_GRACE, so receivers can switch over.
Sending lives in client_webhook_delivery.py.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from reelgate.db.queries import client_webhooks as webhook_queries
from reelgate.db.records import (
    CallbackSecret,
    Generation,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from reelgate.db.sql import Tx
from reelgate.domain.errors import Conflict, NotFound, ValidationFailed
from reelgate.domain.ids import new_id
from reelgate.services.context import ServiceContext
from reelgate.services.safe_fetch import UnsafeURL, check_url

EVENT_TYPES = ("generation.succeeded", "generation.failed", "generation.canceled", "generation.expired")
ROTATION_GRACE = timedelta(hours=24)
MAX_ENDPOINTS = 16
# Seconds to wait after each failed attempt: about three days in all (75.6 h), then the delivery fails.
# Tests shorten it; a row keeps the attempt count it was created with.
RETRY_DELAYS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


class DeliveryStatus:
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"  # its endpoint was deleted before it went out


def new_secret() -> str:
    """`whsec_` + base64 of 24 random bytes, the format the standardwebhooks libraries read."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _check_url(ctx: ServiceContext, url: str) -> None:
    if len(url) > 2000:
        raise ValidationFailed("url", "The URL is longer than 2000 characters.")
    try:
        check_url(url, allow_hosts=ctx.config.fetch_allow_hosts)
    except UnsafeURL as exc:
        raise ValidationFailed("url", f"This URL is not allowed: {exc.reason}") from exc


def _check_events(events: Sequence[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(events or EVENT_TYPES))
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown:
        raise ValidationFailed("events", f"Unknown event type {unknown[0]!r}.", allowed=list(EVENT_TYPES))
    return chosen


# ---------------------------------------------------------------- endpoints


async def create_endpoint(
    ctx: ServiceContext, user_id: str, url: str, *, description: str = "", events: Sequence[str] | None = None
) -> WebhookEndpoint:
    _check_url(ctx, url)
    endpoint = WebhookEndpoint(
        id=new_id("we"),
        user_id=user_id,
        url=url,
        description=description[:255],
        events=_check_events(events),
        secret=new_secret(),
        previous_secret=None,
        previous_secret_expires_at=None,
        created_at=ctx.clock(),
        deleted_at=None,
    )

    def create(tx: Tx) -> None:
        if webhook_queries.live_endpoint_count(tx, user_id) >= MAX_ENDPOINTS:
            raise Conflict(f"An account may have at most {MAX_ENDPOINTS} webhook endpoints.", code="too_many_endpoints")
        webhook_queries.insert_endpoint(tx, endpoint)

    await ctx.db.write(create)
    return endpoint


async def list_endpoints(ctx: ServiceContext, user_id: str) -> list[WebhookEndpoint]:
    return await ctx.db.read(lambda tx: webhook_queries.live_endpoints(tx, user_id))


def _owned_endpoint(tx: Tx, user_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = webhook_queries.endpoint_of_user(tx, user_id, endpoint_id)
    if endpoint is None:
        raise NotFound("Webhook endpoint not found.")
    return endpoint


async def get_endpoint(ctx: ServiceContext, user_id: str, endpoint_id: str) -> WebhookEndpoint:
    return await ctx.db.read(lambda tx: _owned_endpoint(tx, user_id, endpoint_id))


async def delete_endpoint(ctx: ServiceContext, user_id: str, endpoint_id: str) -> None:
    """Stops deliveries to it at once; the row and its log stay for the delivery history."""
    now = ctx.clock()

    def delete(tx: Tx) -> None:
        endpoint = _owned_endpoint(tx, user_id, endpoint_id)
        endpoint.deleted_at = now
        webhook_queries.save_endpoint(tx, endpoint)
        webhook_queries.cancel_pending_deliveries(tx, endpoint_id, now)

    await ctx.db.write(delete)


def _rotate(holder: WebhookEndpoint | CallbackSecret, now: datetime) -> None:
    holder.previous_secret = holder.secret
    holder.previous_secret_expires_at = now + ROTATION_GRACE
    holder.secret = new_secret()


async def rotate_endpoint_secret(ctx: ServiceContext, user_id: str, endpoint_id: str) -> WebhookEndpoint:
    def rotate(tx: Tx) -> WebhookEndpoint:
        endpoint = _owned_endpoint(tx, user_id, endpoint_id)
        _rotate(endpoint, ctx.clock())
        webhook_queries.save_endpoint(tx, endpoint)
        return endpoint

    return await ctx.db.write(rotate)


def _callback_secret_in(tx: Tx, user_id: str, now: datetime) -> CallbackSecret:
    """The account's callback secret, created on first use (a concurrent twin simply wins)."""
    found = webhook_queries.callback_secret_of(tx, user_id)
    if found is not None:
        return found
    created = CallbackSecret(
        user_id=user_id, secret=new_secret(), previous_secret=None, previous_secret_expires_at=None, created_at=now
    )
    if webhook_queries.insert_callback_secret(tx, created):
        return created
    again = webhook_queries.callback_secret_of(tx, user_id)
    assert again is not None
    return again


async def callback_secret(ctx: ServiceContext, user_id: str) -> CallbackSecret:
    found = await ctx.db.read(lambda tx: webhook_queries.callback_secret_of(tx, user_id))
    if found is not None:
        return found
    return await ctx.db.write(lambda tx: _callback_secret_in(tx, user_id, ctx.clock()))


async def rotate_callback_secret(ctx: ServiceContext, user_id: str) -> CallbackSecret:
    def rotate(tx: Tx) -> CallbackSecret:
        holder = _callback_secret_in(tx, user_id, ctx.clock())
        _rotate(holder, ctx.clock())
        webhook_queries.save_callback_secret(tx, holder)
        return holder

    return await ctx.db.write(rotate)


def signing_secrets(holder: WebhookEndpoint | CallbackSecret, now: datetime) -> list[str]:
    """The current secret, and the previous one while its grace period lasts."""
    keys = [holder.secret]
    expires = holder.previous_secret_expires_at
    if holder.previous_secret and expires is not None and expires > now:
        keys.append(holder.previous_secret)
    return keys


# ---------------------------------------------------------------- the outbox


def event_type_of(status: str) -> str:
    return f"generation.{status}"


def record_terminal_event(tx: Tx, generation: Generation) -> None:
    """Inside the transition's transaction: one event, one delivery per subscribed endpoint and one for
    the generation's callback_url. Nothing here may fail the transition, so there are no unique inserts."""
    event_type = event_type_of(generation.status)
    if event_type not in EVENT_TYPES:
        return
    now = generation.completed_at or generation.updated_at
    event = WebhookEvent(
        id=new_id("evt"), user_id=generation.user_id, type=event_type, generation_id=generation.id, created_at=now
    )
    webhook_queries.insert_event(tx, event)
    targets: list[tuple[str | None, str]] = [
        (endpoint.id, endpoint.url)
        for endpoint in webhook_queries.live_endpoints(tx, generation.user_id)
        if event_type in (endpoint.events or EVENT_TYPES)
    ]
    if generation.callback_url:
        targets.append((None, generation.callback_url))
    for endpoint_id, url in targets:
        delivery = WebhookDelivery(
            id=new_id("msg"),
            event_id=event.id,
            user_id=generation.user_id,
            endpoint_id=endpoint_id,
            url=url,
            status=DeliveryStatus.PENDING,
            attempts=0,
            max_attempts=len(RETRY_DELAYS) + 1,
            next_attempt_at=now,
            last_status_code=None,
            last_error=None,
            created_at=now,
            updated_at=now,
            delivered_at=None,
        )
        webhook_queries.insert_delivery(tx, delivery)


# ---------------------------------------------------------------- the delivery log


@dataclass(frozen=True)
class DeliveryRecord:
    delivery: WebhookDelivery
    event: WebhookEvent
    attempts: list[WebhookAttempt]


def _with_attempts(tx: Tx, pairs: list[tuple[WebhookDelivery, WebhookEvent]]) -> list[DeliveryRecord]:
    attempts: dict[str, list[WebhookAttempt]] = {delivery.id: [] for delivery, _ in pairs}
    for attempt in webhook_queries.attempts_of(tx, list(attempts)):
        attempts[attempt.delivery_id].append(attempt)
    return [DeliveryRecord(delivery, event, attempts[delivery.id]) for delivery, event in pairs]


async def list_deliveries(
    ctx: ServiceContext,
    user_id: str,
    *,
    endpoint_id: str | None = None,
    generation_id: str | None = None,
    callbacks_only: bool = False,
    limit: int = 50,
) -> list[DeliveryRecord]:
    """Newest first, each with its attempts; scoped to the owner."""

    def read(tx: Tx) -> list[DeliveryRecord]:
        if endpoint_id is not None and not webhook_queries.user_has_endpoint(tx, user_id, endpoint_id):
            raise NotFound("Webhook endpoint not found.")
        pairs = webhook_queries.deliveries_of_user(
            tx,
            user_id,
            endpoint_id=endpoint_id,
            generation_id=generation_id,
            callbacks_only=callbacks_only,
            limit=limit,
        )
        return _with_attempts(tx, pairs)

    return await ctx.db.read(read, snapshot=True)


def _delivery_record(tx: Tx, user_id: str, delivery_id: str) -> DeliveryRecord:
    pair = webhook_queries.delivery_of_user(tx, user_id, delivery_id)
    if pair is None:
        raise NotFound("Webhook delivery not found.")
    return _with_attempts(tx, [pair])[0]


async def get_delivery(ctx: ServiceContext, user_id: str, delivery_id: str) -> DeliveryRecord:
    return await ctx.db.read(lambda tx: _delivery_record(tx, user_id, delivery_id), snapshot=True)


async def redeliver(ctx: ServiceContext, user_id: str, delivery_id: str) -> DeliveryRecord:
    """Queues one more attempt now, with the same webhook-id; a pending delivery is simply brought forward."""
    now = ctx.clock()

    def requeue(tx: Tx) -> DeliveryRecord:
        pair = webhook_queries.delivery_of_user(tx, user_id, delivery_id)
        if pair is None:
            raise NotFound("Webhook delivery not found.")
        delivery = pair[0]
        if delivery.endpoint_id is not None:
            endpoint = webhook_queries.endpoint_by_id(tx, delivery.endpoint_id)
            if endpoint is None or endpoint.deleted_at is not None:
                raise Conflict("Its webhook endpoint was deleted.", code="endpoint_deleted")
        if delivery.status != DeliveryStatus.PENDING:
            delivery.max_attempts = delivery.attempts + 1
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = now
        delivery.updated_at = now
        webhook_queries.save_delivery(tx, delivery)
        return _delivery_record(tx, user_id, delivery_id)

    record = await ctx.db.write(requeue)
    ctx.wake("")
    return record
