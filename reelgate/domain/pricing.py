"""Pricing rules of the catalog and the one function that quotes a request in integer credits."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from reelgate.domain.catalog import ModelSpec, ResolvedRequest

Rounding = Literal["ceil", "round", "floor"]
# Flat add-ons are charged for these request flags only.
ADDON_FEATURES = ("audio", "enhance_prompt")
# Grid keys other than these name a model option.
GRID_REQUEST_KEYS = ("duration", "resolution", "aspect_ratio")

Money = Annotated[Decimal, Field(ge=0)]
Percent = Annotated[Decimal, Field(ge=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PerSecondPricing(_Frozen):
    """Credits per second, given directly or as provider cost per second × markup ÷ credit value."""

    rule: Literal["per_second"]
    credits_per_second: Money | None = None
    # Omitted with a markup: the model's provider_cost.per_second is used.
    provider_cost_per_second: Money | None = None
    markup: Annotated[Decimal, Field(gt=0)] | None = None
    resolution_multipliers: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(default_factory=dict)
    minimum: Annotated[int, Field(ge=0)] = 0
    addons: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_rate(self) -> PerSecondPricing:
        if (self.credits_per_second is None) == (self.markup is None):
            raise ValueError("give either credits_per_second or markup (with provider_cost_per_second)")
        if self.credits_per_second is not None and self.provider_cost_per_second is not None:
            raise ValueError("provider_cost_per_second needs markup, not credits_per_second")
        return self


def _normalize_table(value: Any) -> Any:
    # YAML reads `10:` as an int key and `720p:` as a string; cells are looked up by str(value).
    if isinstance(value, Mapping):
        return {str(k): _normalize_table(v) for k, v in value.items()}
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"grid cells must be non-negative integers of credits, got {value!r}")
    return value


class GridPricing(_Frozen):
    """An explicit table nested in `keys` order; every combination of offered values must have a cell."""

    rule: Literal["grid"]
    keys: tuple[str, ...] = ()
    # With no keys the table is a single int: a flat price per job.
    table: Any
    addons: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)

    @field_validator("table", mode="before")
    @classmethod
    def _table(cls, value: Any) -> Any:
        return _normalize_table(value)


class ExtraDuration(_Frozen):
    per_seconds: Annotated[int, Field(gt=0)] = 5
    percent: Percent = Decimal(50)
    # Prorated: 3 extra seconds of a 5 s step cost 3/5 of the step; otherwise whole steps are charged.
    prorated: bool = True


class ImagePercent(_Frozen):
    start: Percent = Decimal(0)
    end: Percent = Decimal(0)
    both: Percent = Decimal(0)


class BasePlusModifiersPricing(_Frozen):
    """Base credits at base_duration and base_resolution, plus percentages of base and flat add-ons."""

    rule: Literal["base_plus_modifiers"]
    base: Annotated[int, Field(ge=0)]
    base_duration: Annotated[int, Field(ge=0)]
    base_resolution: str = "720p"
    resolution_percent: dict[str, Percent] = Field(default_factory=dict)
    extra_duration: ExtraDuration | None = None
    image_percent: ImagePercent = Field(default_factory=ImagePercent)
    addons: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class PerTokenPricing(_Frozen):
    """Text models: credits per 1,000 input tokens and per 1,000 output tokens, as the provider reports them.

    The quote is the most a request can cost (its input tokens bounded from the prompt, plus the model's
    `text.max_output_tokens`); that is what is held, and the job captures only what its usage comes to."""

    rule: Literal["per_token"]
    credits_per_1k_input: Money
    credits_per_1k_output: Money
    minimum: Annotated[int, Field(ge=0)] = 0
    addons: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


Pricing = Annotated[
    PerSecondPricing | GridPricing | BasePlusModifiersPricing | PerTokenPricing, Field(discriminator="rule")
]
# Chat formats wrap each message in a few tokens of their own (role markers, separators); two messages are
# sent (the model's instruction and the prompt), and this bounds their framing generously.
MESSAGE_FRAMING_TOKENS = 32


@dataclass(frozen=True)
class Quote:
    model: str
    total: int
    breakdown: dict[str, int]


# Lines a breakdown shows even at zero: the base price, or a per-token quote's input and output.
_ALWAYS_SHOWN = frozenset({"base", "input", "output"})


def round_credits(value: Fraction, rounding: Rounding) -> int:
    if rounding == "ceil":
        return math.ceil(value)
    if rounding == "floor":
        return math.floor(value)
    return math.floor(value + Fraction(1, 2))  # half up, unlike Python's banker's round()


def quote(spec: ModelSpec, request: ResolvedRequest) -> Quote:
    """Price a resolved request; the breakdown's values always sum exactly to the total."""
    pricing = spec.pricing
    if isinstance(pricing, PerSecondPricing):
        parts = _per_second(spec, pricing, request)
    elif isinstance(pricing, GridPricing):
        parts = {"base": grid_cell(pricing, request)}
    elif isinstance(pricing, PerTokenPricing):
        parts = token_parts(pricing, spec.rounding, input_token_bound(spec, request.prompt), max_output_tokens(spec))
    else:
        parts = _base_plus_modifiers(spec, pricing, request)
    for feature, credits in pricing.addons.items():
        if getattr(request, feature, False):
            parts[feature] = parts.get(feature, 0) + credits
    breakdown = {name: value for name, value in parts.items() if value != 0 or name in _ALWAYS_SHOWN}
    return Quote(model=spec.id, total=sum(breakdown.values()), breakdown=breakdown)


def credits_per_second(spec: ModelSpec, pricing: PerSecondPricing) -> Fraction:
    if pricing.credits_per_second is not None:
        return Fraction(pricing.credits_per_second)
    cost = pricing.provider_cost_per_second
    if cost is None and spec.provider_cost is not None:
        cost = spec.provider_cost.per_second
    if cost is None or pricing.markup is None:  # parse_catalog rejects this; kept for direct construction
        raise ValueError(f"model {spec.id!r}: per_second pricing has no rate")
    return Fraction(cost) * Fraction(pricing.markup) / Fraction(spec.credit_unit.value)


def _per_second(spec: ModelSpec, pricing: PerSecondPricing, request: ResolvedRequest) -> dict[str, int]:
    exact = credits_per_second(spec, pricing) * request.duration
    base = round_credits(exact, spec.rounding)
    multiplier = Fraction(pricing.resolution_multipliers.get(request.resolution, Decimal(1)))
    # The resolution line is the difference of two rounded amounts, so base + resolution is the rounded product.
    resolution = round_credits(exact * multiplier, spec.rounding) - base
    minimum = max(0, pricing.minimum - base - resolution)
    return {"base": base, "resolution": resolution, "minimum": minimum}


def input_token_bound(spec: ModelSpec, prompt: str | None) -> int:
    """The most input tokens a prompt can be: byte-level tokenizers never make a token of less than one byte,
    so the UTF-8 size of the instruction and the prompt bounds their tokens whatever the model's tokenizer."""
    text = (spec.text.system_prompt if spec.text is not None else "") + (prompt or "")
    return len(text.encode("utf-8")) + MESSAGE_FRAMING_TOKENS


def max_output_tokens(spec: ModelSpec) -> int:
    limit = spec.text.max_output_tokens if spec.text is not None else None
    if limit is None:  # parse_catalog refuses per-token pricing without it; kept for direct construction
        raise ValueError(f"model {spec.id!r}: per-token pricing needs text.max_output_tokens")
    return limit


def token_parts(pricing: PerTokenPricing, rounding: Rounding, input_tokens: int, output_tokens: int) -> dict[str, int]:
    """Credits for a number of tokens; the input line is rounded on its own and the output line is the rest of
    the rounded total, so the parts always sum to the rounded price of the whole."""
    exact_input = Fraction(pricing.credits_per_1k_input) * input_tokens / 1000
    exact_output = Fraction(pricing.credits_per_1k_output) * output_tokens / 1000
    total = round_credits(exact_input + exact_output, rounding)
    input_part = min(round_credits(exact_input, rounding), total)
    minimum = max(0, pricing.minimum - total)
    return {"input": input_part, "output": total - input_part, "minimum": minimum}


def token_charge(pricing: PerTokenPricing, rounding: Rounding, held: int, input_tokens: int, output_tokens: int) -> int:
    """What a finished per-token job costs: its usage priced like the quote, never more than was held (the user
    accepted that maximum)."""
    used = sum(token_parts(pricing, rounding, max(0, input_tokens), max(0, output_tokens)).values())
    return min(held, used)


def _grid_value(key: str, request: ResolvedRequest) -> str:
    if key in GRID_REQUEST_KEYS:
        return str(getattr(request, key))
    return str(request.options[key])


def grid_cell(pricing: GridPricing, request: ResolvedRequest) -> int:
    cell: Any = pricing.table
    for key in pricing.keys:
        cell = cell[_grid_value(key, request)]
    return int(cell)


def _base_plus_modifiers(spec: ModelSpec, p: BasePlusModifiersPricing, request: ResolvedRequest) -> dict[str, int]:
    base = Fraction(p.base)
    r = spec.rounding
    parts = {"base": p.base}
    parts["resolution"] = round_credits(base * Fraction(p.resolution_percent.get(request.resolution, 0)) / 100, r)
    extra = max(0, request.duration - p.base_duration)
    if p.extra_duration is not None and extra:
        step = p.extra_duration
        steps = Fraction(extra, step.per_seconds)
        if not step.prorated:
            steps = Fraction(math.ceil(steps))
        parts["duration"] = round_credits(base * Fraction(step.percent) / 100 * steps, r)
    images = p.image_percent
    if request.start_image and request.end_image:
        percent = images.both
    elif request.start_image:
        percent = images.start
    elif request.end_image:
        percent = images.end
    else:
        percent = Decimal(0)
    parts["images"] = round_credits(base * Fraction(percent) / 100, r)
    return parts


def pricing_problems(
    spec: ModelSpec, allowed: Mapping[str, tuple[str, ...]], known_resolutions: Collection[str]
) -> list[tuple[str, str]]:
    """Cross-checks of a model's pricing against its capabilities, as (field path, message) pairs.

    `allowed` maps each grid key that the model offers (duration, resolution, aspect_ratio, option names)
    to its offered values as strings. Resolution modifiers may name any known resolution, offered or not,
    so one set of modifiers can be shared by several models.
    """
    resolutions = (*known_resolutions, *allowed["resolution"])
    pricing = spec.pricing
    problems: list[tuple[str, str]] = []
    for feature in pricing.addons:
        if feature not in ADDON_FEATURES:
            problems.append((f"pricing.addons.{feature}", f"add-ons apply to {', '.join(ADDON_FEATURES)} only"))
    if isinstance(pricing, GridPricing):
        problems.extend(_grid_problems(pricing, allowed))
    elif isinstance(pricing, PerSecondPricing):
        problems.extend(_per_second_problems(spec, pricing, resolutions))
    elif isinstance(pricing, PerTokenPricing):
        if spec.kind != "text":
            problems.append(("pricing.rule", "per_token pricing is for text models only"))
        elif spec.text is None or spec.text.max_output_tokens is None:
            problems.append(("text.max_output_tokens", "per_token pricing needs it: the hold is the most a job costs"))
    else:
        problems.extend(_modifier_problems(pricing, allowed, resolutions))
    return problems


def _per_second_problems(spec: ModelSpec, p: PerSecondPricing, resolutions: tuple[str, ...]) -> list[tuple[str, str]]:
    problems = [
        (f"pricing.resolution_multipliers.{name}", f"{name} is not one of resolutions {list(resolutions)}")
        for name in p.resolution_multipliers
        if name not in resolutions
    ]
    if p.markup is not None and p.provider_cost_per_second is None:
        cost = spec.provider_cost
        if cost is None or cost.per_second is None:
            problems.append(("pricing.markup", "needs provider_cost_per_second or provider_cost.per_second"))
    if p.markup is not None:
        currency = spec.provider_cost.currency if spec.provider_cost is not None else spec.credit_unit.currency
        if currency != spec.credit_unit.currency:
            valued = spec.credit_unit.currency
            problems.append(("pricing.markup", f"provider cost is in {currency} but credits are valued in {valued}"))
    return problems


def _modifier_problems(
    p: BasePlusModifiersPricing, allowed: Mapping[str, tuple[str, ...]], resolutions: tuple[str, ...]
) -> list[tuple[str, str]]:
    problems = [
        (f"pricing.resolution_percent.{name}", f"{name} is not one of resolutions {list(resolutions)}")
        for name in p.resolution_percent
        if name not in resolutions
    ]
    if str(p.base_duration) not in allowed["duration"]:
        problems.append(("pricing.base_duration", f"{p.base_duration} is not one of durations {_ints(allowed)}"))
    return problems


def _ints(allowed: Mapping[str, tuple[str, ...]]) -> list[int]:
    return [int(v) for v in allowed["duration"]]


def _grid_problems(p: GridPricing, allowed: Mapping[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    for key in p.keys:
        if key not in allowed:
            names = ", ".join(allowed)
            return [("pricing.keys", f"{key!r} is neither a request field nor an option of this model ({names})")]
    if len(set(p.keys)) != len(p.keys):
        return [("pricing.keys", "a key is repeated")]
    problems: list[tuple[str, str]] = []
    _walk_grid(p.table, p.keys, allowed, "pricing.table", problems)
    return problems


def _walk_grid(
    cell: Any, keys: tuple[str, ...], allowed: Mapping[str, tuple[str, ...]], path: str, out: list[tuple[str, str]]
) -> None:
    if not keys:
        if not isinstance(cell, int):
            out.append((path, "expected a number of credits, found a nested table (too few keys?)"))
        return
    if not isinstance(cell, dict):
        out.append((path, f"expected a table keyed by {keys[0]}, found {cell!r}"))
        return
    key, values = keys[0], allowed[keys[0]]
    # A missing cell is an error rather than "not offered": offers are declared in capabilities only.
    for value in values:
        if value not in cell:
            out.append((path, f"missing cell for {key} {value}"))
    for value, inner in cell.items():
        if value not in values:
            out.append((f"{path}.{value}", f"{value} is not an offered {key} ({', '.join(values)})"))
        else:
            _walk_grid(inner, keys[1:], allowed, f"{path}.{value}", out)
