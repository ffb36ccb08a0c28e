"""Text models in the catalog: what a text model may declare, per-token quotes and what a finished job costs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from reelgate.domain.catalog import CatalogError, GenerationInput, ModelSpec, parse_catalog, resolve_request
from reelgate.domain.costs import provider_cost_estimate
from reelgate.domain.errors import ValidationFailed
from reelgate.domain.pricing import PerTokenPricing, input_token_bound, quote, token_charge

SOURCE = "catalog.yaml"
SYSTEM = "Write a caption."  # 16 bytes


def _text_model(**overrides: Any) -> dict[str, Any]:
    model: dict[str, Any] = {
        "id": "writer",
        "name": "Writer",
        "provider": "poe",
        "provider_model": "GPT-4o",
        "kind": "text",
        "capabilities": {"prompt": {"min_length": 3, "max_length": 2000}},
        "text": {"system_prompt": SYSTEM, "max_output_tokens": 1000},
        "pricing": {"rule": "per_token", "credits_per_1k_input": 2, "credits_per_1k_output": 10},
        "provider_cost": {"per_1k_input_tokens": 0.0025, "per_1k_output_tokens": 0.01},
    }
    model.update(overrides)
    return model


def _parse(model: dict[str, Any]) -> ModelSpec:
    doc = {"credit_unit": {"value": 0.01, "currency": "USD"}, "models": [model]}
    return parse_catalog(doc, source=SOURCE).models[0]


def _refusal(model: dict[str, Any]) -> str:
    with pytest.raises(CatalogError) as info:
        _parse(model)
    return str(info.value)


@pytest.mark.parametrize(
    ("capabilities", "field"),
    [
        ({"durations": [0]}, "capabilities.durations"),
        ({"resolutions": ["720p"]}, "capabilities.resolutions"),
        ({"aspect_ratios": ["16:9"]}, "capabilities.aspect_ratios"),
        ({"start_image": "optional"}, "capabilities.start_image"),
        ({"options": {"tone": {"values": ["warm"]}}}, "capabilities.options"),
    ],
)
def test_a_text_model_declaring_video_settings_is_refused(capabilities: dict[str, Any], field: str) -> None:
    message = _refusal(_text_model(capabilities=capabilities))
    assert message.startswith(f"{SOURCE}: model 'writer': {field}: a text model takes only prompt limits")


def test_per_token_pricing_needs_max_output_tokens() -> None:
    message = _refusal(_text_model(text={"system_prompt": SYSTEM}))
    assert "text.max_output_tokens: per_token pricing needs it" in message


def test_per_token_pricing_and_token_costs_are_for_text_models_only() -> None:
    video = {
        "kind": "t2v",
        "text": None,
        "capabilities": {"durations": [5]},
        "provider_cost": {"per_job": 0.1},
    }
    assert "pricing.rule: per_token pricing is for text models only" in _refusal(_text_model(**video))
    flat = {
        **video,
        "pricing": {"rule": "grid", "keys": [], "table": 5},
        "provider_cost": _text_model()["provider_cost"],
    }
    assert "token rates are for text models only" in _refusal(_text_model(**flat))
    grid = {**video, "pricing": flat["pricing"], "text": {}}
    assert "only text models take a text section" in _refusal(_text_model(**grid))


def test_token_rates_come_in_pairs() -> None:
    message = _refusal(_text_model(provider_cost={"per_1k_input_tokens": 0.001}))
    assert "give per_1k_input_tokens and per_1k_output_tokens together" in message


def test_the_quote_is_the_most_a_request_can_cost() -> None:
    spec = _parse(_text_model())
    request = resolve_request(spec, GenerationInput(prompt="a dog on a skateboard"))  # 21 bytes
    bound = input_token_bound(spec, request.prompt)
    assert bound == 16 + 21 + 32  # every token is at least a byte, plus the framing of two messages
    priced = quote(spec, request)
    # input: 69 tokens × 2 / 1000 = 0.138 → 1; the whole: 0.138 + 1000 × 10 / 1000 = 10.138 → 11.
    assert (priced.total, priced.breakdown) == (11, {"input": 1, "output": 10})
    assert provider_cost_estimate(spec, request) == Decimal("0.010172")  # 69 × 0.0025/1000 + 1000 × 0.01/1000


def test_a_finished_job_costs_its_usage_never_more_than_its_hold() -> None:
    spec = _parse(_text_model(pricing={**_text_model()["pricing"], "minimum": 2}))
    assert isinstance(spec.pricing, PerTokenPricing)
    # 100 in, 150 out: 0.2 + 1.5 = 1.7 → 2 credits; the minimum is 2 as well.
    assert token_charge(spec.pricing, "ceil", 11, 100, 150) == 2
    assert token_charge(spec.pricing, "ceil", 11, 10, 10) == 2  # the minimum
    assert token_charge(spec.pricing, "ceil", 11, 400, 950) == 11  # 0.8 + 9.5 = 10.3 → 11
    assert token_charge(spec.pricing, "ceil", 11, 5000, 5000) == 11  # capped at what was held


@pytest.mark.parametrize(("field", "value"), [("duration", 5), ("resolution", "720p"), ("aspect_ratio", "16:9")])
def test_a_text_request_naming_a_video_setting_is_refused(field: str, value: object) -> None:
    spec = _parse(_text_model())
    with pytest.raises(ValidationFailed) as info:
        resolve_request(spec, GenerationInput(prompt="a dog on a skateboard", **{field: value}))
    assert info.value.field == field


def test_a_text_request_with_an_image_is_refused() -> None:
    spec = _parse(_text_model())
    with pytest.raises(ValidationFailed) as info:
        resolve_request(spec, GenerationInput(prompt="a dog on a skateboard", start_image=True))
    assert info.value.field == "start_image"
