"""Routing through the HTTP API: fallbacks at no extra charge, jobs bound to their provider account, and
prompt enhancement by Poe."""

from __future__ import annotations

from typing import Any

import pytest

from reelgate.providers.base import ProviderConfig
from tests.e2e_providers.conftest import PROMPT
from tests.e2e_providers_wave2.conftest import ORDERS, Start, Wave2Harness
from tests.simulators.base import Fault


async def _quote(h: Wave2Harness, model: str, **order: Any) -> int:
    response = await h.client.post("/api/v1/estimate", headers=h.headers, json={"model": model, **order})
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


async def _served_elsewhere(h: Wave2Harness, generation_id: str, fallback: str) -> dict[str, Any]:
    """Waits for the job at the fallback's simulator, completes it there and returns the final generation."""
    await h.wait_status(generation_id, "processing")
    sim = h.sims[fallback]
    with sim.lock:
        jobs = list(sim.jobs.values())
    assert len(jobs) == 1, jobs
    sim.complete(jobs[0].id)
    return await h.final(generation_id)


async def test_unhealthy_provider_falls_back_at_no_extra_charge(wave2: Start) -> None:
    """Luma fails its health check; the job runs on Runway, whose own quote is higher, for Luma's price."""
    h = await wave2("luma", also=("runway",), polling=True)
    h.sims["luma"].faults.add("credits", Fault.error(503), times=5)
    fallback_price = await _quote(h, "runway-gen45", duration=5)
    assert fallback_price > h.price
    before = await h.credits()
    generation_id = await h.create()
    final = await _served_elsewhere(h, generation_id, "runway")

    assert final["status"] == "succeeded", final
    assert final["model"] == "luma-ray-2" and final["provider"] == "runway" and final["served_model"] == "runway-gen45"
    assert final["credits_charged"] == h.price == final["credits_quoted"]
    assert h.sims["luma"].requests_to("submit") == []
    submitted = h.sims["runway"].requests_to("submit")
    assert len(submitted) == 1 and submitted[0].json()["model"] == "gen4.5"  # the fallback's provider model
    assert await h.credits() == {"available": before["available"] - h.price, "held": 0}
    await h.check_ledger()


async def test_out_of_credit_at_submit_moves_to_the_next_route(wave2: Start) -> None:
    """Runway refuses for credit inside the submit step; Luma serves the job in the same step."""
    h = await wave2("runway", also=("luma",), polling=True)
    h.sim.out_of_credit = True
    before = await h.credits()
    generation_id = await h.create()
    final = await _served_elsewhere(h, generation_id, "luma")

    assert final["status"] == "succeeded" and final["served_model"] == "luma-ray-2", final
    assert final["credits_charged"] == h.price  # the quote the user accepted, whatever Luma costs
    assert len(h.sim.requests_to("submit")) == 1
    ready = await h.client.get("/readyz")
    assert "runway" in ready.text and "out of provider credit" in ready.text
    assert await h.credits() == {"available": before["available"] - h.price, "held": 0}
    await h.check_ledger()


async def test_a_refusal_that_is_not_about_capacity_or_credit_does_not_fall_back(wave2: Start) -> None:
    h = await wave2("runway", also=("luma",), polling=True)
    h.sim.faults.add("submit", Fault.error(400, {"error": "promptText is too long"}))
    before = await h.credits()
    final = await h.final(await h.create())
    assert final["status"] == "failed" and final["error"]["code"] == "provider_bad_input", final
    assert h.sims["luma"].requests_to("submit") == []
    assert await h.credits() == before
    await h.check_ledger()


@pytest.mark.parametrize("provider_name", ["veo", "runway", "edenai"])
async def test_jobs_keep_the_account_they_were_submitted_with(wave2: Start, provider_name: str) -> None:
    """New credentials and base URL mid-job: status and download (Veo), cancel (Runway) and webhook
    verification (EdenAI) still use the account the job was submitted with."""
    h = await wave2(provider_name, polling=provider_name != "edenai")
    before = await h.credits()
    generation_id = await h.create()
    job = await h.started(generation_id)
    old = h.ctx.providers.get(provider_name).config
    extra = dict(old.extra)
    if provider_name == "edenai":
        from tests.simulators.edenai import public_pem

        extra["webhook_public_key"] = public_pem(h.sim.other_key)  # type: ignore[attr-defined]
    rotated = ProviderConfig(api_key="rotated-key", base_url=f"http://127.0.0.1:{h.trap.port}", extra=extra)
    h.ctx.providers.reconfigure(provider_name, rotated)
    bound = (await h.row(generation_id)).provider_account or {}
    assert bound["fingerprint"] != h.ctx.providers.account(provider_name)["fingerprint"]

    if provider_name == "runway":
        response = await h.client.post(f"/api/v1/generations/{generation_id}/cancel", headers=h.headers)
        assert response.json()["status"] == "canceled"
        assert len(h.sim.requests_to("cancel")) == 1
        assert await h.credits() == before
    else:
        h.sim.complete(job.id)
        final = await h.final(generation_id)
        assert final["status"] == "succeeded" and final["credits_charged"] == h.price, final
    assert h.trap.hits() == 0
    await h.check_ledger()


async def test_prompt_enhancement_by_poe_is_sent_and_shown(wave2: Start) -> None:
    h = await wave2("modelslab", also=("poe",))
    plain = h.price
    h.price = await h.quote(enhance_prompt=True)
    assert h.price > plain  # the catalog's add-on
    generation_id = await h.create(enhance_prompt=True)
    job = await h.started(generation_id)
    enhanced = f"Cinematic dolly shot: {PROMPT}, golden hour light, shallow depth of field."
    assert job.body["prompt"] == enhanced
    h.sim.complete(job.id)
    final = await h.final(generation_id)
    assert final["status"] == "succeeded" and final["credits_charged"] == h.price, final
    assert final["prompt"] == PROMPT and final["enhanced_prompt"] == enhanced
    assert len(h.sims["poe"].chats) == 1  # type: ignore[attr-defined]
    await h.check_ledger()


async def test_prompt_enhancement_without_poe_is_refused_before_any_hold(wave2: Start) -> None:
    h = await wave2("modelslab")
    before = await h.credits()
    body = {**ORDERS["modelslab"], "prompt": PROMPT, "enhance_prompt": True}
    response = await h.client.post("/api/v1/generations", headers=h.headers, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["details"]["field"] == "enhance_prompt"
    assert await h.credits() == before
    await h.check_ledger()
