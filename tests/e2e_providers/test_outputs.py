"""Provider outputs are fetched through the SSRF guard: internal addresses are refused without a connection."""

from __future__ import annotations

import pytest

from tests.e2e_providers.conftest import METADATA_HOST, Connections, Start


@pytest.mark.parametrize("target", ["metadata", "loopback"])
async def test_output_url_to_an_internal_address_is_never_fetched(
    e2e: Start, connections: Connections, target: str
) -> None:
    h = await e2e()
    before = await h.credits()
    # The simulator's own host:port is allow-listed; any other loopback port is as private as the metadata IP.
    url = f"http://{METADATA_HOST}/latest/meta-data/video.mp4" if target == "metadata" else h.trap.url
    h.sim.output_url_override = url
    generation_id = await h.create()
    job = await h.started(generation_id)
    h.sim.complete(job.id)
    final = await h.final(generation_id)

    assert final["status"] == "failed" and final["error"]["code"] == "unsafe_output_url", final
    assert final["credits_refunded"] == h.price and final["credits_charged"] == 0
    assert h.trap.hits() == 0
    assert not [a for a in connections.attempted if a[0] == METADATA_HOST or a[1] == h.trap.port]
    assert await h.credits() == before
    await h.check_ledger()


async def test_an_output_that_is_not_a_video_is_refused(e2e: Start) -> None:
    h = await e2e()
    h.sim.video = b"<html>this is not a video</html>" * 10
    generation_id = await h.create()
    job = await h.started(generation_id)
    h.sim.complete(job.id)
    final = await h.final(generation_id)
    assert final["status"] == "failed" and final["error"]["code"] == "invalid_output", final
    assert final["credits_refunded"] == h.price
    await h.check_ledger()
