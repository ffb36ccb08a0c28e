"""The studio's webhooks page: endpoints (create, rotate, delete) and the delivery log with redelivery."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from reelgate.api.deps import Ctx
from reelgate.domain.errors import ReelgateError
from reelgate.services import client_webhooks
from reelgate.services.context import ServiceContext
from reelgate.web.common import FormViewer, PageViewer, redirect, render

router = APIRouter(include_in_schema=False)
PAGE = "/settings/webhooks"


async def _page(request: Request, current: Any, ctx: ServiceContext, **extra: Any) -> HTMLResponse:
    values: dict[str, Any] = {
        "endpoints": await client_webhooks.list_endpoints(ctx, current.user.id),
        "deliveries": await client_webhooks.list_deliveries(ctx, current.user.id, limit=50),
        "event_types": client_webhooks.EVENT_TYPES,
        "new_secret": None,
    }
    values.update(extra)
    return render(request, "webhooks.html", current, **values)


@router.get(PAGE, response_class=HTMLResponse)
async def webhooks_page(request: Request, current: PageViewer, ctx: Ctx) -> HTMLResponse:
    return await _page(request, current, ctx)


@router.post(PAGE, response_class=HTMLResponse)
async def create_endpoint(
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    url: Annotated[str, Form(max_length=2048)],
    description: Annotated[str, Form(max_length=255)] = "",
) -> Response:
    try:
        endpoint = await client_webhooks.create_endpoint(ctx, current.user.id, url.strip(), description=description)
    except ReelgateError as exc:
        return redirect(request, PAGE, error=exc.message)
    # Rendered directly: the signing secret is shown once, in this response only.
    response = await _page(request, current, ctx, new_secret=endpoint)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(PAGE + "/{endpoint_id}/rotate", response_class=HTMLResponse)
async def rotate_secret(endpoint_id: str, request: Request, current: FormViewer, ctx: Ctx) -> Response:
    try:
        endpoint = await client_webhooks.rotate_endpoint_secret(ctx, current.user.id, endpoint_id)
    except ReelgateError as exc:
        return redirect(request, PAGE, error=exc.message)
    response = await _page(request, current, ctx, new_secret=endpoint)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post(PAGE + "/{endpoint_id}/delete")
async def delete_endpoint(endpoint_id: str, request: Request, current: FormViewer, ctx: Ctx) -> Response:
    try:
        await client_webhooks.delete_endpoint(ctx, current.user.id, endpoint_id)
    except ReelgateError as exc:
        return redirect(request, PAGE, error=exc.message)
    return redirect(request, PAGE, notice="Webhook endpoint deleted.")


@router.post(PAGE + "/deliveries/{delivery_id}/redeliver")
async def redeliver(delivery_id: str, request: Request, current: FormViewer, ctx: Ctx) -> Response:
    try:
        await client_webhooks.redeliver(ctx, current.user.id, delivery_id)
    except ReelgateError as exc:
        return redirect(request, PAGE, error=exc.message)
    return redirect(request, PAGE, notice="Delivery queued again.")
