"""A RunPod serverless worker speaking the LTX-2 handler contract, rendered by reelgate's preview renderer."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
import runpod

from reelgate.media import RenderSpec, render_preview_video

# The LTX-2 handler contract's input defaults.
DEFAULTS = {"type": "t2v", "mode": "fast", "width": 1280, "height": 720, "duration": 10, "camera_lora": "static"}
# Bounds keep a stray request from rendering for hours; LTX-2 itself caps at 20 s (the price list stops there).
MAX_SIDE, MAX_DURATION = 2048, 20
# RunPod's image payload cap is 10 MB per /run (docs/providers/runpod.md#endpoints); a fetched image gets the same.
MAX_IMAGE_BYTES = 10 * 1024 * 1024


class InputError(ValueError):
    """The job input breaks the contract; reported as `{"error": …}`."""


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InputError(f"{name} must be an integer")
    if not low <= int(value) <= high:
        raise InputError(f"{name} must be between {low} and {high}")
    return int(value)


def _image(job_input: dict[str, Any]) -> bytes:
    if job_input.get("image_base64"):
        data = str(job_input["image_base64"])
        return base64.b64decode(data.partition(",")[2] if data.startswith("data:") else data, validate=True)
    if job_input.get("image_url"):
        response = httpx.get(str(job_input["image_url"]), timeout=30, follow_redirects=True)
        response.raise_for_status()
        if len(response.content) > MAX_IMAGE_BYTES:
            raise InputError("image is larger than 10 MB")
        return response.content
    raise InputError("i2v needs image_url or image_base64")


def build_spec(job_input: dict[str, Any]) -> RenderSpec:
    """Validate the contract's input keys and turn them into a render spec."""
    merged = {**DEFAULTS, **{k: v for k, v in job_input.items() if v is not None}}
    prompt = merged.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("prompt is required")
    if merged["type"] not in ("t2v", "i2v"):
        raise InputError("type must be t2v or i2v")
    if merged["mode"] not in ("fast", "pro"):
        raise InputError("mode must be fast or pro")
    width = _int(merged["width"], "width", 64, MAX_SIDE)
    height = _int(merged["height"], "height", 64, MAX_SIDE)
    duration = _int(merged["duration"], "duration", 1, MAX_DURATION)
    seed = _int(merged.get("seed", 0), "seed", 0, 2**32 - 1)
    start_image = _image(merged) if merged["type"] == "i2v" else None
    label = f"[{merged['mode']} / {merged['camera_lora']}] {prompt}"
    return RenderSpec(width, height, duration, fps=24, seed=seed, prompt=label, start_image=start_image)


def handler(job: dict[str, Any]) -> dict[str, Any]:
    """The contract's output: `{"video": base64}` or `{"error": message}`."""
    try:
        spec = build_spec(job.get("input") or {})
    except (InputError, ValueError, httpx.HTTPError) as exc:
        return {"error": str(exc)}

    def progress(fraction: float) -> None:
        # Only on RunPod itself: progress_update posts to RunPod's job API, which a local run lacks.
        if os.environ.get("RUNPOD_POD_ID"):
            runpod.serverless.progress_update(job, {"progress": int(fraction * 100)})

    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "video.mp4"
        try:
            render_preview_video(spec, out_path, progress=progress)
        except Exception as exc:  # a worker must answer, not crash: report it in the contract's shape
            return {"error": f"render failed: {exc}"}
        return {"video": base64.b64encode(out_path.read_bytes()).decode("ascii")}


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
