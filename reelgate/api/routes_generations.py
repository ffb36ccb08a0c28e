"""/api/v1/generations: create (with Idempotency-Key), list, get, cancel, retry, content, thumbnail."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from reelgate.api.deps import Ctx, CurrentUser
from reelgate.api.media_responses import serve_object
from reelgate.api.presenters import generation_out
from reelgate.api.schemas import GenerationCreate, GenerationList, GenerationOut
from reelgate.domain.errors import Conflict, NotFound
from reelgate.domain.jobs import GenerationStatus
from reelgate.services import generations, image_export
from reelgate.services.generations import GenerationFilter, GenerationOrder

router = APIRouter(prefix="/api/v1/generations", tags=["generations"])


def order_from(body: GenerationCreate) -> GenerationOrder:
    fields = body.model_dump(exclude={"model", "tier"})
    return GenerationOrder(model=body.choice, **fields)


@router.post("", status_code=202, response_model=GenerationOut)
async def create_generation(
    body: GenerationCreate,
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    order = order_from(body)
    acting_as = getattr(request.state, "organization", None)
    if acting_as is not None:
        # An organization's key pays from that organization's wallet, and from no other.
        if order.organization not in (None, acting_as):
            raise NotFound("Organization not found.")
        order = replace(order, organization=acting_as)
    generation, replayed = await generations.create_generation(ctx, user.id, order, idempotency_key=idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    payload = generation_out(generation, ctx.config.public_url).model_dump(mode="json")
    if generation.model in ctx.catalog.ids:  # a replay may name a model the catalog has since dropped
        payload["estimated_seconds"] = await generations.expected_seconds(ctx, ctx.catalog.get(generation.model))
    return JSONResponse(payload, status_code=202, headers=headers)


@router.get("", response_model=GenerationList)
async def list_generations(
    user: CurrentUser,
    ctx: Ctx,
    status: Annotated[GenerationStatus | None, Query()] = None,
    project_id: Annotated[str | None, Query(max_length=40)] = None,
    model: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    favorite: Annotated[bool | None, Query(description="true: only favourites; false: only the others")] = None,
) -> GenerationList:
    rows, next_cursor = await generations.list_generations(
        ctx,
        user.id,
        filters=GenerationFilter(
            status=status.value if status else None, project_id=project_id, model=model, favorite=favorite
        ),
        limit=limit,
        cursor=cursor,
    )
    return GenerationList(
        data=[generation_out(g, ctx.config.public_url) for g in rows],
        next_cursor=next_cursor,
        has_more=next_cursor is not None,
    )


@router.get("/{generation_id}", response_model=GenerationOut)
async def get_generation(generation_id: str, user: CurrentUser, ctx: Ctx) -> GenerationOut:
    """Your generation, or one paid by an organization you own or administer."""
    return generation_out(await generations.viewable_generation(ctx, user.id, generation_id), ctx.config.public_url)


@router.post("/{generation_id}/cancel", response_model=GenerationOut)
async def cancel_generation(generation_id: str, user: CurrentUser, ctx: Ctx) -> GenerationOut:
    return generation_out(await generations.cancel_generation(ctx, user.id, generation_id), ctx.config.public_url)


@router.post("/{generation_id}/retry", status_code=202, response_model=GenerationOut)
async def retry_generation(
    generation_id: str,
    user: CurrentUser,
    ctx: Ctx,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """A new generation with the same settings. While a retry of this generation is unfinished, retrying
    again answers with it (`Idempotent-Replayed: true`) and charges nothing more."""
    generation, replayed = await generations.retry_generation(
        ctx, user.id, generation_id, idempotency_key=idempotency_key
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    payload = generation_out(generation, ctx.config.public_url).model_dump(mode="json")
    if generation.model in ctx.catalog.ids:  # a replay may name a model the catalog has since dropped
        payload["estimated_seconds"] = await generations.expected_seconds(ctx, ctx.catalog.get(generation.model))
    return JSONResponse(payload, status_code=202, headers=headers)


@router.get("/{generation_id}/content", response_class=Response)
async def generation_content(
    generation_id: str,
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    download: Annotated[bool, Query()] = False,
    image_format: Annotated[
        Literal["png", "webp"] | None,
        Query(alias="format", description="An image converted to PNG or WebP (a video cannot be converted)."),
    ] = None,
) -> Response:
    if image_format is not None:
        return await _converted_image(generation_id, user.id, ctx, image_format, download=download)
    generation = await generations.viewable_generation(ctx, user.id, generation_id)
    if generation.status != GenerationStatus.SUCCEEDED.value or not generation.output_key:
        raise Conflict("This generation has no video yet.", code="not_ready", details={"status": generation.status})
    extension = generation.output_key.rsplit(".", 1)[-1]
    return await serve_object(
        request,
        ctx.store,
        generation.output_key,
        content_type=generation.output_content_type or "video/mp4",
        filename=f"{generation.id}.{extension}",
        download=download,
        presign=request.app.state.settings.s3_presign_downloads,
    )


async def _converted_image(generation_id: str, user_id: str, ctx: Ctx, fmt: str, *, download: bool) -> Response:
    # The converted file lives in its own scratch directory until the response has been sent.
    workdir = Path(tempfile.mkdtemp(prefix="reelgate-export-"))
    try:
        export = await image_export.export_image(ctx, user_id, generation_id, fmt, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return FileResponse(
        export.path,
        media_type=export.content_type,
        filename=export.filename,
        content_disposition_type="attachment" if download else "inline",
        background=BackgroundTask(shutil.rmtree, workdir, ignore_errors=True),
    )


@router.get("/{generation_id}/thumbnail", response_class=Response)
async def generation_thumbnail(generation_id: str, request: Request, user: CurrentUser, ctx: Ctx) -> Response:
    generation = await generations.viewable_generation(ctx, user.id, generation_id)
    if not generation.thumbnail_key:
        raise NotFound("This generation has no thumbnail.")
    return await serve_object(
        request,
        ctx.store,
        generation.thumbnail_key,
        content_type="image/jpeg",
        filename=f"{generation.id}.jpg",
        download=False,
    )
