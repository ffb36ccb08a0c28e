"""Use cases behind the OpenAI-compatible /v1/videos API: listing without deleted videos, delete, remix."""

from __future__ import annotations

from reelgate.db.queries import videos as video_queries
from reelgate.db.records import Generation
from reelgate.domain.errors import Conflict, NotFound
from reelgate.domain.jobs import TERMINAL_STATES, GenerationStatus
from reelgate.services import generations
from reelgate.services.context import ServiceContext
from reelgate.storage import spritesheet_key


def _no_video(video_id: str) -> NotFound:
    return NotFound(f"No video found with id '{video_id}'.", details={"video_id": video_id})


async def get_video(ctx: ServiceContext, user_id: str, video_id: str) -> Generation:
    """The generation behind a video id; deleted videos and other users' read as not found."""
    generation, _ = await get_video_and_source(ctx, user_id, video_id)
    return generation


async def get_video_and_source(ctx: ServiceContext, user_id: str, video_id: str) -> tuple[Generation, str | None]:
    """The video and, when it is a remix, the video it was remixed from: one query."""
    found = await ctx.db.read(lambda tx: video_queries.video_and_source(tx, user_id, video_id))
    if found is None:
        raise _no_video(video_id)
    return found


async def list_videos(
    ctx: ServiceContext, user_id: str, *, after: str | None, limit: int, descending: bool
) -> tuple[list[Generation], bool]:
    """Keyset pagination on the time-ordered id; returns the page and whether more follow."""
    rows = await ctx.db.read(
        lambda tx: video_queries.videos_page(tx, user_id, after=after, limit=limit + 1, descending=descending)
    )
    return rows[:limit], len(rows) > limit


async def remix_sources(ctx: ServiceContext, ids: list[str]) -> dict[str, str]:
    """remixed_from_video_id for each of these generations that is a remix."""
    if not ids:
        return {}
    return await ctx.db.read(lambda tx: video_queries.remix_sources(tx, ids))


async def delete_video(ctx: ServiceContext, user_id: str, video_id: str) -> None:
    """A running job is canceled first (its hold is released), then the video is hidden from the API.
    The stored file stays: the native API and the studio still show the generation."""
    generation = await get_video(ctx, user_id, video_id)
    if GenerationStatus(generation.status) not in TERMINAL_STATES:
        try:
            await generations.cancel_generation(ctx, user_id, video_id)
        except Conflict:
            pass  # it finished meanwhile; deleting it is still what was asked
    if not await ctx.db.write(lambda tx: video_queries.mark_deleted(tx, user_id, video_id, ctx.clock())):
        raise _no_video(video_id)  # a concurrent delete won; this one reads as not found, as a second delete does


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
        await ctx.db.write(lambda tx: video_queries.record_remix(tx, generation.id, source.id))
    return generation


async def spritesheet_of(ctx: ServiceContext, generation: Generation) -> str:
    """The stored key of the video's spritesheet (a grid of evenly spaced frames, made when the video was stored);
    a video stored before spritesheets were made has none."""
    key = spritesheet_key(generation.id)
    if await ctx.store.size_of(key) is None:
        raise NotFound("This video has no spritesheet.", details={"video_id": generation.id})
    return key
