"""Quotes: each pricing rule, exact arithmetic, rounding, and breakdowns that always sum to the total."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelgate.catalog import load_catalog, load_default_catalog
from reelgate.domain.catalog import GenerationInput, ModelSpec, parse_catalog, resolve_request
from reelgate.domain.costs import provider_cost_estimate
from reelgate.domain.pricing import PerTokenPricing, quote, round_credits

PROMPT = "waves breaking on black volcanic sand"


def _spec(pricing: dict[str, Any], rounding: str = "ceil", **extra: Any) -> ModelSpec:
    model: dict[str, Any] = {
        "id": "m",
        "name": "M",
        "provider": "test",
        "provider_model": "m",
        "kind": "t2v",
        "capabilities": {
            "durations": [3, 5, 8, 10, 16],
            "default_duration": 5,
            "resolutions": ["480p", "720p", "1080p", "4k"],
            "default_resolution": "720p",
            "start_image": "optional",
            "end_image": True,
            "audio": True,
            "enhance_prompt": True,
            "options": {"mode": {"values": ["fast", "pro"]}},
        },
        "pricing": pricing,
        **extra,
    }
    doc = {"credit_unit": {"value": 0.01, "currency": "USD"}, "rounding": rounding, "models": [model]}
    return parse_catalog(doc, source="test.yaml").models[0]


def _quote(spec: ModelSpec, **given: Any) -> tuple[int, dict[str, int]]:
    result = quote(spec, resolve_request(spec, GenerationInput(prompt=PROMPT, **given)))
    assert sum(result.breakdown.values()) == result.total
    assert result.model == spec.id
    return result.total, result.breakdown


def test_round_credits() -> None:
    assert [round_credits(Fraction(x, 2), "round") for x in (1, 3, 5)] == [1, 2, 3]  # half up, not to even
    assert round_credits(Fraction(101, 100), "ceil") == 2
    assert round_credits(Fraction(199, 100), "floor") == 1


def test_per_second_direct_rate() -> None:
    spec = _spec({"rule": "per_second", "credits_per_second": 31})
    assert _quote(spec) == (155, {"base": 155})
    assert _quote(spec, duration=10) == (310, {"base": 310})


def test_per_second_cost_times_markup_is_exact() -> None:
    # 0.12 × 3.1 = 0.372 $/s: in binary floating point 0.372 × 5 / 0.01 is 185.99999999999997.
    spec = _spec({"rule": "per_second", "provider_cost_per_second": 0.12, "markup": 3.1})
    assert _quote(spec) == (186, {"base": 186})
    assert _quote(spec, duration=10)[0] == 372


def test_per_second_markup_uses_model_provider_cost() -> None:
    spec = _spec({"rule": "per_second", "markup": 3.1}, provider_cost={"per_second": 0.30, "currency": "USD"})
    assert _quote(spec)[0] == 465
    resolved = resolve_request(spec, GenerationInput(prompt=PROMPT, duration=10))
    assert provider_cost_estimate(spec, resolved) == 3


def test_per_second_resolution_multiplier_minimum_and_addons() -> None:
    pricing = {
        "rule": "per_second",
        "credits_per_second": 3,
        "resolution_multipliers": {"1080p": 1.5},
        "minimum": 12,
        "addons": {"audio": 7},
    }
    spec = _spec(pricing)
    assert _quote(spec, duration=5, resolution="1080p") == (23, {"base": 15, "resolution": 8})  # ceil(22.5)
    assert _quote(spec, duration=3) == (12, {"base": 9, "minimum": 3})
    assert _quote(spec, duration=5, audio=True) == (22, {"base": 15, "audio": 7})


@pytest.mark.parametrize(("rounding", "expected"), [("ceil", 23), ("round", 23), ("floor", 22)])
def test_rounding_is_per_catalog(rounding: str, expected: int) -> None:
    spec = _spec({"rule": "per_second", "credits_per_second": 4.5}, rounding=rounding)
    assert _quote(spec)[0] == expected


def test_grid() -> None:
    table = {
        "fast": {"720p": {5: 30, 10: 60}, "1080p": {5: 45, 10: 90}},
        "pro": {"720p": {5: 45, 10: 90}, "1080p": {5: 67, 10: 120}},
    }
    spec = _spec(
        {"rule": "grid", "keys": ["mode", "resolution", "duration"], "table": table, "addons": {"audio": 5}},
        capabilities={
            "durations": [5, 10],
            "resolutions": ["720p", "1080p"],
            "audio": True,
            "options": {"mode": {"values": ["fast", "pro"]}},
        },
    )
    assert _quote(spec) == (30, {"base": 30})
    assert _quote(spec, duration=5, resolution="1080p", options={"mode": "pro"}) == (67, {"base": 67})
    assert _quote(spec, duration=10, audio=True) == (65, {"base": 60, "audio": 5})


def test_grid_flat_price() -> None:
    assert _quote(_spec({"rule": "grid", "keys": [], "table": 40}), duration=16)[0] == 40


MODIFIERS: dict[str, Any] = {
    "rule": "base_plus_modifiers",
    "base": 2500,
    "base_duration": 8,
    "base_resolution": "720p",
    "resolution_percent": {"1080p": 30, "4k": 100},
    "extra_duration": {"per_seconds": 5, "percent": 50, "prorated": True},
    "image_percent": {"start": 20, "end": 30, "both": 40},
    "addons": {"audio": 10, "enhance_prompt": 5},
}


def test_base_plus_modifiers() -> None:
    spec = _spec(MODIFIERS)
    assert _quote(spec, duration=8) == (2500, {"base": 2500})
    assert _quote(spec, duration=16, resolution="1080p") == (5250, {"base": 2500, "resolution": 750, "duration": 2000})
    assert _quote(spec, duration=8, resolution="4k", start_image=True, end_image=True) == (
        6000,
        {"base": 2500, "resolution": 2500, "images": 1000},
    )
    assert _quote(spec, duration=5, audio=True, enhance_prompt=True) == (
        2515,
        {"base": 2500, "audio": 10, "enhance_prompt": 5},
    )


def test_base_plus_modifiers_whole_steps_and_component_rounding() -> None:
    stepped = {**MODIFIERS, "base": 333, "extra_duration": {"per_seconds": 5, "percent": 50, "prorated": False}}
    spec = _spec(stepped)
    # 2 extra seconds are a whole 5 s step: ceil(333 × 0.5) = 167; 1080p: ceil(99.9) = 100.
    assert _quote(spec, duration=10, resolution="1080p") == (600, {"base": 333, "resolution": 100, "duration": 167})
    prorated = _spec({**MODIFIERS, "base": 333})
    # 2/5 of a step: ceil(333 × 0.5 × 0.4) = ceil(66.6) = 67.
    assert _quote(prorated, duration=10) == (400, {"base": 333, "duration": 67})


# ---------------------------------------------------------------- property over every shipped catalog

CATALOG_DIR = Path(__file__).resolve().parents[2] / "examples" / "catalogs"
ALL_SPECS = [spec for path in sorted(CATALOG_DIR.glob("*.yaml")) for spec in load_catalog(path).models]
ALL_SPECS += list(load_default_catalog().models)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[ModelSpec, GenerationInput]:
    spec = draw(st.sampled_from(ALL_SPECS))
    caps = spec.capabilities
    start = caps.start_image == "required" or (caps.start_image == "optional" and draw(st.booleans()))
    media = spec.kind != "text"  # a text model refuses a duration, a resolution or an aspect ratio
    given = GenerationInput(
        prompt=draw(st.none() | st.text(alphabet="abc xyz", min_size=40, max_size=60).map(lambda s: f"a{s}z")),
        duration=draw(st.none() | st.sampled_from(caps.durations)) if media else None,
        resolution=draw(st.none() | st.sampled_from(caps.resolutions)) if media else None,
        aspect_ratio=draw(st.none() | st.sampled_from(caps.aspect_ratios)) if media else None,
        seed=draw(st.none() | st.integers(0, 2**32 - 1)) if caps.seed else None,
        start_image=start,
        end_image=caps.end_image and draw(st.booleans()),
        audio=caps.audio and draw(st.booleans()),
        enhance_prompt=caps.enhance_prompt and draw(st.booleans()),
        options={name: draw(st.sampled_from(option.values)) for name, option in caps.options.items()},
    )
    return spec, given


@settings(max_examples=400, deadline=None)
@given(valid_requests())
def test_every_quote_is_a_non_negative_int_equal_to_its_breakdown(case: tuple[ModelSpec, GenerationInput]) -> None:
    spec, given_input = case
    resolved = resolve_request(spec, given_input, require_prompt=False)
    result = quote(spec, resolved)
    assert isinstance(result.total, int) and result.total >= 0
    assert all(isinstance(value, int) for value in result.breakdown.values())
    assert sum(result.breakdown.values()) == result.total
    if isinstance(spec.pricing, PerTokenPricing):  # the most its input and output can cost
        assert {"input", "output"} <= set(result.breakdown)
    else:
        assert "base" in result.breakdown
