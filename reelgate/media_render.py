"""The sandbox provider's preview renderer: deterministic animated H.264 clips drawn with Pillow."""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
from PIL import Image, ImageDraw, ImageFont

LABEL = "reelgate preview"
# "ultrafast" renders about twice as fast as "veryfast" for files ~3× larger (still ~1 Mbit/s at 720p
# for these flat scenes); speed matters more for a preview. crf 26 is plenty for a preview.
X264_OPTIONS = {"preset": "ultrafast", "crf": "26"}
# The Ken Burns move zooms in by this factor over the whole clip.
KEN_BURNS_ZOOM = 1.12
SHAPES = 5


@dataclass(frozen=True)
class RenderSpec:
    """What to render: output size, length, frame rate, and the inputs that seed the picture."""

    width: int
    height: int
    duration: float
    fps: int = 24
    seed: int = 0
    prompt: str = ""
    start_image: bytes | None = None
    end_image: bytes | None = None


class Scene(Protocol):
    def frame(self, index: int) -> Image.Image: ...


def even(n: int) -> int:
    """H.264 in yuv420p needs even dimensions, so odd sizes are rounded up."""
    return max(2, n + (n & 1))


def frame_count(spec: RenderSpec) -> int:
    return max(1, round(spec.duration * spec.fps))


def encode_preview(
    spec: RenderSpec,
    out_path: str | Path,
    *,
    start: Image.Image | None = None,
    end: Image.Image | None = None,
    progress: Callable[[float], None] | None = None,
) -> None:
    """Encode the clip to a temporary file beside out_path, then rename it so no half-file is ever visible."""
    width, height = even(spec.width), even(spec.height)
    total = frame_count(spec)
    scene: Scene
    if start is not None:
        scene = ImageScene(spec, width, height, total, start, end)
    else:
        scene = TextScene(spec, width, height, total)
    out = Path(out_path)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    try:
        _encode(scene, tmp_name, width, height, spec.fps, total, progress)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _encode(
    scene: Scene,
    path: str,
    width: int,
    height: int,
    fps: int,
    total: int,
    progress: Callable[[float], None] | None,
) -> None:
    # faststart moves the index to the front so browsers can play while downloading.
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options=X264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        time_base = Fraction(1, fps)
        step = max(1, total // 10)
        for index in range(total):
            frame = av.VideoFrame.from_image(scene.frame(index))  # type: ignore[no-untyped-call]  # PyAV is untyped
            frame.pts, frame.time_base = index, time_base
            container.mux(stream.encode(frame))
            if progress is not None and ((index + 1) % step == 0 or index + 1 == total):
                progress((index + 1) / total)
        container.mux(stream.encode(None))


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (AttributeError, OSError):  # Pillow without FreeType has only the fixed bitmap font
        return ImageFont.load_default()


def _label(width: int, height: int, text: str) -> Image.Image:
    """A small translucent badge that says this is a preview, not a generated video."""
    font = _font(max(10, min(width, height) // 36))
    draw = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(4, (bottom - top) // 2)
    badge = Image.new("RGBA", (int(right - left + 2 * pad), int(bottom - top + 2 * pad)), (0, 0, 0, 140))
    ImageDraw.Draw(badge).text((pad - left, pad - top), text, font=font, fill=(255, 255, 255, 230))
    return badge


def _prompt_band(width: int, height: int, prompt: str) -> Image.Image | None:
    if not prompt.strip():
        return None
    size = max(12, min(width, height) // 22)
    font = _font(size)
    chars = max(10, int(width * 0.85 / (size * 0.55)))
    lines = textwrap.wrap(" ".join(prompt.split()), chars, max_lines=3, placeholder=" …")
    text = "\n".join(lines)
    draw = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=size // 3)
    pad = size // 2
    band = Image.new("RGBA", (int(min(width, right - left + 2 * pad)), int(bottom - top + 2 * pad)), (0, 0, 0, 120))
    ImageDraw.Draw(band).multiline_text(
        (pad - left, pad - top), text, font=font, fill=(255, 255, 255, 255), spacing=size // 3
    )
    return band


def _gradient(size: tuple[int, int], corners: list[tuple[int, int, int]]) -> Image.Image:
    """A smooth four-colour gradient: a 2×2 image scaled up bilinearly (no per-pixel Python)."""
    tiny = Image.new("RGB", (2, 2))
    tiny.putdata(corners)
    # The box spans pixel centre to pixel centre, so each corner colour lands exactly on its corner.
    return tiny.resize(size, Image.Resampling.BILINEAR, box=(0.5, 0.5, 1.5, 1.5))


class TextScene:
    """Text-to-video: a drifting gradient with orbiting shapes, coloured by a hash of seed and prompt."""

    def __init__(self, spec: RenderSpec, width: int, height: int, total: int) -> None:
        digest = hashlib.sha256(f"{spec.seed}\x00{spec.prompt}".encode()).digest()
        self.width, self.height, self.fps = width, height, spec.fps
        self.margin_x, self.margin_y = max(2, width // 5), max(2, height // 5)
        corners = [(digest[i], digest[i + 1], digest[i + 2]) for i in range(0, 12, 3)]
        self.background = _gradient((width + self.margin_x, height + self.margin_y), corners)
        self.shapes = [tuple(digest[12 + 4 * k : 16 + 4 * k]) for k in range(SHAPES)]
        self.band = _prompt_band(width, height, spec.prompt)
        self.label = _label(width, height, f"{LABEL} · seed {spec.seed}")

    def frame(self, index: int) -> Image.Image:
        t = index / self.fps
        x = round(self.margin_x * (0.5 + 0.5 * math.sin(t * 0.7)))
        y = round(self.margin_y * (0.5 + 0.5 * math.cos(t * 0.5)))
        image = self.background.crop((x, y, x + self.width, y + self.height))
        draw = ImageDraw.Draw(image)
        unit = min(self.width, self.height)
        for k, (a, b, c, d) in enumerate(self.shapes):
            radius = unit * (0.05 + 0.1 * a / 255)
            cx = self.width * (0.5 + 0.4 * math.sin(t * (0.4 + b / 200) + k))
            cy = self.height * (0.5 + 0.4 * math.cos(t * (0.3 + c / 250) + 2 * k))
            colour = (255 - a, (b + 96) % 256, d)
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
        if self.band is not None:
            pos = ((self.width - self.band.width) // 2, self.height - self.band.height - unit // 20)
            image.paste(self.band, pos, self.band)
        image.paste(self.label, (unit // 40, unit // 40), self.label)
        return image


def cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to fill width×height and crop the overflow around the centre, like CSS object-fit: cover.

    Common modes are scaled first and converted to RGB after, so a large source is never copied at full size."""
    if image.mode not in ("RGB", "RGBA", "L", "LA"):  # palettes, 16-bit, CMYK: resampled in RGB
        image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    box_w, box_h = width / scale, height / scale
    left, top = (image.width - box_w) / 2, (image.height - box_h) / 2
    scaled = image.resize((width, height), Image.Resampling.BILINEAR, box=(left, top, left + box_w, top + box_h))
    return scaled if scaled.mode == "RGB" else scaled.convert("RGB")


class ImageScene:
    """Image-to-video: a slow Ken Burns move over the start image, cross-fading into the end image."""

    def __init__(
        self, spec: RenderSpec, width: int, height: int, total: int, start: Image.Image, end: Image.Image | None
    ) -> None:
        self.width, self.height, self.total = width, height, total
        self.source = cover(start, math.ceil(width * KEN_BURNS_ZOOM), math.ceil(height * KEN_BURNS_ZOOM))
        self.end = cover(end, width, height) if end is not None else None
        # The seed picks the pan direction so two seeds of the same image differ.
        self.direction = 1 if spec.seed % 2 == 0 else -1
        self.label = _label(width, height, LABEL)

    def frame(self, index: int) -> Image.Image:
        p = index / (self.total - 1) if self.total > 1 else 1.0
        zoom = 1 + (KEN_BURNS_ZOOM - 1) * _smoothstep(p)
        win_w, win_h = self.source.width / zoom, self.source.height / zoom
        spare_x, spare_y = self.source.width - win_w, self.source.height - win_h
        left = spare_x * (0.5 + self.direction * 0.5 * (p - 0.5))
        top = spare_y * 0.5
        image = self.source.resize(
            (self.width, self.height), Image.Resampling.BILINEAR, box=(left, top, left + win_w, top + win_h)
        )
        if self.end is not None:
            # Hold the start image for the first third, then fade so the last frame is the end image.
            alpha = _smoothstep((p - 0.3) / 0.7)
            if alpha > 0:
                image = Image.blend(image, self.end, alpha)
        unit = min(self.width, self.height)
        image.paste(self.label, (unit // 40, unit // 40), self.label)
        return image
