"""/api/v1/models and /api/v1/estimate: what can be bought, and for how much."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from reelgate.api.deps import Ctx
from reelgate.api.schemas import EstimateRequest, EstimateResponse
from reelgate.domain.catalog import GenerationInput, ModelSpec
from reelgate.domain.tiers import Constraints
from reelgate.services import generations

router = APIRouter(prefix="/api/v1", tags=["catalog"])


def model_out(ctx: Any, spec: ModelSpec) -> dict[str, Any]:
    available, why = generations.model_available(ctx, spec)
    try:
        cheapest = generations.estimate(ctx, GenerationInput(prompt=None), spec.id).quote.total
    except Exception:  # noqa: BLE001 - a model whose defaults need an image still lists
        cheapest = None
    return {
        "id": spec.id,
        "name": spec.name,
        "provider": spec.provider,
        "kind": spec.kind,
        "available": available,
        "unavailable_reason": why or None,
        "preview": spec.preview,
        "description": spec.description,
        "group": spec.group,
        "tier": spec.tier,
        "capabilities": spec.capabilities.model_dump(mode="json"),
        "pricing": {"rule": spec.pricing.rule, "default_total": cheapest},
        "lifecycle": spec.lifecycle.model_dump(mode="json"),
    }


@router.get("/models")
async def list_models(ctx: Ctx) -> dict[str, Any]:
    return {"models": [model_out(ctx, spec) for spec in ctx.catalog.models]}


@router.get("/models/{model_id}")
async def get_model(model_id: str, ctx: Ctx) -> dict[str, Any]:
    return model_out(ctx, ctx.catalog.get(model_id))


@router.post("/estimate", response_model=EstimateResponse)
async def estimate(body: EstimateRequest, ctx: Ctx) -> EstimateResponse:
    given = GenerationInput(
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        duration=body.duration,
        resolution=body.resolution,
        aspect_ratio=body.aspect_ratio,
        seed=body.seed,
        start_image=bool(body.start_image),
        end_image=bool(body.end_image),
        audio=body.audio,
        enhance_prompt=body.enhance_prompt,
        options=dict(body.options),
    )
    constraints = Constraints(max_credits=body.max_credits, min_resolution=body.min_resolution)
    result = generations.estimate(ctx, given, body.choice, constraints=constraints)
    resolved = result.request
    unit = ctx.catalog.credit_unit
    return EstimateResponse(
        model=result.spec.id,
        total=result.quote.total,
        breakdown=dict(result.quote.breakdown),
        currency_value={
            "per_credit": float(unit.value),
            "currency": unit.currency,
            "total": round(float(unit.value) * result.quote.total, 4),
        },
        available=result.available,
        resolved={
            "duration": resolved.duration,
            "resolution": resolved.resolution,
            "aspect_ratio": resolved.aspect_ratio,
            "width": resolved.width,
            "height": resolved.height,
            "options": dict(resolved.options),
        },
    )
