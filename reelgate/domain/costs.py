"""What a provider charges for a request: the catalog's cost rule and the one function that applies it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reelgate.domain.pricing import input_token_bound, max_output_tokens, quote

if TYPE_CHECKING:
    from reelgate.domain.catalog import ModelSpec, ResolvedRequest

Money = Annotated[Decimal, Field(ge=0)]
Multiplier = Annotated[Decimal, Field(gt=0)]


class ProviderCost(BaseModel):
    """One of three rules, in the provider's currency:

    - `per_second` of output video (Pollo, Runway, Veo; a GPU endpoint at an assumed throughput);
    - `per_job`: a flat charge per video or per image;
    - `price_markup`: the cost is the quote's money divided by this markup, for price lists that were
      set as "provider cost × markup" and publish only the result;
    - `per_1k_input_tokens` with `per_1k_output_tokens` (text models): per 1,000 tokens each way.

    `per_second` and `per_job` may be scaled by `resolution_multipliers` and `option_multipliers`
    (option name → value → multiplier), for providers that bill a higher resolution or mode more."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_second: Money | None = None
    per_job: Money | None = None
    price_markup: Annotated[Decimal, Field(gt=0)] | None = None
    per_1k_input_tokens: Money | None = None
    per_1k_output_tokens: Money | None = None
    resolution_multipliers: dict[str, Multiplier] = Field(default_factory=dict)
    option_multipliers: dict[str, dict[str, Multiplier]] = Field(default_factory=dict)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"

    @property
    def free(self) -> bool:
        """Nothing, whatever the request: a flat charge of zero (a model run on the operator's own machine)."""
        rules = (self.per_second, self.price_markup, self.per_1k_input_tokens, self.per_1k_output_tokens)
        return all(rule is None for rule in rules) and self.per_job == 0

    @model_validator(mode="after")
    def _one_rule(self) -> ProviderCost:
        if (self.per_1k_input_tokens is None) != (self.per_1k_output_tokens is None):
            raise ValueError("give per_1k_input_tokens and per_1k_output_tokens together")
        per_token = self.per_1k_input_tokens
        given = [rule for rule in (self.per_second, self.per_job, self.price_markup, per_token) if rule is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of per_second, per_job, price_markup or the per_1k token rates")
        if self.price_markup is not None and (self.resolution_multipliers or self.option_multipliers):
            raise ValueError("price_markup follows the quote, which already prices resolution and options")
        return self


def provider_cost_estimate(spec: ModelSpec, request: ResolvedRequest) -> Decimal | None:
    """What the provider is expected to charge for this request, in `spec.provider_cost.currency`.

    None when the model declares no cost. For a served fallback, pass the fallback's spec and the request
    it received: the margin is the accepted quote minus the cost of the route that served it."""
    cost = spec.provider_cost
    if cost is None:
        return None
    if cost.price_markup is not None:
        money = Fraction(quote(spec, request).total) * Fraction(spec.credit_unit.value)
        return _decimal(money / Fraction(cost.price_markup))
    if cost.per_1k_input_tokens is not None and cost.per_1k_output_tokens is not None:
        # The most the request can cost, like its quote; the usage of the finished job is usually less.
        tokens_in, tokens_out = input_token_bound(spec, request.prompt), max_output_tokens(spec)
        return token_cost(cost, tokens_in, tokens_out)
    base = cost.per_second * request.duration if cost.per_second is not None else cost.per_job
    assert base is not None  # the validator guarantees one rule
    factor = cost.resolution_multipliers.get(request.resolution, Decimal(1))
    for name, by_value in cost.option_multipliers.items():
        value = request.options.get(name)
        if value is not None:
            factor *= by_value.get(str(value), Decimal(1))
    return base * factor


def token_cost(cost: ProviderCost, input_tokens: int, output_tokens: int) -> Decimal:
    per_in, per_out = cost.per_1k_input_tokens or Decimal(0), cost.per_1k_output_tokens or Decimal(0)
    return _decimal((Fraction(per_in) * input_tokens + Fraction(per_out) * output_tokens) / 1000)


def _decimal(value: Fraction) -> Decimal:
    # Enough places for a fraction of a cent on any credit unit; costs are estimates, not ledger amounts.
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.000001"))


def provider_cost_problems(
    spec: ModelSpec, allowed: Mapping[str, tuple[str, ...]], known_resolutions: Collection[str]
) -> list[tuple[str, str]]:
    """Cross-checks of a model's provider cost against its capabilities and credit unit."""
    cost = spec.provider_cost
    if cost is None:
        return []
    problems: list[tuple[str, str]] = []
    resolutions = (*known_resolutions, *allowed["resolution"])
    for name in cost.resolution_multipliers:
        if name not in resolutions:
            problems.append((f"provider_cost.resolution_multipliers.{name}", f"{name} is not a resolution"))
    options = spec.capabilities.options
    for name, by_value in cost.option_multipliers.items():
        if name not in options:
            problems.append((f"provider_cost.option_multipliers.{name}", f"{spec.id} has no option '{name}'"))
            continue
        for value in by_value:
            if value not in allowed[name]:
                listing = ", ".join(allowed[name])
                problems.append((f"provider_cost.option_multipliers.{name}.{value}", f"not one of {listing}"))
    if cost.per_1k_input_tokens is not None and spec.kind != "text":
        problems.append(("provider_cost.per_1k_input_tokens", "token rates are for text models only"))
    if cost.per_1k_input_tokens is not None and (spec.text is None or spec.text.max_output_tokens is None):
        problems.append(("text.max_output_tokens", "token rates need it to bound a request's cost"))
    if cost.price_markup is not None and cost.currency != spec.credit_unit.currency:
        problems.append(
            ("provider_cost.currency", f"price_markup derives the cost from credits in {spec.credit_unit.currency}")
        )
    return problems
