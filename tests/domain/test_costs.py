"""Provider cost per request: per second, per job, or derived from the quote, with multipliers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from reelgate.domain.catalog import CatalogError, GenerationInput, ModelSpec, parse_catalog, resolve_request
from reelgate.domain.costs import provider_cost_estimate

PROMPT = "steam rising from a cup of tea"


def _spec(cost: dict[str, Any] | None, *, currency: str = "USD", value: float = 0.01) -> ModelSpec:
    model = {
        "id": "m",
        "name": "M",
        "provider": "test",
        "provider_model": "m",
        "kind": "t2v",
        "capabilities": {
            "durations": [5, 10],
            "resolutions": ["720p", "1080p"],
            "options": {"mode": {"values": ["fast", "pro"]}},
        },
        "pricing": {
            "rule": "base_plus_modifiers",
            "base": 500,
            "base_duration": 5,
            "resolution_percent": {"1080p": 30},
            "extra_duration": {"per_seconds": 5, "percent": 50},
        },
        "provider_cost": cost,
    }
    doc = {"credit_unit": {"value": value, "currency": currency}, "models": [model]}
    return parse_catalog(doc, source="costs.yaml").models[0]


def _cost(spec: ModelSpec, **given: Any) -> Decimal | None:
    return provider_cost_estimate(spec, resolve_request(spec, GenerationInput(prompt=PROMPT, **given)))


def test_per_second_scales_with_duration_resolution_and_mode() -> None:
    spec = _spec(
        {"per_second": 0.004, "resolution_multipliers": {"1080p": 2.25}, "option_multipliers": {"mode": {"pro": 2}}}
    )
    assert _cost(spec) == Decimal("0.020")
    assert _cost(spec, duration=10, resolution="1080p", options={"mode": "pro"}) == Decimal("0.18")


def test_per_job_is_flat() -> None:
    assert _cost(_spec({"per_job": 0.05}), duration=10) == Decimal("0.05")
    assert _cost(_spec(None)) is None


def test_price_markup_follows_the_quote() -> None:
    # 500 credits of Rp 50 at a 2.5x markup: the provider charged Rp 10,000; 1080p 10 s is 900 credits.
    spec = _spec({"price_markup": 2.5, "currency": "IDR"}, currency="IDR", value=50)
    assert _cost(spec) == Decimal("10000")
    assert _cost(spec, duration=10, resolution="1080p") == Decimal("18000")


@pytest.mark.parametrize(
    ("cost", "complaint"),
    [
        ({"per_second": 0.1, "per_job": 0.2}, "give exactly one of per_second, per_job, price_markup or the per_1k"),
        ({"price_markup": 2.5, "resolution_multipliers": {"1080p": 2}}, "price_markup follows the quote"),
        ({"per_second": 0.1, "option_multipliers": {"speed": {"x": 2}}}, "m has no option 'speed'"),
        ({"per_second": 0.1, "option_multipliers": {"mode": {"turbo": 2}}}, "not one of fast, pro"),
        ({"per_second": 0.1, "resolution_multipliers": {"8k": 2}}, "8k is not a resolution"),
        ({"price_markup": 2.5, "currency": "EUR"}, "price_markup derives the cost from credits in USD"),
    ],
)
def test_bad_cost_rules_are_refused(cost: dict[str, Any], complaint: str) -> None:
    with pytest.raises(CatalogError) as info:
        _spec(cost)
    assert str(info.value).startswith("costs.yaml: model 'm': provider_cost")
    assert complaint in str(info.value)
