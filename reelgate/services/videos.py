"""Use cases behind the OpenAI-compatible /v1/videos API: listing without deleted videos, delete, remix."""

from __future__ import annotations

from typing import cast

from sqlalchemy import ColumnElement, Table, bindparam, exists, select
from sqlalchemy.exc import IntegrityError

from reelgate.db.rows import instance_from_row
from reelgate.db.tables import Generation
from reelgate.db.tables_webhooks import VideoDeletion, VideoRemix
from reelgate.domain.errors import Conflict, NotFound
from reelgate.domain.jobs import TERMINAL_STATES, GenerationStatus
from reelgate.services import generations
from reelgate.services.context import ServiceContext


def _not_deleted() -> ColumnElement[bool]:
    return ~exists().where(VideoDeletion.generation_id == Generation.id)


async def get_video(ctx: ServiceContext, user_id: str, video_id: str) -> Generation:
    """The generation behind a video id; deleted videos and other users' read as not found."""
    generation, _ = await get_video_and_source(ctx, user_id, video_id)
    return generation


_GENERATIONS = cast(Table, Generation.__table__)
# The hot retrieve path: built once, run on a bare connection (polling clients call it every few hundred ms).
_VIDEO_AND_SOURCE = (
    select(_GENERATIONS, VideoRemix.source_id.label("remixed_from"))
    .outerjoin(VideoRemix, VideoRemix.generation_id == _GENERATIONS.c.id)
    .where(
        _GENERATIONS.c.id == bindparam("video_id"),
        _GENERATIONS.c.user_id == bindparam("user_id"),
        ~exists().where(VideoDeletion.generation_id == _GENERATIONS.c.id),
    )
)


async def get_video_and_source(ctx: ServiceContext, user_id: str, video_id: str) -> tuple[Generation, str | None]:
    """The video and, when it is a remix, the video it was remixed from: one query."""
    async with ctx.db.read_connection() as connection:
        row = (await connection.execute(_VIDEO_AND_SOURCE, {"video_id": video_id, "user_id": user_id})).first()
    if row is None:
        raise NotFound(f"No video found with id '{video_id}'.", details={"video_id": video_id})
    values = row._asdict()
    remixed_from = values.pop("remixed_from")
    return instance_from_row(Generation, values), remixed_from


async def list_videos(
    ctx: ServiceContext, user_id: str, *, after: str | None, limit: int, descending: bool
) -> tuple[list[Generation], bool]:
    """Keyset pagination on the time-ordered id; returns the page and whether more follow."""
    query = select(Generation).where(Generation.user_id == user_id, _not_deleted())
    if after:
        query = query.where(Generation.id < after if descending else Generation.id > after)
    query = query.order_by(Generation.id.desc() if descending else Generation.id.asc()).limit(limit + 1)
    async with ctx.db.reader() as session:
        rows = list((await session.execute(query)).scalars())
    return rows[:limit], len(rows) > limit


async def remix_sources(ctx: ServiceContext, ids: list[str]) -> dict[str, str]:
    """remixed_from_video_id for each of these generations that is a remix."""
    if not ids:
        return {}
    async with ctx.db.reader() as session:
        rows = await session.execute(
            select(VideoRemix.generation_id, VideoRemix.source_id).where(VideoRemix.generation_id.in_(ids))
        )
        return {generation_id: source_id for generation_id, source_id in rows.all()}


async def delete_video(ctx: ServiceContext, user_id: str, video_id: str) -> None:
    """A running job is canceled first (its hold is released), then the video is hidden from the API.
    The stored file stays: the native API and the studio still show the generation."""
    generation = await get_video(ctx, user_id, video_id)
    if GenerationStatus(generation.status) not in TERMINAL_STATES:
        try:
            await generations.cancel_generation(ctx, user_id, video_id)
        except Conflict:
            pass  # it finished meanwhile; deleting it is still what was asked
    try:
        async with ctx.db.transaction() as session:
            session.add(VideoDeletion(generation_id=video_id, user_id=user_id, deleted_at=ctx.clock()))
    except IntegrityError as exc:
        # A concurrent delete won; this one reads as not found, as a second delete does.
        raise NotFound(f"No video found with id '{video_id}'.", details={"video_id": video_id}) from exc


async def remix_video(
    ctx: ServiceContext, user_id: str, video_id: str, prompt: str, *, idempotency_key: str | None = None
) -> Generation:
    """A new generation with the source's model and settings and the new prompt, billed like any other."""
    source = await get_video(ctx, user_id, video_id)
    if source.status != GenerationStatus.SUCCEEDED.value:
        raise Conflict("Only a completed video can be remixed.", details={"status": source.status})
    order = generations.order_from_generation(source, prompt=prompt)
    generation, replayed = await generations.create_generation(ctx, user_id, order, idempotency_key=idempotency_key)
    if not replayed:
        async with ctx.db.transaction() as session:
            session.add(VideoRemix(generation_id=generation.id, source_id=source.id))
    return generation
