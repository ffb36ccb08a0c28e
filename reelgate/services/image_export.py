"""An image generation downloaded in another format (PNG or WebP), converted on the server.

The stored output is copied to a scratch directory when the store is not local, then decoded and written on the
bounded decode threads under the upload budgets, so a few conversions at once cannot exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reelgate import media
from reelgate.domain.errors import Conflict, ValidationFailed
from reelgate.domain.jobs import GenerationStatus
from reelgate.services import generations
from reelgate.services.context import ServiceContext

FORMATS = tuple(media.EXPORT_FORMATS)


@dataclass(frozen=True)
class ImageExport:
    path: Path
    content_type: str
    filename: str
    width: int
    height: int


async def export_image(ctx: ServiceContext, user_id: str, generation_id: str, fmt: str, workdir: Path) -> ImageExport:
    """The user's image generation written as `fmt` into `workdir` (the caller removes it once sent)."""
    if fmt not in media.EXPORT_FORMATS:
        raise ValidationFailed("format", f"{fmt!r} is not a download format", allowed=list(FORMATS))
    # NotFound for another user's id (an organization's managers may also export what its wallet paid for)
    generation = await generations.viewable_generation(ctx, user_id, generation_id)
    if generation.status != GenerationStatus.SUCCEEDED.value or not generation.output_key:
        raise Conflict("This generation has no output yet.", code="not_ready", details={"status": generation.status})
    if generation.kind != "image":
        raise ValidationFailed("format", "Only an image can be downloaded in another format; a video is sent as it is.")
    source = ctx.store.local_path(generation.output_key)
    if source is None:
        source = workdir / "source"
        await ctx.store.get_file(generation.output_key, source, max_bytes=ctx.config.max_output_bytes)
    out = workdir / f"{generation.id}.{fmt}"
    try:
        width, height = await media.in_decode_pool(media.convert_image_file, source, out, fmt)
    except media.MediaError as exc:
        raise Conflict("This image cannot be converted.", code="not_convertible", details={"reason": exc.code}) from exc
    return ImageExport(out, media.CONTENT_TYPES[fmt], out.name, width, height)
