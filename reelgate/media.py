"""Media checks and derivatives: video probe (PyAV), thumbnails, image validation, and the preview renderer."""

from __future__ import annotations

import asyncio
import functools
import io
import math
import os
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ParamSpec, TypeVar

import av
from PIL import Image, ImageOps

from reelgate.media_render import KEN_BURNS_ZOOM, RenderSpec, cover, encode_preview, even

__all__ = [
    "ImageInfo",
    "MediaError",
    "RenderSpec",
    "VideoInfo",
    "decode_frame_source",
    "in_decode_pool",
    "convert_image_file",
    "make_image_thumbnail",
    "make_spritesheet",
    "make_thumbnail",
    "probe_image_file",
    "probe_video",
    "render_preview_video",
    "validate_image",
]

IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
# What one image may take in memory once decoded (width × height × channels × bytes per channel). A pixel cap
# alone lets a 16-bit RGBA PNG cost eight times an 8-bit greyscale one: 6000×6000×4×2 is 288 MB from a file of
# a few hundred KB. 128 MiB admits a 40-megapixel 8-bit RGB photo (120 MB).
DEFAULT_MAX_DECODED_BYTES = 128 * 1024 * 1024
# Image decodes run here, never more than this many at once, whatever the number of uploads in flight: peak
# decode memory is this many budgets, not one per request.
DECODE_WORKERS = 2
_decode_pool = ThreadPoolExecutor(max_workers=DECODE_WORKERS, thread_name_prefix="reelgate-decode")
# PNG colour types (IHDR byte 25) and how many channels each decodes to; a palette expands to RGB when used.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
P = ParamSpec("P")
T = TypeVar("T")
# A thumbnail shows the frame ~10% in: the first frame of a generated clip is often a fade from black.
THUMBNAIL_POSITION = 0.10
# How many frames we decode after a seek before settling for the latest one.
MAX_FRAMES_AFTER_SEEK = 240


class MediaError(Exception):
    """Raised when a file is not the media it claims to be; .code is a short string."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    duration: float
    fps: float
    codec: str
    frames: int | None
    has_audio: bool
    container: str


@dataclass(frozen=True)
class ImageInfo:
    format: str
    content_type: str
    width: int
    height: int
    size: int


# --- video ---------------------------------------------------------------------------------------


def _sniff_container(head: bytes) -> str | None:
    """Name the container from its magic bytes, or None; the file name is never trusted."""
    if head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in head[:64] else "matroska"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def _check_iso_boxes(path: Path) -> None:
    """Walk the top-level ISO-BMFF boxes: a box running past the end of the file means a cut-off download.

    A faststart file keeps its index at the front, so PyAV would open a truncated one happily.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            box_size, kind = struct.unpack(">I4s", f.read(8))
            if box_size == 1:
                (box_size,) = struct.unpack(">Q", f.read(8))
            elif box_size == 0:  # "extends to the end of the file"
                return
            if box_size < 8 or offset + box_size > size:
                raise MediaError("not_a_video", f"truncated file: box {kind!r} runs past the end")
            offset += box_size
        if offset != size:
            raise MediaError("not_a_video", "truncated file: trailing partial box header")


def _stream_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _read_video_info(path: Path, kind: str) -> VideoInfo:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise MediaError("not_a_video", "no video stream")
        stream = container.streams.video[0]
        # Decoding one frame proves the codec data is real, not just a plausible header.
        first = next(container.decode(stream), None)
        if first is None:
            raise MediaError("not_a_video", "no decodable frame")
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            width=first.width,
            height=first.height,
            duration=_stream_duration(container, stream),
            fps=float(rate) if rate else 0.0,
            codec=stream.codec_context.name,
            frames=stream.frames or None,
            has_audio=bool(container.streams.audio),
            container=kind,
        )


def probe_video(path: str | Path) -> VideoInfo:
    """Describe a video file, or raise MediaError("not_a_video") for anything that is not a decodable video."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise MediaError("not_a_video", f"unreadable: {exc.strerror}") from exc
    kind = _sniff_container(head)
    if kind is None:
        raise MediaError("not_a_video", "unrecognised container signature")
    if kind in ("mp4", "mov"):
        _check_iso_boxes(path)
    try:
        return _read_video_info(path, kind)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, StopIteration) as exc:
        raise MediaError("not_a_video", f"cannot decode: {exc}") from exc


def _frame_near(path: Path, fraction: float) -> Image.Image:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = _stream_duration(container, stream)
        target = duration * fraction
        if target > 0 and stream.time_base is not None:
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
        chosen = None
        for count, frame in enumerate(container.decode(stream)):
            chosen = frame
            if frame.time is None or frame.time >= target - 1e-3 or count >= MAX_FRAMES_AFTER_SEEK:
                break
        if chosen is None:
            raise MediaError("not_a_video", "no decodable frame")
        image: Image.Image = chosen.to_image()  # type: ignore[no-untyped-call]  # PyAV is untyped
        return image


def _save_jpeg(image: Image.Image, out_path: str | Path, max_width: int) -> tuple[int, int]:
    image = image.convert("RGB")
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height), Image.Resampling.LANCZOS)
    out = Path(out_path)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="JPEG", quality=85, optimize=True)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return image.size


def make_thumbnail(video_path: str | Path, out_path: str | Path, *, max_width: int = 480) -> tuple[int, int]:
    """Write a JPEG of the frame ~10% into the video (the first frame if seeking fails); return its (w, h)."""
    path = Path(video_path)
    probe_video(path)
    try:
        image = _frame_near(path, THUMBNAIL_POSITION)
    except (av.FFmpegError, OSError):
        image = _frame_near(path, 0.0)
    return _save_jpeg(image, out_path, max_width)


# A spritesheet is a grid of evenly spaced frames: up to this many columns and frames, each tile this wide.
SPRITESHEET_COLUMNS = 5
SPRITESHEET_FRAMES = 25
SPRITESHEET_TILE_WIDTH = 160


def _tiles_at(path: Path, fractions: list[float], tile_width: int) -> list[Image.Image]:
    """One frame near each fraction of the video's length, from one open container (a seek per frame), each
    scaled to `tile_width` as it is decoded: only tile-sized images are kept, never a full frame per tile."""
    tiles: list[Image.Image] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = _stream_duration(container, stream)
        for fraction in fractions:
            target = duration * fraction
            container.seek(int(target / stream.time_base) if target > 0 and stream.time_base else 0, stream=stream)
            chosen = None
            for count, frame in enumerate(container.decode(stream)):
                chosen = frame
                if frame.time is None or frame.time >= target - 1e-3 or count >= MAX_FRAMES_AFTER_SEEK:
                    break
            if chosen is not None:
                width = min(tile_width, chosen.width)
                height = max(1, round(chosen.height * width / chosen.width))
                # to_image passes these to the frame's reformatter, so the scaling happens in libswscale.
                tiles.append(chosen.to_image(width=width, height=height))  # type: ignore[no-untyped-call]
    if not tiles:
        raise MediaError("not_a_video", "no decodable frame")
    return tiles


def make_spritesheet(
    video_path: str | Path,
    out_path: str | Path,
    *,
    frames: int = SPRITESHEET_FRAMES,
    columns: int = SPRITESHEET_COLUMNS,
    tile_width: int = SPRITESHEET_TILE_WIDTH,
) -> tuple[int, int]:
    """Write a JPEG grid of `frames` evenly spaced frames (left to right, top to bottom); return its (w, h).
    A video with fewer frames than asked gives a smaller grid."""
    path = Path(video_path)
    info = probe_video(path)
    count = max(1, min(frames, info.frames or frames))
    try:
        tiles = _tiles_at(path, [(index + 0.5) / count for index in range(count)], tile_width)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError("not_a_video", f"cannot decode: {exc}") from exc
    width, height = tiles[0].size
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * width, rows * height))
    for index, tile in enumerate(tiles):
        if tile.size != (width, height):  # a stream whose frame size changes part-way
            tile = tile.resize((width, height), Image.Resampling.LANCZOS)
        sheet.paste(tile.convert("RGB"), ((index % cols) * width, (index // cols) * height))
    return _save_jpeg(sheet, out_path, sheet.width)


# --- images --------------------------------------------------------------------------------------


def _sniff_image(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def decoded_bytes(image: Image.Image, head: bytes) -> int:
    """Memory the decoded image needs: width × height × channels × bytes per channel, from the file's header
    (PNG's IHDR says its bit depth and colour type; JPEG and WebP are 8 bits per channel)."""
    channels, depth_bytes = len(image.getbands()), 1
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 26:
        channels = _PNG_CHANNELS.get(head[25], channels)
        depth_bytes = 2 if head[24] == 16 else 1
    return image.width * image.height * channels * depth_bytes


@contextmanager
def _opened_image(
    fp: IO[bytes],
    max_pixels: int,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    draft_size: tuple[int, int] | None = None,
) -> Iterator[Image.Image]:
    """Open lazily, refuse oversized headers before any pixel is decoded, then decode fully (a JPEG at the
    smallest scale that still covers `draft_size`, when given)."""
    head = fp.read(32)
    kind = _sniff_image(head)
    fp.seek(0)
    if kind is None:
        raise MediaError("unsupported_type", "only PNG, JPEG and WebP images are accepted")
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns (or raises) while opening; both mean "too many pixels" here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(fp, formats=list(IMAGE_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise MediaError("too_many_pixels", str(exc)) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise MediaError("corrupt", f"cannot read image header: {exc}") from exc
    with image:
        if IMAGE_FORMATS.get(image.format or "") != kind:
            raise MediaError("unsupported_type", "image content does not match its signature")
        if image.width * image.height > max_pixels:
            raise MediaError("too_many_pixels", f"{image.width}×{image.height} exceeds {max_pixels} pixels")
        needed = decoded_bytes(image, head)
        if needed > max_decoded_bytes:
            raise MediaError(
                "decoded_too_large",
                f"{image.width}×{image.height} needs {needed} bytes decoded, over {max_decoded_bytes}",
            )
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise MediaError("corrupt", f"cannot decode image: {exc}") from exc
        yield image


def _image_info(image: Image.Image, size: int) -> ImageInfo:
    kind = IMAGE_FORMATS[image.format or ""]
    return ImageInfo(format=kind, content_type=CONTENT_TYPES[kind], width=image.width, height=image.height, size=size)


def validate_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> ImageInfo:
    """Accept PNG, JPEG or WebP by content (never by name); raise MediaError otherwise."""
    if len(data) > max_bytes:
        raise MediaError("too_large", f"{len(data)} bytes exceeds {max_bytes}")
    with _opened_image(io.BytesIO(data), max_pixels, max_decoded_bytes) as image:
        return _image_info(image, len(data))


async def in_decode_pool(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs an image decode on the bounded decode threads (DECODE_WORKERS at a time); callers queue for one."""
    return await asyncio.get_running_loop().run_in_executor(_decode_pool, functools.partial(call, *args, **kwargs))


def probe_image_file(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Describe an image output file (PNG, JPEG or WebP), with the same checks as uploads."""
    path = Path(path)
    with path.open("rb") as f, _opened_image(f, max_pixels) as image:
        return _image_info(image, path.stat().st_size)


def make_image_thumbnail(image_path: str | Path, out_path: str | Path, *, max_width: int = 480) -> tuple[int, int]:
    """Write a JPEG thumbnail of an image (EXIF rotation applied, transparency on white); return its (w, h)."""
    with Path(image_path).open("rb") as f, _opened_image(f, DEFAULT_MAX_PIXELS) as image:
        upright = ImageOps.exif_transpose(image)
        if upright.mode in ("RGBA", "LA", "P", "PA"):
            rgba = upright.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            upright = flat
        return _save_jpeg(upright, out_path, max_width)


# The formats an image output can be converted to on download, and how each is written: PNG lossless at a
# moderate compression level (level 9 costs several times the CPU for a few percent), WebP lossy at a quality
# that keeps generated pictures free of visible artefacts.
EXPORT_FORMATS = {"png": ("PNG", {"compress_level": 6}), "webp": ("WEBP", {"quality": 90, "method": 4})}


def convert_image_file(source: str | Path, out_path: str | Path, fmt: str) -> tuple[int, int]:
    """Write an image output as `fmt` (a key of EXPORT_FORMATS), at its own size, upright; return its (w, h).

    The source is decoded under the same pixel and decoded-memory budgets as uploads. Modes neither format
    stores (CMYK, 16-bit) become RGB, or RGBA when the picture has transparency."""
    pillow_format, params = EXPORT_FORMATS[fmt]
    with Path(source).open("rb") as f, _opened_image(f, DEFAULT_MAX_PIXELS) as image:
        upright = ImageOps.exif_transpose(image)
        if upright.mode.startswith("I"):  # 16-bit greyscale: scaled to 8 bits, where a plain convert would clip
            upright = upright.convert("I").point(lambda value: value / 256).convert("L")
        if upright.mode not in ("RGB", "RGBA", "L", "LA") or (pillow_format == "WEBP" and upright.mode in ("L", "LA")):
            transparent = "A" in upright.getbands() or "transparency" in upright.info
            upright = upright.convert("RGBA" if transparent else "RGB")
        upright.save(out_path, format=pillow_format, **params)
        return upright.width, upright.height


# --- sandbox renderer ----------------------------------------------------------------------------


def decode_frame_source(data: bytes, width: int, height: int) -> Image.Image:
    """A start or end image for the preview renderer, decoded once: checked against the same budgets as uploads,
    turned upright (EXIF), RGB, and scaled to just cover the frame with the Ken Burns margin. Only this small
    image is kept while the clip renders, not the full-size decode."""
    frame_width = math.ceil(even(width) * KEN_BURNS_ZOOM)
    frame_height = math.ceil(even(height) * KEN_BURNS_ZOOM)
    side = max(frame_width, frame_height)  # either orientation: EXIF may turn the image after decoding
    with _opened_image(io.BytesIO(data), DEFAULT_MAX_PIXELS, draft_size=(side, side)) as image:
        ImageOps.exif_transpose(image, in_place=True)  # no full-size copy
        return cover(image, frame_width, frame_height)


def render_preview_video(
    spec: RenderSpec,
    out_path: str | Path,
    *,
    progress: Callable[[float], None] | None = None,
    start: Image.Image | None = None,
    end: Image.Image | None = None,
) -> VideoInfo:
    """Render the sandbox provider's preview clip (a local renderer, not an AI model) and return its probe.

    `start` and `end` are the images already decoded by `decode_frame_source`; when not given, the spec's
    image bytes are decoded here."""
    if start is None and spec.start_image is not None:
        start = decode_frame_source(spec.start_image, spec.width, spec.height)
    if end is None and spec.end_image is not None:
        end = decode_frame_source(spec.end_image, spec.width, spec.height)
    encode_preview(spec, out_path, start=start, end=end, progress=progress)
    return probe_video(out_path)
