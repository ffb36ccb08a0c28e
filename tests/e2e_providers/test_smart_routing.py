"""Smart routing through the HTTP API: `model` (or `tier`) naming a tier or `auto` gets the cheapest available
model that fits, named in the answer, quoted and held at that model's price, and served by its provider."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e_providers.conftest import PROMPT, Harness, Start

POLLO_MODELS = ("kling-v1-6", "pollo-v1-6", "kling-v2-5-turbo", "runway-gen-4-turbo")


@pytest.fixture
def provider_name() -> str:
    return "pollo"  # the default catalog's tiers are its four Pollo.ai models


async def _estimate(h: Harness, **body: Any) -> dict[str, Any]:
    response = await h.client.post("/api/v1/estimate", headers=h.headers, json={"prompt": PROMPT, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_tier_is_served_by_its_cheapest_model_at_that_models_price(e2e: Start) -> None:
    h = await e2e(polling=True)
    quoted = await _estimate(h, tier="economy", duration=5)
    assert quoted["model"] == "kling-v1-6" and quoted["available"]
    before = await h.credits()
    response = await h.client.post(
        "/api/v1/generations", headers=h.headers, json={"tier": "economy", "prompt": PROMPT, "duration": 5}
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["model"] == "kling-v1-6" and created["credits_held"] == quoted["total"]
    assert await h.credits() == {"available": before["available"] - quoted["total"], "held": quoted["total"]}
    job = await h.started(created["id"])
    h.sim.complete(job.id)
    final = await h.final(created["id"])
    assert final["status"] == "succeeded" and final["served_model"] == "kling-v1-6"
    assert final["credits_charged"] == quoted["total"]
    await h.check_ledger()


async def test_auto_picks_the_cheapest_model_that_fits_the_request(e2e: Start) -> None:
    h = await e2e()
    prices = {model: (await _estimate(h, model=model, duration=5))["total"] for model in POLLO_MODELS}
    auto = await _estimate(h, model="auto", duration=5)
    assert auto["total"] == min(prices.values()) and prices[auto["model"]] == auto["total"]
    # The preview renderer is cheaper still, but it is not an AI model: `auto` never sells it.
    assert (await _estimate(h, model="sandbox-t2v", duration=5))["total"] < auto["total"]
    response = await h.client.post(
        "/api/v1/generations", headers=h.headers, json={"model": "auto", "prompt": PROMPT, "duration": 5}
    )
    assert response.status_code == 202, response.text
    assert response.json()["model"] == auto["model"] and response.json()["credits_held"] == auto["total"]


async def test_constraints_narrow_the_pick_or_refuse_clearly(e2e: Start) -> None:
    h = await e2e()
    cheapest_pro = await _estimate(h, tier="pro", duration=5)
    refused = await h.client.post(
        "/api/v1/generations",
        headers=h.headers,
        json={"tier": "pro", "prompt": PROMPT, "duration": 5, "max_credits": cheapest_pro["total"] - 1},
    )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "no_model_fits" and "over the limit" in error["details"]["rejected"]["kling-v2-5-turbo"]
    assert (await h.credits())["held"] == 0  # nothing held for a refused request
    over = await h.client.post(
        "/api/v1/estimate", headers=h.headers, json={"model": "kling-v1-6", "prompt": PROMPT, "max_credits": 1}
    )
    assert over.status_code == 422 and over.json()["error"]["details"]["field"] == "max_credits"
    named = await h.client.post(
        "/api/v1/estimate", headers=h.headers, json={"model": "kling-v1-6", "prompt": PROMPT, "min_resolution": "720p"}
    )
    assert named.status_code == 422 and named.json()["error"]["details"]["field"] == "min_resolution"
    for body in ({"model": "kling-v1-6", "tier": "basic"}, {}):
        both = await h.client.post("/api/v1/generations", headers=h.headers, json={"prompt": PROMPT, **body})
        assert both.status_code == 422 and both.json()["error"]["code"] == "validation_error", both.text
    unknown = await h.client.post("/api/v1/estimate", headers=h.headers, json={"tier": "gold", "prompt": PROMPT})
    assert unknown.status_code in {404, 422}, unknown.text
