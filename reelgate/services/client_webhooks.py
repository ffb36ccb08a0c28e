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

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.tables import Generation
from reelgate.db.tables_webhooks import CallbackSecret, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
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
    chosen = _check_events(events)
    async with ctx.db.transaction() as session:
        existing = await session.execute(
            select(WebhookEndpoint.id).where(WebhookEndpoint.user_id == user_id, WebhookEndpoint.deleted_at.is_(None))
        )
        if len(existing.all()) >= MAX_ENDPOINTS:
            raise Conflict(f"An account may have at most {MAX_ENDPOINTS} webhook endpoints.", code="too_many_endpoints")
        endpoint = WebhookEndpoint(
            id=new_id("we"),
            user_id=user_id,
            url=url,
            description=description[:255],
            events=chosen,
            secret=new_secret(),
            created_at=ctx.clock(),
        )
        session.add(endpoint)
    return endpoint


async def list_endpoints(ctx: ServiceContext, user_id: str) -> list[WebhookEndpoint]:
    async with ctx.db.reader() as session:
        rows = await session.execute(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.user_id == user_id, WebhookEndpoint.deleted_at.is_(None))
            .order_by(WebhookEndpoint.id)
        )
        return list(rows.scalars())


async def _owned_endpoint(session: AsyncSession, user_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = (
        await session.execute(
            select(WebhookEndpoint).where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.user_id == user_id,
                WebhookEndpoint.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if endpoint is None:
        raise NotFound("Webhook endpoint not found.")
    return endpoint


async def get_endpoint(ctx: ServiceContext, user_id: str, endpoint_id: str) -> WebhookEndpoint:
    async with ctx.db.reader() as session:
        return await _owned_endpoint(session, user_id, endpoint_id)


async def delete_endpoint(ctx: ServiceContext, user_id: str, endpoint_id: str) -> None:
    """Stops deliveries to it at once; the row and its log stay for the delivery history."""
    now = ctx.clock()
    async with ctx.db.transaction() as session:
        endpoint = await _owned_endpoint(session, user_id, endpoint_id)
        endpoint.deleted_at = now
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.CANCELED, next_attempt_at=None, updated_at=now)
        )


def _rotate(holder: WebhookEndpoint | CallbackSecret, now: datetime) -> None:
    holder.previous_secret = holder.secret
    holder.previous_secret_expires_at = now + ROTATION_GRACE
    holder.secret = new_secret()


async def rotate_endpoint_secret(ctx: ServiceContext, user_id: str, endpoint_id: str) -> WebhookEndpoint:
    async with ctx.db.transaction() as session:
        endpoint = await _owned_endpoint(session, user_id, endpoint_id)
        _rotate(endpoint, ctx.clock())
    return endpoint


async def callback_secret(ctx: ServiceContext, user_id: str) -> CallbackSecret:
    """The account's callback secret, created on first use (a concurrent twin simply wins)."""
    async with ctx.db.reader() as session:
        found = await session.get(CallbackSecret, user_id)
    if found is not None:
        return found
    try:
        async with ctx.db.transaction() as session:
            created = CallbackSecret(user_id=user_id, secret=new_secret(), created_at=ctx.clock())
            session.add(created)
        return created
    except IntegrityError:
        async with ctx.db.reader() as session:
            again = await session.get(CallbackSecret, user_id)
        if again is None:
            raise
        return again


async def rotate_callback_secret(ctx: ServiceContext, user_id: str) -> CallbackSecret:
    await callback_secret(ctx, user_id)
    async with ctx.db.transaction() as session:
        holder = await session.get(CallbackSecret, user_id)
        assert holder is not None
        _rotate(holder, ctx.clock())
    return holder


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


async def record_terminal_event(session: AsyncSession, generation: Generation) -> None:
    """Inside the transition's transaction: one event, one delivery per subscribed endpoint and one for
    the generation's callback_url. Nothing here may fail the transition, so there are no unique inserts."""
    event_type = event_type_of(generation.status)
    if event_type not in EVENT_TYPES:
        return
    now = generation.completed_at or generation.updated_at
    event = WebhookEvent(
        id=new_id("evt"), user_id=generation.user_id, type=event_type, generation_id=generation.id, created_at=now
    )
    session.add(event)
    endpoints = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.events).where(
            WebhookEndpoint.user_id == generation.user_id, WebhookEndpoint.deleted_at.is_(None)
        )
    )
    targets: list[tuple[str | None, str]] = [
        (endpoint_id, url) for endpoint_id, url, events in endpoints.all() if event_type in (events or EVENT_TYPES)
    ]
    if generation.callback_url:
        targets.append((None, generation.callback_url))
    for endpoint_id, url in targets:
        session.add(
            WebhookDelivery(
                id=new_id("msg"),
                event_id=event.id,
                user_id=generation.user_id,
                endpoint_id=endpoint_id,
                url=url,
                status=DeliveryStatus.PENDING,
                attempts=0,
                max_attempts=len(RETRY_DELAYS) + 1,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )


# ---------------------------------------------------------------- the delivery log


@dataclass(frozen=True)
class DeliveryRecord:
    delivery: WebhookDelivery
    event: WebhookEvent
    attempts: list[WebhookAttempt]


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
    query = (
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.user_id == user_id)
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if callbacks_only:
        query = query.where(WebhookDelivery.endpoint_id.is_(None))
    if generation_id is not None:
        query = query.where(WebhookEvent.generation_id == generation_id)
    async with ctx.db.reader() as session:
        if endpoint_id is not None:
            found = await session.execute(
                select(WebhookEndpoint.id).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.user_id == user_id)
            )
            if found.scalar_one_or_none() is None:
                raise NotFound("Webhook endpoint not found.")
        pairs = (await session.execute(query.order_by(WebhookDelivery.id.desc()).limit(limit))).all()
        ids = [delivery.id for delivery, _ in pairs]
        attempts: dict[str, list[WebhookAttempt]] = {i: [] for i in ids}
        if ids:
            rows = await session.execute(
                select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)).order_by(WebhookAttempt.id)
            )
            for attempt in rows.scalars():
                attempts[attempt.delivery_id].append(attempt)
    return [DeliveryRecord(delivery, event, attempts[delivery.id]) for delivery, event in pairs]


async def get_delivery(ctx: ServiceContext, user_id: str, delivery_id: str) -> DeliveryRecord:
    async with ctx.db.reader() as session:
        pair = (
            await session.execute(
                select(WebhookDelivery, WebhookEvent)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.user_id == user_id)
            )
        ).first()
        if pair is None:
            raise NotFound("Webhook delivery not found.")
        rows = await session.execute(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.id)
        )
        return DeliveryRecord(pair[0], pair[1], list(rows.scalars()))


async def redeliver(ctx: ServiceContext, user_id: str, delivery_id: str) -> DeliveryRecord:
    """Queues one more attempt now, with the same webhook-id; a pending delivery is simply brought forward."""
    now = ctx.clock()
    async with ctx.db.transaction() as session:
        delivery = (
            await session.execute(
                select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.user_id == user_id)
            )
        ).scalar_one_or_none()
        if delivery is None:
            raise NotFound("Webhook delivery not found.")
        if delivery.endpoint_id is not None:
            endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
            if endpoint is None or endpoint.deleted_at is not None:
                raise Conflict("Its webhook endpoint was deleted.", code="endpoint_deleted")
        if delivery.status != DeliveryStatus.PENDING:
            delivery.max_attempts = delivery.attempts + 1
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = now
        delivery.updated_at = now
    ctx.wake("")
    return await get_delivery(ctx, user_id, delivery_id)
