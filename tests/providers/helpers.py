"""Small builders shared by the adapter tests."""

from __future__ import annotations

from typing import Any

from reelgate.providers.base import ImageInput, JobRequest

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000 1f15c4890000000d49444154789c6360000002000"
    "1e221bc330000000049454e44ae426082".replace(" ", "")
)


def job_request(**overrides: Any) -> JobRequest:
    values: dict[str, Any] = {
        "generation_id": "gen_1",
        "model_ref": "ltx-2-t2v",
        "kind": "t2v",
        "prompt": "a lighthouse at dusk",
        "duration": 10,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "width": 1280,
        "height": 720,
    }
    values.update(overrides)
    return JobRequest(**values)


def image(url: str | None = None) -> ImageInput:
    return ImageInput(data=PNG_1PX, content_type="image/png", width=1, height=1, url=url)
