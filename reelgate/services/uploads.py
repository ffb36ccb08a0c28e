"""Image uploads for image-to-video: checked by content (not by name), stored, scoped to their owner."""

from __future__ import annotations

import base64
import binascii
import hashlib
import tempfile
from pathlib import Path

from reelgate import media
from reelgate.db.queries import uploads as upload_queries
from reelgate.db.records import Upload
from reelgate.domain.errors import NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from reelgate.domain.ids import new_id
from reelgate.services import storage_quota
from reelgate.services.context import ServiceContext
from reelgate.services.safe_fetch import FetchFailed, UnsafeURL, fetch_to_file
from reelgate.storage import upload_key

_EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}


def _shown_name(filename: str) -> str:
    """The client's file name is only shown back: control characters (NUL among them, which PostgreSQL cannot
    store) and unpaired surrogates are dropped rather than refusing a good image over its name."""
    kept = (ch for ch in filename if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF)
    return "".join(kept)[:255]


async def create_upload(ctx: ServiceContext, user_id: str, data: bytes, filename: str = "") -> Upload:
    config = ctx.config
    try:
        # On the bounded decode threads: however many uploads arrive at once, only a few decode at a time.
        info = await media.in_decode_pool(
            media.validate_image,
            data,
            max_bytes=config.max_upload_bytes,
            max_pixels=config.max_upload_pixels,
            max_decoded_bytes=config.max_upload_decoded_bytes,
        )
    except media.MediaError as exc:
        if exc.code == "too_large":
            raise PayloadTooLarge(
                f"Images may be at most {ctx.config.max_upload_bytes // (1024 * 1024)} MB.",
                details={"max_bytes": ctx.config.max_upload_bytes},
            ) from exc
        if exc.code == "too_many_pixels":
            raise PayloadTooLarge(
                "This image has too many pixels.", details={"max_pixels": ctx.config.max_upload_pixels}
            ) from exc
        if exc.code == "decoded_too_large":
            raise PayloadTooLarge(
                f"This image would take more than {config.max_upload_decoded_bytes // (1024 * 1024)} MB once "
                "decoded (width × height × channels × bit depth); send a smaller or 8-bit image.",
                details={"max_decoded_bytes": config.max_upload_decoded_bytes},
            ) from exc
        if exc.code == "unsupported_type":
            raise UnsupportedMediaType(
                "Only PNG, JPEG and WebP images are accepted.",
                details={"allowed": ["image/png", "image/jpeg", "image/webp"]},
            ) from exc
        raise ValidationFailed("file", f"This image could not be read: {exc}") from exc
    await storage_quota.check_room(ctx, user_id, len(data))
    upload_id = new_id("upl")
    key = upload_key(upload_id, _EXTENSIONS[info.format])
    with tempfile.NamedTemporaryFile(dir=ctx.store.staging_dir(), delete=False) as handle:
        handle.write(data)
        temp = Path(handle.name)
    try:
        await ctx.store.put_file(key, temp, info.content_type)
    finally:
        temp.unlink(missing_ok=True)
    upload = Upload(
        id=upload_id,
        user_id=user_id,
        object_key=key,
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        filename=_shown_name(filename),
        created_at=ctx.clock(),
    )
    await ctx.db.write(lambda tx: upload_queries.insert_upload(tx, upload))
    return upload


async def get_upload(ctx: ServiceContext, user_id: str, upload_id: str) -> Upload:
    upload = await ctx.db.read(lambda tx: upload_queries.upload_of_user(tx, user_id, upload_id))
    if upload is None:
        raise NotFound("Upload not found.")
    return upload


IMAGE_URL_SCHEMES = ("https://", "http://", "data:")


def is_image_url(value: str) -> bool:
    """Whether a start or end image is given by address (fetched, or a data URL) rather than as an upload id."""
    return value.startswith(IMAGE_URL_SCHEMES)


async def upload_from_url(ctx: ServiceContext, user_id: str, url: str, field: str) -> Upload:
    """An image given as an http(s) URL (fetched through the SSRF guard, at most the upload size) or a base64
    data URL, stored as the user's upload after the same content checks as any upload."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        if not header.endswith(";base64"):
            raise ValidationFailed(field, f"A data URL in {field} must be base64.")
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed(field, f"The data URL in {field} is not valid base64.") from None
    else:
        content = await _fetch_image(ctx, url, field)
    return await create_upload(ctx, user_id, content)


async def _fetch_image(ctx: ServiceContext, url: str, field: str) -> bytes:
    with tempfile.TemporaryDirectory(dir=ctx.store.staging_dir()) as folder:
        path = Path(folder) / "image"
        try:
            await fetch_to_file(
                url, path, max_bytes=ctx.config.max_upload_bytes, allow_hosts=ctx.config.fetch_allow_hosts, timeout=30
            )
        except UnsafeURL as exc:
            raise ValidationFailed(field, f"The image URL in {field} is not allowed: {exc.reason}") from exc
        except FetchFailed as exc:
            raise ValidationFailed(field, f"The image URL in {field} could not be fetched: {exc}") from exc
        return path.read_bytes()
