"""Smart routing: a request may name a tier (or `auto`) instead of a model; the cheapest model that fits it
is picked, and the quote is that model's."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from reelgate.domain.catalog import (
    AUTO,
    RESOLUTIONS,
    Catalog,
    GenerationInput,
    Kind,
    ModelSpec,
    ResolvedRequest,
    resolve_request,
    short_side,
)
from reelgate.domain.errors import ReelgateError, ValidationFailed
from reelgate.domain.pricing import Quote, quote

VIDEO_KINDS: frozenset[Kind] = frozenset({"t2v", "i2v"})


class NoModelFits(ReelgateError):
    """A tier or `auto` was asked for, and no available model of it fits the request and its constraints."""

    status_code = 422
    code = "no_model_fits"


@dataclass(frozen=True)
class Constraints:
    """Limits on the pick besides the request itself.

    `max_credits`: the quote may not exceed it. `needs_image`: the request comes with a start image, so only
    models that take one qualify. `min_resolution`: a catalog resolution ("720p"); when the request names no
    resolution, each model is tried at its offered resolutions at or above it. `kinds`: the kinds of model
    considered (videos unless told otherwise)."""

    max_credits: int | None = None
    needs_image: bool = False
    min_resolution: str | None = None
    kinds: frozenset[Kind] = VIDEO_KINDS


@dataclass(frozen=True)
class Pick:
    spec: ModelSpec
    request: ResolvedRequest
    quote: Quote


def is_choice(catalog: Catalog, name: str) -> bool:
    """Whether a request's `model` names a tier or `auto` rather than a model."""
    return name == AUTO or name in catalog.tier_ids


def pick_model(
    catalog: Catalog,
    choice: str,
    given: GenerationInput,
    *,
    available: Collection[str],
    constraints: Constraints = Constraints(),
    require_prompt: bool = True,
) -> Pick:
    """The cheapest available model of tier `choice` (or of the whole catalog for `auto`) that fits `given`.

    `available` holds the ids of models that can take jobs now (provider configured, before sunset); the
    caller knows. A preview model is never picked. Ties go to the higher resolution, then to catalog
    order. Raises ValidationFailed for an unknown tier or constraint, NoModelFits when nothing fits
    (`details.rejected` says why, per model)."""
    candidates = _candidates(catalog, choice, constraints)
    given = replace(given, start_image=given.start_image or constraints.needs_image)
    floor = _floor(constraints.min_resolution)
    best: tuple[tuple[int, int, int], Pick] | None = None
    rejected: dict[str, str] = {}
    for order, spec in enumerate(candidates):
        if spec.id not in available:
            rejected[spec.id] = "not available"
            continue
        pick, why = _cheapest_on(spec, given, floor, constraints, require_prompt)
        if pick is None:
            rejected[spec.id] = why
            continue
        rank = (*_rank(pick), order)
        if best is None or rank < best[0]:
            best = (rank, pick)
    if best is None:
        raise NoModelFits(
            f"No available model of {_named(choice)} fits this request.",
            details={"model": choice, "rejected": rejected},
        )
    return best[1]


def _named(choice: str) -> str:
    return "the catalog" if choice == AUTO else f"tier '{choice}'"


def _candidates(catalog: Catalog, choice: str, constraints: Constraints) -> list[ModelSpec]:
    if choice == AUTO:
        models = catalog.models
    elif choice in catalog.tier_ids:
        models = catalog.in_tier(choice)
    else:
        choices = [AUTO, *catalog.tier_ids]
        raise ValidationFailed("tier", f"'{choice}' is not a tier; choose one of {', '.join(choices)}", allowed=choices)
    # A preview renderer is not an AI model: it is sold only when asked for by name.
    return [spec for spec in models if spec.kind in constraints.kinds and not spec.preview]


def _floor(min_resolution: str | None) -> int:
    if min_resolution is None:
        return 0
    if min_resolution not in RESOLUTIONS:
        allowed = list(RESOLUTIONS)
        raise ValidationFailed("min_resolution", f"min_resolution must be one of {', '.join(allowed)}", allowed=allowed)
    return RESOLUTIONS[min_resolution]


def _cheapest_on(
    spec: ModelSpec, given: GenerationInput, floor: int, constraints: Constraints, require_prompt: bool
) -> tuple[Pick | None, str]:
    caps = spec.capabilities
    if constraints.needs_image and caps.start_image == "none":
        return None, "takes no start image"
    if given.resolution is not None:
        resolutions: tuple[str | None, ...] = (given.resolution,)
    elif floor:
        resolutions = tuple(r for r in caps.resolutions if short_side(r) >= floor)
    else:
        resolutions = (None,)  # the model's default
    if not resolutions:
        return None, f"offers nothing at or above the minimum resolution ({', '.join(caps.resolutions)})"
    best: Pick | None = None
    why = ""
    for resolution in resolutions:
        try:
            request = resolve_request(spec, replace(given, resolution=resolution), require_prompt=require_prompt)
        except ValidationFailed as exc:
            why = exc.message
            continue
        if short_side(request.resolution) < floor:
            why = f"{request.resolution} is below the minimum resolution"
            continue
        priced = quote(spec, request)
        if constraints.max_credits is not None and priced.total > constraints.max_credits:
            why = f"costs {priced.total} credits, over the limit of {constraints.max_credits}"
            continue
        pick = Pick(spec, request, priced)
        if best is None or _rank(pick) < _rank(best):
            best = pick
    return best, why


def _rank(pick: Pick) -> tuple[int, int]:
    # The cheapest first; at the same price, the higher resolution.
    return pick.quote.total, -short_side(pick.request.resolution)
