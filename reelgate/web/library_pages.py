"""The studio's library actions: delete (one, or a selection), favourites, moves, ZIP downloads, share links,
and deleting a project with a choice for its videos."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from reelgate.api.deps import Ctx
from reelgate.domain.errors import ReelgateError
from reelgate.services import archive, generations, library, sharing
from reelgate.services.library import DeleteChoice
from reelgate.web.common import FormViewer, PageViewer, fragment, htmx_error, redirect, toast
from reelgate.web.gallery import CREDITS_CHANGED, balance_oob, render_card

router = APIRouter(prefix="/studio", include_in_schema=False)

EXPIRY_CHOICES = {"never": None, "1": 1, "7": 7, "30": 30}


def _hx_redirect(request: Request, url: str, *, notice: str = "", error: str = "") -> Response:
    """A full page load after an htmx request, carrying a flash message (htmx does not follow a 303 itself)."""
    response = redirect(request, url, notice=notice, error=error)
    response.status_code = 200
    del response.headers["location"]
    response.headers["HX-Redirect"] = url
    return response


def _selected(form_ids: list[str] | None) -> list[str]:
    """The ticked ids (check_bulk refuses none, or more than the maximum, in plain words)."""
    return [i for i in form_ids or [] if i][: library.MAX_BULK + 1]


@router.post("/generations/{generation_id}/favorite", response_class=HTMLResponse)
async def toggle_favorite(generation_id: str, current: FormViewer, ctx: Ctx) -> HTMLResponse:
    try:
        generation = await library.set_favorite(
            ctx, current.user.id, generation_id, not (await _is_favorite(ctx, current.user.id, generation_id))
        )
    except ReelgateError as exc:
        return htmx_error(exc)
    return HTMLResponse(render_card(ctx, generation, current.csrf))


async def _is_favorite(ctx: Ctx, user_id: str, generation_id: str) -> bool:
    return (await generations.get_generation(ctx, user_id, generation_id)).favorite


@router.post("/generations/{generation_id}/delete", response_class=HTMLResponse)
async def delete_one(generation_id: str, current: FormViewer, ctx: Ctx) -> HTMLResponse:
    try:
        await library.delete_generation(ctx, current.user.id, generation_id)
    except ReelgateError as exc:
        return htmx_error(exc)
    body = await balance_oob(ctx, current) + toast("Deleted. Its video is gone from storage; your history keeps it.")
    return HTMLResponse(body, headers=CREDITS_CHANGED)


@router.post("/generations/bulk-delete")
async def delete_selected(
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    back: Annotated[str, Form(max_length=300)],
    ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    try:
        outcome = await library.delete_generations(ctx, current.user.id, _selected(ids))
    except ReelgateError as exc:
        return htmx_error(exc)
    note = f"Deleted {len(outcome.succeeded)} videos."
    if outcome.not_found:
        note += f" {len(outcome.not_found)} could not be found."
    return _hx_redirect(request, _safe_back(back), notice=note)


@router.post("/generations/bulk-move")
async def move_selected(
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    project_id: Annotated[str, Form(max_length=40)],
    back: Annotated[str, Form(max_length=300)],
    ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    try:
        outcome = await library.move_generations(ctx, current.user.id, _selected(ids), project_id)
    except ReelgateError as exc:
        return htmx_error(exc)
    return _hx_redirect(request, _safe_back(back), notice=f"Moved {len(outcome.succeeded)} videos.")


@router.post("/generations/download")
async def download_selected(
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    ids: Annotated[list[str] | None, Form()] = None,
    back: Annotated[str, Form(max_length=300)] = "/studio",
) -> Response:
    try:
        bundle = await archive.bundle_of(ctx, current.user.id, _selected(ids))
    except ReelgateError as exc:
        return redirect(request, _safe_back(back), error=exc.message)
    headers = {"Content-Disposition": 'attachment; filename="reelgate-videos.zip"', "Cache-Control": "no-store"}
    return StreamingResponse(archive.stream_zip(ctx, bundle), media_type="application/zip", headers=headers)


def _safe_back(back: str) -> str:
    """Only a studio path: never an address elsewhere."""
    return back if back.startswith("/studio") and not back.startswith("//") else "/studio"


async def _share_dialog(ctx: Ctx, current: PageViewer, generation_id: str, created: str = "") -> HTMLResponse:
    shares = await sharing.list_shares(ctx, current.user.id, generation_id)
    now = ctx.clock()
    links = [
        {
            "id": s.id,
            "url": sharing.share_url(ctx, s.id),
            "show_prompt": s.show_prompt,
            "expires_at": s.expires_at,
            "live": s.revoked_at is None and (s.expires_at is None or s.expires_at > now),
        }
        for s in shares
    ]
    return HTMLResponse(
        fragment("_share_dialog.html", generation_id=generation_id, links=links, created=created, csrf=current.csrf)
    )


@router.get("/generations/{generation_id}/share", response_class=HTMLResponse)
async def share_dialog(generation_id: str, current: PageViewer, ctx: Ctx) -> HTMLResponse:
    try:
        return await _share_dialog(ctx, current, generation_id)
    except ReelgateError as exc:
        return htmx_error(exc)


@router.post("/generations/{generation_id}/share", response_class=HTMLResponse)
async def create_share(
    generation_id: str,
    current: FormViewer,
    ctx: Ctx,
    expires: Annotated[str, Form(max_length=10)] = "never",
    show_prompt: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    try:
        share = await sharing.create_share(
            ctx, current.user.id, generation_id, expires_in_days=EXPIRY_CHOICES.get(expires), show_prompt=show_prompt
        )
        return await _share_dialog(ctx, current, generation_id, created=sharing.share_url(ctx, share.id))
    except ReelgateError as exc:
        return htmx_error(exc)


@router.post("/shares/{share_id}/revoke", response_class=HTMLResponse)
async def revoke_share(
    share_id: str, current: FormViewer, ctx: Ctx, generation_id: Annotated[str, Form(max_length=40)]
) -> HTMLResponse:
    try:
        await sharing.revoke_share(ctx, current.user.id, share_id)
        return await _share_dialog(ctx, current, generation_id)
    except ReelgateError as exc:
        return htmx_error(exc)


@router.post("/projects/{project_id}/delete")
async def delete_project(
    project_id: str,
    request: Request,
    current: FormViewer,
    ctx: Ctx,
    videos: Annotated[DeleteChoice, Form()] = DeleteChoice.MOVE,
) -> Response:
    try:
        target = await library.delete_project(ctx, current.user.id, project_id, videos)
    except ReelgateError as exc:
        return _hx_redirect(request, f"/studio?project={project_id}", error=exc.message)
    if videos is DeleteChoice.MOVE and target:
        return _hx_redirect(request, f"/studio?project={target}", notice="Project deleted; its videos were moved here.")
    return _hx_redirect(request, "/studio", notice="Project deleted with its videos.")
