"""Jobs that do not succeed at RunPod, Replicate and Pollo: each ends once, with the hold released in full."""

from __future__ import annotations

import pytest

from tests.e2e_providers.conftest import Start
from tests.simulators.base import Fault


async def _assert_refunded(final: dict[str, object], price: int) -> None:
    assert final["credits_charged"] == 0 and final["credits_refunded"] == price, final
    assert final["credits_held"] == 0 and final["video_url"] is None


@pytest.mark.parametrize(
    ("message", "code"),
    [("CUDA out of memory", "provider_failed"), ("NSFW content detected", "content_policy")],
)
async def test_provider_failure_fails_and_refunds(e2e: Start, message: str, code: str) -> None:
    h = await e2e()
    before = await h.credits()
    generation_id = await h.create()
    job = await h.started(generation_id)
    h.sim.run(job.id)
    h.sim.fail(job.id, message)
    final = await h.final(generation_id)
    assert final["status"] == "failed", final
    assert final["error"]["code"] == code and message in final["error"]["message"]
    await _assert_refunded(final, h.price)
    assert await h.credits() == before
    await h.check_ledger()


@pytest.mark.parametrize(("status", "code"), [(400, "provider_bad_input"), (422, "provider_bad_input")])
async def test_rejected_submit_fails_with_a_clear_code(e2e: Start, status: int, code: str) -> None:
    h = await e2e()
    before = await h.credits()
    h.sim.faults.add("submit", Fault.error(status, {"detail": "duration must be at most 5", "message": "bad input"}))
    generation_id = await h.create()
    final = await h.final(generation_id)
    assert final["status"] == "failed" and final["error"]["code"] == code, final
    await _assert_refunded(final, h.price)
    assert len(h.sim.requests_to("submit")) == 1  # a permanent refusal is never retried
    assert await h.credits() == before
    await h.check_ledger()


async def test_cancel_cancels_at_the_provider_and_refunds(e2e: Start) -> None:
    h = await e2e()
    before = await h.credits()
    generation_id = await h.create()
    job = await h.started(generation_id)
    h.sim.run(job.id, progress=30)

    response = await h.client.post(f"/api/v1/generations/{generation_id}/cancel", headers=h.headers)
    assert response.status_code == 200, response.text
    final = response.json()
    assert final["status"] == "canceled", final
    await _assert_refunded(final, h.price)
    if h.provider == "pollo":
        # Pollo documents no cancel endpoint (docs/providers/pollo.md#cancel): we stop following the job and refund.
        assert h.sim.jobs[job.id].state == "running"
    else:
        assert len(h.sim.requests_to("cancel")) == 1
        assert h.sim.jobs[job.id].state == "canceled"

    # A stale success arriving after the cancel (the provider finished anyway) changes nothing.
    h.sim.complete(job.id)
    await h.webhooks_idle()
    assert {d.status for d in h.sim.webhooks.deliveries} <= {200}
    again = await h.get(generation_id)
    assert again["status"] == "canceled" and again["credits_charged"] == 0
    assert h.sim.requests_to("output") == []
    assert await h.credits() == before
    await h.check_ledger()


async def test_deadline_expires_and_refunds(e2e: Start) -> None:
    h = await e2e(polling=True, deadline=3)
    before = await h.credits()
    generation_id = await h.create()
    job = await h.started(generation_id)
    h.sim.run(job.id, progress=10)  # and it never finishes

    final = await h.final(generation_id, timeout=20)
    assert final["status"] == "expired", final
    assert final["error"]["code"] == "deadline_exceeded"
    await _assert_refunded(final, h.price)
    if h.provider != "pollo":
        assert len(h.sim.requests_to("cancel")) == 1  # best effort, so the provider stops billing
    # Polling stopped at the deadline.
    polls = len(h.sim.requests_to("status"))
    assert polls >= 1
    await h.idle(1.5)
    assert len(h.sim.requests_to("status")) == polls
    assert await h.credits() == before
    await h.check_ledger()


async def test_unknown_submit_outcome_waits_for_review_then_expires(e2e: Start) -> None:
    """The connection broke after the request was sent: resending could run (and bill) the job twice."""
    h = await e2e(polling=True, deadline=5)
    before = await h.credits()
    h.sim.faults.add("submit", Fault.reset())
    generation_id = await h.create()

    review = await h.wait_for(generation_id, lambda b: b["needs_review"])
    assert review["status"] == "submitting" and review["error"] is None
    assert await h.credits() == {"available": before["available"] - h.price, "held": h.price}

    final = await h.final(generation_id, timeout=20)
    assert final["status"] == "expired", final
    await _assert_refunded(final, h.price)
    assert len(h.sim.requests_to("submit")) == 1  # never resent blindly
    assert await h.credits() == before
    await h.check_ledger()


async def test_out_of_provider_credit_fails_refunds_and_degrades_readiness(e2e: Start) -> None:
    h = await e2e()
    before = await h.credits()
    ready = (await h.client.get("/readyz")).json()
    assert ready["checks"]["providers"][h.provider]["ok"], ready

    h.sim.out_of_credit = True
    generation_id = await h.create()
    final = await h.final(generation_id)
    assert final["status"] == "failed" and final["error"]["code"] == "provider_out_of_credit", final
    await _assert_refunded(final, h.price)
    assert await h.credits() == before

    response = await h.client.get("/readyz")
    assert response.status_code == 200  # the app still serves; one provider is degraded
    body = response.json()
    assert body["status"] == "degraded", body
    assert body["checks"]["providers"][h.provider]["ok"] is False
    assert "credit" in body["checks"]["providers"][h.provider]["degraded"]

    # The operator tops up: the next job goes through and readiness recovers.
    h.sim.out_of_credit = False
    second = await h.create()
    job = await h.started(second)
    h.sim.complete(job.id)
    assert (await h.final(second))["status"] == "succeeded"
    body = (await h.client.get("/readyz")).json()
    assert body["checks"]["providers"][h.provider]["ok"] is True, body
    await h.check_ledger()


@pytest.mark.parametrize("provider_name", ["runpod"])
async def test_runpod_cancel_finds_the_endpoint_after_a_restart(e2e: Start) -> None:
    """Cancel gets only the job id; with the adapter's memory gone it still reaches the right endpoint."""
    h = await e2e(runpod_wan_endpoint_id="wan-endpoint")
    generation_id = await h.create(model="wan-2.2-runpod", duration=5, resolution="720p")
    job = await h.started(generation_id)
    assert job.extra["endpoint"] == "wan-endpoint"
    h.ctx.providers.get("runpod")._job_endpoints.clear()  # type: ignore[attr-defined]

    response = await h.client.post(f"/api/v1/generations/{generation_id}/cancel", headers=h.headers)
    assert response.json()["status"] == "canceled"
    assert h.sim.jobs[job.id].state == "canceled"
    assert [r.path for r in h.sim.requests_to("cancel")][-1] == f"/wan-endpoint/cancel/{job.id}"
    await h.check_ledger()
