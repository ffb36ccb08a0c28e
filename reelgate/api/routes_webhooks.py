"""POST /webhooks/{provider}: provider callbacks, verified and deduplicated before anything changes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from reelgate.api.deps import Ctx
from reelgate.services.webhooks import ingest_provider_webhook

router = APIRouter(tags=["webhooks"])
_MAX_WEBHOOK_BYTES = 64 * 1024 * 1024  # RunPod can post a whole base64 video


@router.post("/webhooks/{provider}")
async def provider_webhook(provider: str, request: Request, ctx: Ctx) -> dict[str, str]:
    body = await request.body()
    if len(body) > _MAX_WEBHOOK_BYTES:
        return {"result": "too_large"}
    result = await ingest_provider_webhook(ctx, provider, dict(request.headers), body, dict(request.query_params))
    return {"result": result}
