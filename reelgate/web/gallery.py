"""The studio's history: generation cards that poll while running, with player, download, cancel and retry, and
the finished images as a grid of pictures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from reelgate.api.deps import Ctx
from reelgate.api.presenters import generation_out
from reelgate.db.records import Generation
from reelgate.domain.errors import NotFound, ReelgateError
from reelgate.domain.jobs import is_terminal
from reelgate.services import admin, generations
from reelgate.services.context import ServiceContext
from reelgate.services.generations import GenerationFilter
from reelgate.web.common import FormViewer, PageViewer, Viewer, fragment, htmx_error, toast

router = APIRouter(prefix="/studio", include_in_schema=False)
PAGE_SIZE = 12
# Tells the page that the balance moved, so the live estimate re-checks whether Generate is affordable.
CREDITS_CHANGED = {"HX-Trigger": "credits-changed"}

STATUS_LABELS = {
    "queued": "Queued",
    "submitting": "Starting",
    "processing": "Generating",
    "storing": "Saving",
    "succeeded": "Ready",
    "failed": "Failed",
    "canceled": "Canceled",
    "expired": "Timed out",
}


# The extension a stored output is downloaded with, by its checked content type.
DOWNLOAD_EXTENSIONS = {
    "video/mp4": "mp4",
    "video/webm": "webm",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "text/plain; charset=utf-8": "txt",
}


@dataclass(frozen=True)
class Card:
    g: Any  # the API's GenerationOut, so the card shows exactly what clients see
    model_name: str
    status_label: str
    running: bool
    problem: str  # the error in plain words, empty when there is none
    is_image: bool = False  # an image model's output: shown as a picture, not in a video player
    is_text: bool = False  # a text model's output: shown as text, with Copy
    download_name: str = ""  # the file name a download is saved under, with the output's own extension


def _problem(g: Any) -> str:
    if g.status == "canceled":
        return "You canceled this generation. Its credits were refunded."
    if g.status == "expired":
        return "The provider did not finish in time. Its credits were refunded."
    if g.status == "failed":
        detail = g.error.message if g.error and g.error.message else "no reason was given"
        return f"The video could not be made ({detail}). Its credits were refunded."
    return ""


def card_of(ctx: ServiceContext, generation: Generation) -> Card:
    # An empty public URL makes every media link relative, so the browser sends the session cookie.
    g = generation_out(generation, "")
    try:
        model_name = ctx.catalog.get(g.model).name
    except NotFound:
        model_name = g.model
    extension = DOWNLOAD_EXTENSIONS.get(generation.output_content_type or "", "mp4")
    return Card(
        g,
        model_name,
        STATUS_LABELS.get(g.status, g.status),
        not is_terminal(g.status),
        _problem(g),
        is_image=generation.kind == "image",
        is_text=generation.kind == "text",
        download_name=f"{generation.id}.{extension}",
    )


def render_card(ctx: ServiceContext, generation: Generation, csrf: str) -> str:
    return fragment("_card.html", card=card_of(ctx, generation), csrf=csrf)


async def balance_oob(ctx: ServiceContext, current: Viewer) -> str:
    """The header's balance and low-credit warning, refreshed out of band after credits move."""
    credits = await admin.credits_of(ctx, current.user.id)
    return fragment("_balance.html", credits=credits, threshold=current.low_credit_threshold, oob=True)


# The library's views: every generation as a card, or the finished images as a grid of pictures.
View = Literal["all", "images"]


async def gallery_page(
    ctx: ServiceContext,
    user_id: str,
    project_id: str,
    cursor: str | None = None,
    *,
    favorites: bool = False,
    view: View = "all",
) -> tuple[list[Card], str | None]:
    images = view == "images"
    filters = GenerationFilter(
        project_id=project_id,
        favorite=True if favorites else None,
        kind="image" if images else None,
        status="succeeded" if images else None,  # a picture to show: running and failed ones stay in "All"
    )
    rows, next_cursor = await generations.list_generations(
        ctx, user_id, filters=filters, limit=PAGE_SIZE, cursor=cursor
    )
    return [card_of(ctx, row) for row in rows], next_cursor


@router.get("/gallery", response_class=HTMLResponse)
async def more_cards(
    current: PageViewer,
    ctx: Ctx,
    project: Annotated[str, Query(max_length=40)],
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    favorites: bool = False,
    view: View = "all",
) -> HTMLResponse:
    cards, next_cursor = await gallery_page(ctx, current.user.id, project, cursor, favorites=favorites, view=view)
    return HTMLResponse(
        fragment(
            "_tiles.html" if view == "images" else "_cards.html",
            cards=cards,
            next_cursor=next_cursor,
            project_id=project,
            favorites=favorites,
            csrf=current.csrf,
        )
    )


@router.get("/generations/{generation_id}/card", response_class=HTMLResponse)
async def card(generation_id: str, current: PageViewer, ctx: Ctx) -> HTMLResponse:
    generation = await generations.get_generation(ctx, current.user.id, generation_id)
    body = render_card(ctx, generation, current.csrf)
    if not is_terminal(generation.status):
        return HTMLResponse(body)
    return HTMLResponse(body + await balance_oob(ctx, current), headers=CREDITS_CHANGED)


@router.get("/generations/{generation_id}/text", response_class=HTMLResponse)
async def text_output(generation_id: str, current: PageViewer, ctx: Ctx) -> HTMLResponse:
    """A finished text generation's text, escaped by the template, for its card."""
    text = await generations.output_text(ctx, current.user.id, generation_id)
    return HTMLResponse(fragment("_text_output.html", generation_id=generation_id, text=text))


@router.post("/generations/{generation_id}/cancel", response_class=HTMLResponse)
async def cancel(generation_id: str, request: Request, current: FormViewer, ctx: Ctx) -> HTMLResponse:
    try:
        generation = await generations.cancel_generation(ctx, current.user.id, generation_id)
    except ReelgateError as exc:
        return htmx_error(exc)
    message = "Canceled. Its credits are back in your balance." if generation.status == "canceled" else ""
    body = render_card(ctx, generation, current.csrf) + await balance_oob(ctx, current)
    return HTMLResponse(body + (toast(message) if message else ""), headers=CREDITS_CHANGED)


@router.post("/generations/{generation_id}/retry", response_class=HTMLResponse)
async def retry(generation_id: str, current: FormViewer, ctx: Ctx) -> HTMLResponse:
    try:
        generation, replayed = await generations.retry_generation(ctx, current.user.id, generation_id)
    except ReelgateError as exc:
        return htmx_error(exc)
    if replayed:  # a second click while the first retry runs: that retry's card is on the page already
        return HTMLResponse(toast("It is already running again."), headers={"HX-Reswap": "none"})
    new_card = fragment("_card.html", card=card_of(ctx, generation), csrf=current.csrf)
    body = f'<div hx-swap-oob="afterbegin:#gallery-list">{new_card}</div>'
    body += await balance_oob(ctx, current)
    body += toast(f"Started again; {generation.quote_total} credits are on hold.")
    return HTMLResponse(body, headers={"HX-Reswap": "none", **CREDITS_CHANGED})
