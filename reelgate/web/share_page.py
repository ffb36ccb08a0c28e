"""The page a share link opens, for anyone: the player, the prompt if its owner allows it, Open Graph tags."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from reelgate.api.deps import Ctx
from reelgate.domain.errors import NotFound
from reelgate.services import sharing
from reelgate.web.common import render

router = APIRouter(include_in_schema=False)


@router.get("/s/{token}", response_class=HTMLResponse)
async def shared(token: str, request: Request, ctx: Ctx) -> HTMLResponse:
    try:
        share, generation = await sharing.open_share(ctx, token)
    except NotFound as exc:
        return render(request, "error.html", None, status_code=404, title="Link not found", message=exc.message)
    base = f"{ctx.config.public_url}/s/{token}"
    meta = generation.output_meta or {}
    response = render(
        request,
        "share.html",
        None,
        page_url=base,
        video_url=f"{base}/video",
        thumbnail_url=f"{base}/thumbnail" if generation.thumbnail_key else "",
        content_type=generation.output_content_type or "video/mp4",
        width=meta.get("width"),
        height=meta.get("height"),
        prompt=generation.prompt if share.show_prompt else "",
        model=generation.model,
        is_image=generation.kind == "image",
    )
    # The token is the page's only secret: it must not leak to other sites through the Referer header.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response
