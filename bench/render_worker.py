"""Sandbox render vs raw PyAV encoding of the same frames, in one pinned process: prints JSON with CPU and
wall seconds per run. `render` = media.render_preview_video (draw + encode + probe); `raw` = the same frames,
drawn beforehand, encoded by PyAV with the renderer's codec settings (only the encode is timed)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from reelgate import media_render
from reelgate.media import render_preview_video
from reelgate.media_render import X264_OPTIONS, RenderSpec, TextScene, even, frame_count


def spec(duration: float) -> RenderSpec:
    return RenderSpec(
        width=1280,
        height=720,
        duration=duration,
        fps=24,
        seed=7,
        prompt="a red fox running through snow at dawn, cinematic",
    )


def raw_encode(frames: list[av.VideoFrame], path: Path, width: int, height: int, fps: int) -> None:
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options=X264_OPTIONS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, frame in enumerate(frames):
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def main(duration: float, rounds: int) -> dict[str, object]:
    s = spec(duration)
    width, height, total = even(s.width), even(s.height), frame_count(s)
    out: dict[str, list[dict[str, float]]] = {"render": [], "raw": [], "draw": []}
    with tempfile.TemporaryDirectory() as tmp:
        render_preview_video(spec(1), Path(tmp) / "warm.mp4")  # imports, fonts
        for r in range(rounds):
            for mode in ("render", "raw") if r % 2 == 0 else ("raw", "render"):
                path = Path(tmp) / f"{mode}-{r}.mp4"
                if mode == "render":
                    c0, w0 = time.process_time(), time.perf_counter()
                    render_preview_video(s, path)
                    out["render"].append(
                        {
                            "cpu": time.process_time() - c0,
                            "wall": time.perf_counter() - w0,
                            "bytes": path.stat().st_size,
                        }
                    )
                else:
                    c0, w0 = time.process_time(), time.perf_counter()
                    scene = TextScene(s, width, height, total)
                    frames = [av.VideoFrame.from_image(scene.frame(i)) for i in range(total)]
                    out["draw"].append({"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0})
                    c0, w0 = time.process_time(), time.perf_counter()
                    raw_encode(frames, path, width, height, s.fps)
                    out["raw"].append(
                        {
                            "cpu": time.process_time() - c0,
                            "wall": time.perf_counter() - w0,
                            "bytes": path.stat().st_size,
                        }
                    )
    return {
        "video_seconds": total / s.fps,
        "frames": total,
        "codec": f"libx264 {X264_OPTIONS}",
        "renderer": media_render.__name__,
        **out,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    a = parser.parse_args()
    print(json.dumps(main(a.duration, a.rounds)))
