"""/api/v1/webhook-endpoints, /api/v1/webhook-deliveries and /api/v1/callback-secret: client webhooks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Response
from pydantic import Field

from reelgate.api.deps import Ctx, CurrentUser
from reelgate.api.presenters import generation_out
from reelgate.api.schemas import Strict
from reelgate.db.records import CallbackSecret, Generation, WebhookEndpoint
from reelgate.services import client_webhook_delivery, client_webhooks
from reelgate.services.client_webhooks import DeliveryRecord
from reelgate.services.context import ServiceContext

router = APIRouter(prefix="/api/v1", tags=["webhooks to clients"])


class EndpointCreate(Strict):
    url: Annotated[str, Field(min_length=8, max_length=2000)]
    description: Annotated[str, Field(max_length=255)] = ""
    events: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=32, description=f"Any of {', '.join(client_webhooks.EVENT_TYPES)}"
    )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def endpoint_out(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events or client_webhooks.EVENT_TYPES),
        "created_at": _iso(endpoint.created_at),
        "previous_secret_expires_at": _iso(endpoint.previous_secret_expires_at),
    }
    if with_secret:
        body["secret"] = endpoint.secret
    return body


def delivery_out(record: DeliveryRecord) -> dict[str, Any]:
    d = record.delivery
    return {
        "id": d.id,
        "event": {"id": record.event.id, "type": record.event.type, "generation_id": record.event.generation_id},
        "endpoint_id": d.endpoint_id,
        "url": d.url,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": _iso(d.next_attempt_at) if d.status == client_webhooks.DeliveryStatus.PENDING else None,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": _iso(d.created_at),
        "delivered_at": _iso(d.delivered_at),
        "attempt_log": [
            {
                "at": _iso(a.attempted_at),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in record.attempts
        ],
    }


def _secret_out(holder: CallbackSecret) -> dict[str, Any]:
    return {"secret": holder.secret, "previous_secret_expires_at": _iso(holder.previous_secret_expires_at)}


@router.post("/webhook-endpoints", status_code=201)
async def create_endpoint(body: EndpointCreate, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """The secret is shown once, here (and on rotation)."""
    endpoint = await client_webhooks.create_endpoint(
        ctx, user.id, body.url, description=body.description, events=body.events
    )
    return endpoint_out(endpoint, with_secret=True)


@router.get("/webhook-endpoints")
async def list_endpoints(user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    return {"data": [endpoint_out(e) for e in await client_webhooks.list_endpoints(ctx, user.id)]}


@router.get("/webhook-endpoints/{endpoint_id}")
async def get_endpoint(endpoint_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    return endpoint_out(await client_webhooks.get_endpoint(ctx, user.id, endpoint_id))


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    await client_webhooks.delete_endpoint(ctx, user.id, endpoint_id)
    return Response(status_code=204)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret")
async def rotate_endpoint_secret(endpoint_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """A new secret; the old one keeps signing alongside it for 24 hours."""
    endpoint = await client_webhooks.rotate_endpoint_secret(ctx, user.id, endpoint_id)
    return endpoint_out(endpoint, with_secret=True)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries")
async def endpoint_deliveries(
    endpoint_id: str, user: CurrentUser, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> dict[str, Any]:
    records = await client_webhooks.list_deliveries(ctx, user.id, endpoint_id=endpoint_id, limit=limit)
    return {"data": [delivery_out(r) for r in records]}


@router.get("/webhook-deliveries")
async def list_deliveries(
    user: CurrentUser,
    ctx: Ctx,
    generation_id: Annotated[str | None, Query(max_length=40)] = None,
    callbacks_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    """Every delivery of the account, including those to generations' callback_url."""
    records = await client_webhooks.list_deliveries(
        ctx, user.id, generation_id=generation_id, callbacks_only=callbacks_only, limit=limit
    )
    return {"data": [delivery_out(r) for r in records]}


@router.get("/webhook-deliveries/{delivery_id}")
async def get_delivery(delivery_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    return delivery_out(await client_webhooks.get_delivery(ctx, user.id, delivery_id))


@router.post("/webhook-deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(delivery_id: str, user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    return delivery_out(await client_webhooks.redeliver(ctx, user.id, delivery_id))


@router.get("/callback-secret")
async def get_callback_secret(user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    """The secret that signs deliveries to a generation's callback_url."""
    return _secret_out(await client_webhooks.callback_secret(ctx, user.id))


@router.post("/callback-secret/rotate")
async def rotate_callback_secret(user: CurrentUser, ctx: Ctx) -> dict[str, Any]:
    return _secret_out(await client_webhooks.rotate_callback_secret(ctx, user.id))


def present_generation(generation: Generation, ctx: ServiceContext) -> dict[str, Any]:
    """Webhook payloads carry the generation exactly as GET /api/v1/generations/{id} shows it."""
    return generation_out(generation, ctx.config.public_url).model_dump(mode="json")


async def deliver_due(ctx: ServiceContext) -> int:
    """The worker's periodic job (registered in app.py)."""
    return await client_webhook_delivery.deliver_due(ctx, present_generation)


def mount(app: FastAPI) -> None:
    app.include_router(router)
