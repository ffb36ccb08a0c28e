"""Signed input links (services/input_links.py): where providers fetch a job's start or end image, without a
session. A forged, altered or expired link is 404 in the API's error shape."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from reelgate.api.deps import Ctx
from reelgate.api.media_responses import serve_object
from reelgate.services import input_links

router = APIRouter(prefix="/media/inputs", tags=["provider inputs"])


@router.get("/{upload_id}", response_class=Response)
async def input_image(
    upload_id: str, request: Request, ctx: Ctx, g: str = "", expires: str = "", signature: str = ""
) -> Response:
    """The image a running generation sends its provider by address, as it was uploaded. A missing, malformed,
    forged or expired part reads as a bad link (404), never as a 422 that says which part was wrong."""
    upload = await input_links.open_input(ctx, upload_id, g, expires, signature)
    return await serve_object(
        request,
        ctx.store,
        upload.object_key,
        content_type=upload.content_type,
        filename=upload.object_key.rsplit("/", 1)[-1],
        download=False,
    )
