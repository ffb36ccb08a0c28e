"""A real H.264 MP4 of random noise, at least `size` bytes (incompressible, decodable)."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image


def make(path: Path, size: int = 1 << 20) -> bytes:
    rng = random.Random(7)
    frames = 1
    while True:
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=24, options={"preset": "ultrafast", "crf": "10"})
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            for i in range(frames):
                frame = av.VideoFrame.from_image(Image.frombytes("RGB", (320, 240), rng.randbytes(320 * 240 * 3)))
                frame.pts, frame.time_base = i, Fraction(1, 24)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        data = path.read_bytes()
        if len(data) >= size:
            return data
        frames = max(frames + 1, int(frames * size / max(len(data), 1)) + 1)
