"""The studio's composer: model summaries for the picker, and the form read into a generation order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reelgate.domain.catalog import AUTO, GenerationInput, ModelSpec
from reelgate.domain.errors import ReelgateError, ValidationFailed
from reelgate.domain.model_summary import default_input, features_of
from reelgate.domain.pricing import PerSecondPricing, PerTokenPricing, credits_per_second
from reelgate.domain.tiers import is_choice
from reelgate.services import generations
from reelgate.services.context import ServiceContext
from reelgate.services.generations import Estimate, GenerationOrder

PREFERRED_MODEL = "sandbox-t2v"


@dataclass(frozen=True)
class ModelCard:
    spec: ModelSpec
    available: bool
    why: str
    from_credits: int | None
    features: list[str]

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass
class ModelGroup:
    name: str
    models: list[ModelCard] = field(default_factory=list)


def model_groups(ctx: ServiceContext) -> list[ModelGroup]:
    """Models grouped by provider (their catalog group), available ones first within each group."""
    groups: dict[str, ModelGroup] = {}
    for spec in ctx.catalog.models:
        available, why = generations.model_available(ctx, spec)
        try:
            cheapest: int | None = generations.estimate(ctx, default_input(spec), spec.id).quote.total
        except ReelgateError:
            cheapest = None
        card = ModelCard(spec, available, why, cheapest, features_of(spec))
        groups.setdefault(spec.group or spec.provider, ModelGroup(spec.group or spec.provider)).models.append(card)
    for group in groups.values():
        group.models.sort(key=lambda card: not card.available)
    return sorted(groups.values(), key=lambda g: not any(c.available for c in g.models))


@dataclass(frozen=True)
class ChoiceCard:
    """A tier, or `auto`, offered beside the models: smart routing picks the model."""

    id: str
    name: str
    description: str
    from_credits: int | None  # the cheapest pick at default settings; None when nothing can serve it now


def choice_cards(ctx: ServiceContext) -> list[ChoiceCard]:
    catalog = ctx.catalog
    entries = [(AUTO, "Auto", "The cheapest available model that fits your settings.")]
    entries += [(tier.id, tier.name, tier.description or "") for tier in catalog.tiers]
    cards = []
    for choice, name, description in entries:
        try:
            cheapest: int | None = generations.estimate(ctx, GenerationInput(prompt=None), choice).quote.total
        except ReelgateError:
            cheapest = None
        cards.append(ChoiceCard(choice, name, description, cheapest))
    # With nothing to route to (no provider configured, as on a first start) the group is left out altogether.
    return cards if any(card.from_credits is not None for card in cards) else []


def spec_for(ctx: ServiceContext, model: str) -> ModelSpec:
    """The model a form's `model` stands for: itself, or for a tier or `auto` the model it picks at the default
    settings (its settings panel is shown)."""
    if is_choice(ctx.catalog, model):
        return generations.estimate(ctx, GenerationInput(prompt=None), model).spec
    return ctx.catalog.get(model)


def default_model(ctx: ServiceContext) -> ModelSpec:
    if PREFERRED_MODEL in ctx.catalog.ids:
        return ctx.catalog.get(PREFERRED_MODEL)
    for spec in ctx.catalog.models:
        if generations.model_available(ctx, spec)[0]:
            return spec
    return ctx.catalog.models[0]


def _text(form: Mapping[str, Any], name: str) -> str | None:
    value = str(form.get(name) or "").strip()
    return value or None


def _int(form: Mapping[str, Any], name: str) -> int | None:
    value = _text(form, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationFailed(name, f"{name.replace('_', ' ').capitalize()} must be a whole number.") from None


def _options(spec: ModelSpec, form: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, option in spec.capabilities.options.items():
        raw = _text(form, f"option_{name}")
        if raw is None:
            continue
        # Option values may be numbers in the catalog; the form only carries strings.
        options[name] = next((v for v in option.values if str(v) == raw), raw)
    return options


def order_from_form(ctx: ServiceContext, form: Mapping[str, Any]) -> GenerationOrder:
    """Reads only the fields the chosen model accepts, so a stale field from another model is ignored. A tier
    or `auto` reads the fields of the model it picks at default settings and stays the order's `model`."""
    model = _text(form, "model") or default_model(ctx).id
    routed = is_choice(ctx.catalog, model)
    spec = spec_for(ctx, model)
    caps = spec.capabilities
    media = spec.kind != "text"  # a text model takes no size or shape (its form has no such fields)
    return GenerationOrder(
        model=model if routed else spec.id,
        prompt=_text(form, "prompt"),
        negative_prompt=_text(form, "negative_prompt") if caps.negative_prompt else None,
        duration=_int(form, "duration") if any(caps.durations) else None,
        resolution=_text(form, "resolution") if media else None,
        aspect_ratio=_text(form, "aspect_ratio") if media else None,
        seed=_int(form, "seed") if caps.seed else None,
        start_image=_text(form, "start_image") if caps.start_image != "none" else None,
        end_image=_text(form, "end_image") if caps.end_image else None,
        audio=bool(form.get("audio")) and caps.audio,
        enhance_prompt=bool(form.get("enhance_prompt")) and caps.enhance_prompt,
        project_id=_text(form, "project_id"),
        organization=_text(form, "organization"),  # the wallet switcher: empty for the user's own credits
        # One model's own options would rule out every model of the tier that lacks them.
        options={} if routed else _options(spec, form),
    )


def estimate_of(ctx: ServiceContext, order: GenerationOrder, *, assume_images: bool = False) -> Estimate:
    """The same quote the hold uses; before an image is chosen it can price as if it were there."""
    spec = spec_for(ctx, order.model)
    start = order.start_image is not None or (assume_images and spec.capabilities.start_image == "required")
    given = GenerationInput(
        prompt=order.prompt,
        negative_prompt=order.negative_prompt,
        duration=order.duration,
        resolution=order.resolution,
        aspect_ratio=order.aspect_ratio,
        seed=order.seed,
        start_image=start,
        end_image=order.end_image is not None,
        audio=order.audio,
        enhance_prompt=order.enhance_prompt,
        options=dict(order.options),
    )
    return generations.estimate(ctx, given, order.model)


def rate_note(spec: ModelSpec, duration: int) -> str:
    """One line saying how the price is built, above the breakdown's numbers."""
    pricing = spec.pricing
    if isinstance(pricing, PerSecondPricing):
        rate = credits_per_second(spec, pricing)
        shown = f"{float(rate):g}" if rate.denominator != 1 else str(rate.numerator)
        return f"{shown} credits per second × {duration} s"
    if isinstance(pricing, PerTokenPricing):
        rates = f"{pricing.credits_per_1k_input:g} credits per 1,000 tokens in, {pricing.credits_per_1k_output:g} out"
        return f"{rates}: the most it can cost is held, and you pay for the tokens used"
    if spec.kind == "text":
        return "Fixed price per answer"
    if pricing.rule == "grid":
        return "Fixed price for this combination of settings"
    return "Base price at the default duration and 720p, plus modifiers"


def chosen(form: Mapping[str, Any], name: str, allowed: tuple[Any, ...], default: Any) -> Any:
    """Keeps a setting across a model switch when the new model allows it, else the new model's default."""
    raw = _text(form, name)
    return next((value for value in allowed if str(value) == raw), default)
