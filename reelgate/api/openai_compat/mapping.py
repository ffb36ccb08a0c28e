"""Translation between the OpenAI video object and reelgate generations: status, progress, seconds and size."""

from __future__ import annotations

import math
from typing import Any

from reelgate.db.records import Generation
from reelgate.domain.catalog import ModelSpec, dimensions
from reelgate.domain.jobs import GenerationStatus, is_terminal

from .errors import OpenAIError

# The SDK's Video.status has exactly these four values; its poll helper stops on completed/failed.
STATUS = {
    GenerationStatus.QUEUED: "queued",
    GenerationStatus.SUBMITTING: "queued",
    GenerationStatus.PROCESSING: "in_progress",
    GenerationStatus.STORING: "in_progress",
    GenerationStatus.SUCCEEDED: "completed",
    GenerationStatus.FAILED: "failed",
    GenerationStatus.CANCELED: "failed",
    GenerationStatus.EXPIRED: "failed",
}


def _unix(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _error(generation: Generation) -> dict[str, str] | None:
    status = GenerationStatus(generation.status)
    if STATUS[status] != "failed":
        return None
    default = {"canceled": "The video was canceled.", "expired": "The video took too long and was stopped."}
    code = generation.error_code or status.value
    message = generation.error_message or default.get(status.value, "The video could not be generated.")
    return {"code": code, "message": message}


def video_out(generation: Generation, remixed_from: str | None = None) -> dict[str, Any]:
    params = generation.params or {}
    status = STATUS[GenerationStatus(generation.status)]
    progress = 100 if status == "completed" else 0 if status == "queued" else min(max(generation.progress, 0), 99)
    width, height = params.get("width"), params.get("height")
    return {
        "id": generation.id,
        "object": "video",
        "model": generation.model,
        "status": status,
        "progress": progress,
        "created_at": _unix(generation.created_at),
        "completed_at": _unix(generation.completed_at) if is_terminal(generation.status) else None,
        "expires_at": None,  # stored videos do not expire
        "prompt": generation.prompt,
        "seconds": str(params.get("duration", "")),
        "size": f"{width}x{height}" if width and height else "",
        "error": _error(generation),
        "remixed_from_video_id": remixed_from,
    }


def shown(value: Any) -> str:
    """A client's value quoted in an error message, cut short: a message never echoes a whole body back."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# Longer than any model renders; anything above is refused here rather than carried as a huge number.
MAX_SECONDS = 3600


def seconds_of(value: Any) -> int | None:
    """OpenAI sends `seconds` as a string ("8"); a number is accepted too. NaN, infinities, fractions, booleans
    and out-of-range values are a 400, never a crash."""
    if value is None or value == "":
        return None
    message = f"'seconds' must be a whole number of seconds from 0 to {MAX_SECONDS}; got {shown(value)}."
    problem = OpenAIError(400, message, param="seconds")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise problem
    try:
        seconds = float(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise problem from None
    if not (isinstance(seconds, int) or math.isfinite(seconds)) or not 0 <= seconds <= MAX_SECONDS:
        raise problem
    if seconds != int(seconds):
        raise problem
    return int(seconds)


def sizes_of(spec: ModelSpec) -> dict[str, tuple[str, str]]:
    """Every `WxH` this model renders, with the resolution and aspect ratio it stands for."""
    caps = spec.capabilities
    offered: dict[str, tuple[str, str]] = {}
    for resolution in caps.resolutions:
        for ratio in caps.aspect_ratios:
            try:
                width, height = dimensions(resolution, ratio)
            except ValueError:
                continue
            offered.setdefault(f"{width}x{height}", (resolution, ratio))
    return offered


def size_of(spec: ModelSpec, value: Any) -> tuple[str | None, str | None]:
    """`1280x720` → ("720p", "16:9"), checked against what the model offers."""
    if value is None or value == "":
        return None, None
    if not isinstance(value, str) or len(value) > 32:
        raise OpenAIError(400, f"'size' must be a string such as 1280x720; got {shown(value)}.", param="size")
    offered = sizes_of(spec)
    wanted = str(value).strip().lower().replace("*", "x")
    if wanted not in offered:
        allowed = ", ".join(offered)
        message = f"{spec.id} offers sizes {allowed}; got {shown(value)}."
        raise OpenAIError(400, message, param="size", code="invalid_value")
    return offered[wanted]
