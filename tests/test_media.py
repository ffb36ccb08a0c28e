"""Tests for reelgate.media: the preview renderer, video probe, thumbnails and image validation."""

from __future__ import annotations

import io
import resource
import struct
import zlib
from pathlib import Path

import av
import pytest
from PIL import Image, ImageStat

from reelgate.media import (
    MediaError,
    RenderSpec,
    convert_image_file,
    make_image_thumbnail,
    make_spritesheet,
    make_thumbnail,
    probe_image_file,
    probe_video,
    render_preview_video,
    validate_image,
)


def frame_image(path: Path, index: int) -> Image.Image:
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_image()
    raise AssertionError(f"no frame {index}")


def mean_colour(image: Image.Image) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(image.convert("RGB")).mean)


def colour_distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5


def png_bytes(size: tuple[int, int], colour: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def clip_720p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "clip.mp4"
    render_preview_video(RenderSpec(1280, 720, 2.0, seed=7, prompt="a lighthouse in a storm"), out)
    return out


# --- renderer ------------------------------------------------------------------------------------


def test_render_720p_is_real_h264_of_the_requested_length(clip_720p: Path) -> None:
    info = probe_video(clip_720p)
    assert (info.width, info.height) == (1280, 720)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.codec == "h264"
    assert info.fps == pytest.approx(24.0)
    assert info.frames == 48
    assert info.container == "mp4"
    assert not info.has_audio
    with av.open(str(clip_720p)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_render_is_faststart(clip_720p: Path) -> None:
    data = clip_720p.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(720, 1280, (720, 1280)), (720, 720, (720, 720)), (854, 480, (854, 480)), (853, 481, (854, 482))],
)
def test_render_sizes(tmp_path: Path, width: int, height: int, expected: tuple[int, int]) -> None:
    info = render_preview_video(RenderSpec(width, height, 0.5, fps=24), tmp_path / "out.mp4")
    assert (info.width, info.height) == expected
    assert info.frames == 12


def test_render_is_deterministic_by_seed(tmp_path: Path, clip_720p: Path) -> None:
    again = tmp_path / "again.mp4"
    render_preview_video(RenderSpec(1280, 720, 2.0, seed=7, prompt="a lighthouse in a storm"), again)
    assert frame_image(again, 30).tobytes() == frame_image(clip_720p, 30).tobytes()
    other = tmp_path / "other.mp4"
    render_preview_video(RenderSpec(1280, 720, 2.0, seed=8, prompt="a lighthouse in a storm"), other)
    assert frame_image(other, 30).tobytes() != frame_image(clip_720p, 30).tobytes()


def test_render_reports_progress_and_leaves_no_temp_files(tmp_path: Path) -> None:
    seen: list[float] = []
    render_preview_video(RenderSpec(640, 360, 2.0), tmp_path / "p.mp4", progress=seen.append)
    assert 9 <= len(seen) <= 12
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["p.mp4"]


def test_image_to_video_moves_from_start_to_end_image(tmp_path: Path) -> None:
    red, blue = (220, 30, 30), (30, 40, 220)
    spec = RenderSpec(
        640, 360, 1.0, seed=1, start_image=png_bytes((800, 600), red), end_image=png_bytes((300, 500), blue)
    )
    out = tmp_path / "i2v.mp4"
    info = render_preview_video(spec, out)
    assert info.frames == 24
    first, last = frame_image(out, 0), frame_image(out, 23)
    assert colour_distance(mean_colour(first), red) < 40
    assert colour_distance(mean_colour(last), blue) < 40


def test_render_rejects_a_start_image_that_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as err:
        render_preview_video(RenderSpec(320, 240, 0.5, start_image=b"not an image"), tmp_path / "x.mp4")
    assert err.value.code == "unsupported_type"
    assert list(tmp_path.iterdir()) == []


# --- probe and thumbnails ------------------------------------------------------------------------


def test_thumbnail_dimensions(tmp_path: Path, clip_720p: Path) -> None:
    thumb = tmp_path / "t.jpg"
    assert make_thumbnail(clip_720p, thumb) == (480, 270)
    with Image.open(thumb) as image:
        assert image.format == "JPEG" and image.size == (480, 270)
    assert make_thumbnail(clip_720p, thumb, max_width=2000) == (1280, 720)


def test_spritesheet_is_a_grid_of_evenly_spaced_frames(tmp_path: Path) -> None:
    """Red to blue over 24 frames: the first tile is red, the last blue, and the middle ones in between."""
    red, blue = (220, 30, 30), (30, 40, 220)
    clip = tmp_path / "i2v.mp4"
    spec = RenderSpec(
        640, 360, 1.0, seed=1, start_image=png_bytes((640, 360), red), end_image=png_bytes((640, 360), blue)
    )
    render_preview_video(spec, clip)
    sheet = tmp_path / "sheet.jpg"
    assert make_spritesheet(clip, sheet, frames=4, columns=2, tile_width=100) == (200, 112)
    with Image.open(sheet) as image:
        assert image.format == "JPEG"
        tiles = [image.crop((x, y, x + 100, y + 56)) for y in (0, 56) for x in (0, 100)]
        colours = [mean_colour(tile) for tile in tiles]
    assert colour_distance(colours[0], red) < 60 and colour_distance(colours[3], blue) < 60
    blueness = [c[2] - c[0] for c in colours]
    assert blueness == sorted(blueness)  # later tiles are later frames


def test_spritesheet_of_a_short_clip_has_one_tile_per_frame(tmp_path: Path) -> None:
    clip = tmp_path / "short.mp4"
    render_preview_video(RenderSpec(320, 180, 0.25, seed=2, prompt="a blink"), clip)
    frames = probe_video(clip).frames or 0
    assert 0 < frames < 25
    sheet = tmp_path / "sheet.jpg"
    width, height = make_spritesheet(clip, sheet)
    assert width == min(frames, 5) * 160 and height == -(-frames // 5) * 90


def test_spritesheet_refuses_what_is_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(MediaError):
        make_spritesheet(text, tmp_path / "sheet.jpg")


def test_probe_rejects_a_text_file(tmp_path: Path) -> None:
    fake = tmp_path / "video.mp4"
    fake.write_text("definitely not a video\n" * 100)
    with pytest.raises(MediaError) as err:
        probe_video(fake)
    assert err.value.code == "not_a_video"


def test_probe_rejects_a_truncated_mp4(tmp_path: Path, clip_720p: Path) -> None:
    data = clip_720p.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as err:
        probe_video(cut)
    assert err.value.code == "not_a_video"


def test_probe_rejects_an_mp4_without_its_index(tmp_path: Path) -> None:
    # Encoded without faststart, the moov index sits at the end; cutting the file loses it.
    path = tmp_path / "plain.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(24):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 64), (i * 10, 0, 0)))
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = path.read_bytes()
    assert data.index(b"moov") > data.index(b"mdat")
    path.write_bytes(data[: data.index(b"moov") - 4])
    with pytest.raises(MediaError):
        probe_video(path)


def test_probe_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        probe_video(tmp_path / "missing.mp4")


# --- images --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "kind"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")])
def test_validate_image_accepts_real_images(fmt: str, kind: str) -> None:
    data = png_bytes((321, 123), (10, 200, 30), fmt)
    info = validate_image(data)
    assert (info.format, info.width, info.height, info.size) == (kind, 321, 123, len(data))
    assert info.content_type == f"image/{kind}"


def test_validate_image_refuses_text_named_png(tmp_path: Path) -> None:
    fake = tmp_path / "cat.png"
    fake.write_text("<?php echo 'hi'; ?>")
    with pytest.raises(MediaError) as err:
        validate_image(fake.read_bytes())
    assert err.value.code == "unsupported_type"


def test_validate_image_refuses_gif() -> None:
    with pytest.raises(MediaError) as err:
        validate_image(png_bytes((10, 10), (1, 2, 3), "GIF"))
    assert err.value.code == "unsupported_type"


def test_validate_image_refuses_png_signature_over_other_content() -> None:
    jpeg = png_bytes((10, 10), (1, 2, 3), "JPEG")
    with pytest.raises(MediaError) as err:
        validate_image(b"\x89PNG\r\n\x1a\n" + jpeg[8:])
    assert err.value.code in ("unsupported_type", "corrupt")


def test_validate_image_refuses_oversize_bytes() -> None:
    with pytest.raises(MediaError) as err:
        validate_image(b"\x89PNG\r\n\x1a\n" + b"\0" * (12 * 1024 * 1024))
    assert err.value.code == "too_large"


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: decoding it would need width*height bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (12000, 12000), (50000, 50000)])
def test_validate_image_refuses_decompression_bombs_before_decoding(width: int, height: int) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(MediaError) as err:
        validate_image(png_declaring(width, height), max_pixels=40_000_000)
    assert err.value.code == "too_many_pixels"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50 * 1024


def test_validate_image_refuses_a_real_compressed_bomb() -> None:
    buf = io.BytesIO()
    Image.new("1", (7000, 7000)).save(buf, format="PNG")
    assert len(buf.getvalue()) < 1024 * 1024
    with pytest.raises(MediaError) as err:
        validate_image(buf.getvalue())
    assert err.value.code == "too_many_pixels"


def test_validate_image_refuses_corrupt_data() -> None:
    data = png_bytes((200, 200), (5, 5, 5))
    with pytest.raises(MediaError) as err:
        validate_image(data[:60])
    assert err.value.code == "corrupt"
    jpeg = png_bytes((200, 200), (5, 5, 5), "JPEG")
    with pytest.raises(MediaError) as err:
        validate_image(jpeg[:20] + b"\x00" * 40)
    assert err.value.code == "corrupt"


def test_probe_image_file_and_thumbnail(tmp_path: Path) -> None:
    src = tmp_path / "out.webp"
    src.write_bytes(png_bytes((1024, 576), (90, 90, 200), "WEBP"))
    info = probe_image_file(src)
    assert (info.format, info.width, info.height) == ("webp", 1024, 576)
    thumb = tmp_path / "thumb.jpg"
    assert make_image_thumbnail(src, thumb) == (480, 270)
    with Image.open(thumb) as image:
        assert image.format == "JPEG"


def test_image_thumbnail_flattens_transparency_on_white(tmp_path: Path) -> None:
    src = tmp_path / "clear.png"
    Image.new("RGBA", (100, 50), (0, 0, 0, 0)).save(src)
    thumb = tmp_path / "t.jpg"
    assert make_image_thumbnail(src, thumb) == (100, 50)
    with Image.open(thumb) as image:
        assert min(mean_colour(image)) > 240


@pytest.mark.parametrize(("fmt", "pillow_format"), [("png", "PNG"), ("webp", "WEBP")])
def test_convert_image_keeps_size_and_transparency(tmp_path: Path, fmt: str, pillow_format: str) -> None:
    src = tmp_path / "half-clear.png"
    picture = Image.new("RGBA", (96, 160), (200, 30, 30, 255))
    picture.paste((0, 0, 0, 0), (0, 0, 96, 80))  # the top half transparent
    picture.save(src)
    out = tmp_path / f"out.{fmt}"
    assert convert_image_file(src, out, fmt) == (96, 160)
    with Image.open(out) as image:
        assert image.format == pillow_format and image.size == (96, 160) and image.mode == "RGBA"
        assert image.getpixel((10, 10))[3] == 0 and image.getpixel((10, 150))[3] == 255


def test_convert_image_turns_16_bit_greyscale_into_webp(tmp_path: Path) -> None:
    src = tmp_path / "deep.png"
    Image.new("I;16", (64, 32), 40000).save(src)
    out = tmp_path / "out.webp"
    assert convert_image_file(src, out, "webp") == (64, 32)
    with Image.open(out) as image:
        assert image.format == "WEBP" and image.mode == "RGB"
        grey = image.getpixel((32, 16))
        assert grey == pytest.approx((156, 156, 156), abs=3)  # 40000 of 65535 is 156 of 255, not clipped to white


def test_convert_image_refuses_a_picture_over_the_pixel_budget_before_decoding(tmp_path: Path) -> None:
    src = tmp_path / "bomb.png"
    src.write_bytes(png_declaring(12000, 12000))
    with pytest.raises(MediaError) as err:
        convert_image_file(src, tmp_path / "out.png", "png")
    assert err.value.code == "too_many_pixels"
    assert not (tmp_path / "out.png").exists()
