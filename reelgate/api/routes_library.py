"""The user's library: delete (one or many), move between projects, favourites, share links, ZIP downloads,
storage use; and the administrator's per-user storage quota."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field

from reelgate.api.deps import AdminUser, Ctx, CurrentUser
from reelgate.api.media_responses import serve_object
from reelgate.api.presenters import generation_out, share_out
from reelgate.api.schemas import (
    BulkIds,
    BulkItem,
    BulkMove,
    BulkOut,
    GenerationOut,
    ShareCreate,
    ShareList,
    ShareOut,
    StorageOut,
    Strict,
)
from reelgate.domain.errors import NotFound
from reelgate.services import archive, library, sharing, storage_quota
from reelgate.services.library import BulkOutcome

router = APIRouter(prefix="/api/v1", tags=["library"])
# What a share link opens, without an account: the video and its thumbnail (the page itself is the studio's).
public = APIRouter(prefix="/s", tags=["sharing"])


def bulk_out(outcome: BulkOutcome) -> BulkOut:
    results = [BulkItem(id=i, status=200) for i in outcome.succeeded]
    results += [BulkItem(id=i, status=404) for i in outcome.not_found]
    return BulkOut(succeeded=outcome.succeeded, not_found=outcome.not_found, results=results)


@router.delete("/generations/{generation_id}", status_code=204)
async def delete_generation(generation_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    """Deletes a generation: a running job is canceled first (and refunded); its video, thumbnail and the uploads
    only it used leave storage. Its billing history stays."""
    await library.delete_generation(ctx, user.id, generation_id)
    return Response(status_code=204)


@router.post("/generations/delete", response_model=BulkOut)
async def delete_generations(body: BulkIds, user: CurrentUser, ctx: Ctx) -> BulkOut:
    """Deletes up to 100 generations; ids that are not yours are listed in `not_found` and left alone."""
    return bulk_out(await library.delete_generations(ctx, user.id, body.ids))


@router.post("/generations/move", response_model=BulkOut)
async def move_generations(body: BulkMove, user: CurrentUser, ctx: Ctx) -> BulkOut:
    """Moves up to 100 generations into one of your projects."""
    return bulk_out(await library.move_generations(ctx, user.id, body.ids, body.project_id))


@router.post("/generations/download", response_class=StreamingResponse)
async def download_generations(body: BulkIds, user: CurrentUser, ctx: Ctx) -> StreamingResponse:
    """The videos among these ids as one ZIP, streamed, with a manifest.json (prompt, model, seed, charge)."""
    bundle = await archive.bundle_of(ctx, user.id, body.ids)
    return _zip_response(ctx, bundle, "reelgate-videos.zip")


@router.get("/projects/{project_id}/download", response_class=StreamingResponse)
async def download_project(project_id: str, user: CurrentUser, ctx: Ctx) -> StreamingResponse:
    bundle = await archive.bundle_of_project(ctx, user.id, project_id)
    return _zip_response(ctx, bundle, f"reelgate-{project_id}.zip")


def _zip_response(ctx: Ctx, bundle: archive.Bundle, filename: str) -> StreamingResponse:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return StreamingResponse(archive.stream_zip(ctx, bundle), media_type="application/zip", headers=headers)


@router.put("/generations/{generation_id}/favorite", response_model=GenerationOut)
async def add_favorite(generation_id: str, user: CurrentUser, ctx: Ctx) -> GenerationOut:
    return generation_out(await library.set_favorite(ctx, user.id, generation_id, True), ctx.config.public_url)


@router.delete("/generations/{generation_id}/favorite", response_model=GenerationOut)
async def remove_favorite(generation_id: str, user: CurrentUser, ctx: Ctx) -> GenerationOut:
    return generation_out(await library.set_favorite(ctx, user.id, generation_id, False), ctx.config.public_url)


@router.post("/generations/{generation_id}/shares", status_code=201, response_model=ShareOut)
async def create_share(generation_id: str, body: ShareCreate, user: CurrentUser, ctx: Ctx) -> ShareOut:
    """A link anyone may open without an account, showing this video (and its prompt if `show_prompt`)."""
    share = await sharing.create_share(
        ctx, user.id, generation_id, expires_in_days=body.expires_in_days, show_prompt=body.show_prompt
    )
    return share_out(share, sharing.share_url(ctx, share.id), ctx.clock())


@router.get("/generations/{generation_id}/shares", response_model=ShareList)
async def list_shares(generation_id: str, user: CurrentUser, ctx: Ctx) -> ShareList:
    shares = await sharing.list_shares(ctx, user.id, generation_id)
    now = ctx.clock()
    return ShareList(data=[share_out(s, sharing.share_url(ctx, s.id), now) for s in shares])


@router.delete("/shares/{share_id}", status_code=204)
async def revoke_share(share_id: str, user: CurrentUser, ctx: Ctx) -> Response:
    """Revokes a link: it answers 404 from now on."""
    await sharing.revoke_share(ctx, user.id, share_id)
    return Response(status_code=204)


@router.get("/storage", response_model=StorageOut)
async def storage(user: CurrentUser, ctx: Ctx) -> StorageOut:
    use = await storage_quota.storage_use(ctx, user.id)
    return StorageOut(
        used_bytes=use.used_bytes,
        outputs_bytes=use.outputs_bytes,
        uploads_bytes=use.uploads_bytes,
        quota_bytes=use.quota_bytes,
        retention_days=use.retention_days,
        expiring_within_week=use.expiring_soon,
    )


class QuotaUpdate(Strict):
    quota_mb: Annotated[int | None, Field(ge=0, le=1_000_000_000)] = Field(
        description="Megabytes for this user (0: no quota); null: the server's default"
    )


@router.put("/admin/users/{user_id}/storage-quota")
async def set_storage_quota(user_id: str, body: QuotaUpdate, admin: AdminUser, ctx: Ctx) -> dict[str, int | str | None]:
    await storage_quota.set_quota(ctx, user_id, body.quota_mb)
    return {"user_id": user_id, "quota_mb": body.quota_mb}


@public.get("/{token}/video", response_class=Response)
async def shared_video(token: str, request: Request, ctx: Ctx) -> Response:
    _share, generation = await sharing.open_share(ctx, token)
    assert generation.output_key is not None
    return await serve_object(
        request,
        ctx.store,
        generation.output_key,
        content_type=generation.output_content_type or "video/mp4",
        filename=f"{generation.id}.{generation.output_key.rsplit('.', 1)[-1]}",
        download=False,
    )


@public.get("/{token}/thumbnail", response_class=Response)
async def shared_thumbnail(token: str, request: Request, ctx: Ctx) -> Response:
    _share, generation = await sharing.open_share(ctx, token)
    if not generation.thumbnail_key:
        raise NotFound("This video has no thumbnail.")
    return await serve_object(
        request,
        ctx.store,
        generation.thumbnail_key,
        content_type="image/jpeg",
        filename="thumbnail.jpg",
        download=False,
    )


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(public)
