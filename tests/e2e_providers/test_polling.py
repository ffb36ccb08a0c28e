"""Polling against a struggling provider: Retry-After honoured, transient errors retried a bounded number of times."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from tests.e2e_providers.conftest import Harness, Start
from tests.simulators.base import Fault


async def _status_arrivals(h: Harness, count: int, timeout: float = 20.0) -> list[float]:
    """When each of the first `count` status requests reached the provider (monotonic seconds)."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        arrived = len(h.sim.requests_to("status"))
        seen.extend([time.monotonic()] * (arrived - len(seen)))
        assert time.monotonic() < deadline, f"only {len(seen)} status requests"
        await asyncio.sleep(0.02)
    return seen[:count]


async def test_429_retry_after_on_status_is_honoured(e2e: Start) -> None:
    h = await e2e(polling=True)
    h.sim.webhooks.controls.drop = -1
    h.sim.faults.add("status", Fault.error(429, {"detail": "Request was throttled."}, retry_after="3"))
    generation_id = await h.create()
    job = await h.started(generation_id)
    first, second = await _status_arrivals(h, 2)
    # Polls are otherwise 0.1-0.5 s apart (plus at most a second of worker idling).
    assert second - first >= 2.7, second - first

    h.sim.complete(job.id)
    final = await h.final(generation_id)
    assert final["status"] == "succeeded" and final["credits_charged"] == h.price
    await h.check_ledger()


async def test_transient_status_errors_are_retried(e2e: Start) -> None:
    h = await e2e(polling=True)
    h.sim.webhooks.controls.drop = -1
    h.sim.faults.add("status", Fault.error(503), times=2)
    h.sim.faults.add("status", Fault.reset())
    generation_id = await h.create()
    job = await h.started(generation_id)
    h.sim.complete(job.id)
    final = await h.final(generation_id)
    assert final["status"] == "succeeded", final
    assert len(h.sim.requests_to("status")) >= 4
    await h.check_ledger()


async def test_transient_errors_are_bounded(e2e: Start) -> None:
    h = await e2e(polling=True)
    before = await h.credits()
    h.ctx.config = dataclasses.replace(h.ctx.config, max_transient_errors=3)
    h.sim.faults.add("status", Fault.error(502), times=50)
    generation_id = await h.create()
    final = await h.final(generation_id)
    assert final["status"] == "failed" and final["error"]["code"] == "provider_unavailable", final
    assert final["credits_refunded"] == h.price
    assert len(h.sim.requests_to("status")) == 3
    assert await h.credits() == before
    await h.check_ledger()


async def test_a_refused_submit_is_retried_then_goes_through(e2e: Start) -> None:
    """503 on submit means the provider did not take the job (unlike a reset after sending): safe to resend."""
    h = await e2e()
    h.sim.faults.add("submit", Fault.error(503, retry_after="1"))
    generation_id = await h.create()
    job = await h.started(generation_id)
    assert len(h.sim.requests_to("submit")) == 2 and len(h.sim.jobs) == 1
    h.sim.complete(job.id)
    assert (await h.final(generation_id))["status"] == "succeeded"
    await h.check_ledger()
