"""Translation between OpenRouter's video job and reelgate generations: status, usage, models and sizes."""

from __future__ import annotations

from typing import Any

from reelgate.db.records import Generation
from reelgate.domain.catalog import GenerationInput, ModelSpec, dimensions
from reelgate.domain.jobs import GenerationStatus
from reelgate.services import generations
from reelgate.services.context import ServiceContext

# OpenRouter's job status has six values; reelgate's eight states fold onto them.
STATUS = {
    GenerationStatus.QUEUED: "pending",
    GenerationStatus.SUBMITTING: "pending",
    GenerationStatus.PROCESSING: "in_progress",
    GenerationStatus.STORING: "in_progress",
    GenerationStatus.SUCCEEDED: "completed",
    GenerationStatus.FAILED: "failed",
    GenerationStatus.CANCELED: "cancelled",
    GenerationStatus.EXPIRED: "expired",
}
_DEFAULT_ERRORS = {
    "failed": "The video could not be generated.",
    "cancelled": "The video was canceled.",
    "expired": "The video took too long and was stopped.",
}
# OpenRouter spells the 4K resolution in capitals; reelgate's catalog in lower case.
RESOLUTION_IN = {"4K": "4k"}
RESOLUTION_OUT = {"4k": "4K"}
VIDEO_KINDS = ("t2v", "i2v")


def polling_path(generation_id: str) -> str:
    return f"/api/v1/videos/{generation_id}"


def job_out(generation: Generation, base_url: str, credit_value: float) -> dict[str, Any]:
    """The job as GET /api/v1/videos/{id} shows it. `usage.cost` is what the user paid, in reelgate credits
    (`usage.credits`), and its money value (`usage.cost`, at the catalog's credit value)."""
    status = STATUS[GenerationStatus(generation.status)]
    out: dict[str, Any] = {
        "id": generation.id,
        "polling_url": polling_path(generation.id),
        "status": status,
        "generation_id": generation.id,
    }
    if status in _DEFAULT_ERRORS:
        out["error"] = generation.error_message or _DEFAULT_ERRORS[status]
    if status == "completed":
        out["unsigned_urls"] = [f"{base_url}{polling_path(generation.id)}/content?index=0"]
    if status in ("completed", "failed", "cancelled", "expired"):
        out["usage"] = {
            "cost": round(generation.credits_charged * credit_value, 6),
            "credits": generation.credits_charged,
            "credits_refunded": generation.credits_refunded,
            "is_byok": False,
        }
    return out


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


def _pricing(ctx: ServiceContext, spec: ModelSpec) -> dict[str, str]:
    """The quote for each resolution and duration at the model's defaults, in credits, keyed
    `<resolution>-<seconds>s` (the same quote /api/v1/estimate and the hold use)."""
    caps = spec.capabilities
    unit = ctx.catalog.credit_unit
    skus = {"credit_value": f"{unit.value} {unit.currency}"}
    for resolution in caps.resolutions:
        for duration in caps.durations:
            given = GenerationInput(
                prompt=None,
                duration=duration,
                resolution=resolution,
                start_image=caps.start_image == "required",
            )
            try:
                total = generations.estimate(ctx, given, spec.id).quote.total
            except Exception:  # noqa: BLE001, S112 - a combination the price list does not sell is left out
                continue
            skus[f"{RESOLUTION_OUT.get(resolution, resolution)}-{duration}s"] = str(total)
    return skus


def model_out(ctx: ServiceContext, spec: ModelSpec) -> dict[str, Any]:
    caps = spec.capabilities
    frames = (["first_frame"] if caps.start_image != "none" else []) + (["last_frame"] if caps.end_image else [])
    return {
        "id": spec.id,
        "canonical_slug": spec.id,
        "name": spec.name,
        "description": spec.description,
        "created": 0,
        "supported_resolutions": [RESOLUTION_OUT.get(r, r) for r in caps.resolutions],
        "supported_aspect_ratios": list(caps.aspect_ratios),
        "supported_sizes": list(sizes_of(spec)),
        "supported_durations": [d for d in caps.durations if d > 0],
        "supported_frame_images": frames,
        "generate_audio": caps.audio,
        "seed": caps.seed,
        "creativity": None,
        "upscale_factor": None,
        "pricing_skus": _pricing(ctx, spec),
        "allowed_passthrough_parameters": [],
    }


def video_models(ctx: ServiceContext) -> list[dict[str, Any]]:
    """The catalog's video models that can be sold now, in catalog order."""
    return [
        model_out(ctx, spec)
        for spec in ctx.catalog.models
        if spec.kind in VIDEO_KINDS and generations.model_available(ctx, spec)[0]
    ]
