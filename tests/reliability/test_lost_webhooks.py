"""Scenario 4, lost webhooks: polling finishes the jobs whose webhooks never came; stuck jobs expire and refund."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tests.reliability.gateway import Gateway

SEED = 4
PROVIDERS = ["runpod", "replicate", "pollo"]
PER_PROVIDER = 5
DEADLINE = 12  # seconds, the models' deadline in this test's catalog


async def test_polling_finishes_jobs_whose_webhooks_were_lost(start_gateway: Any) -> None:
    gw: Gateway = await start_gateway(PROVIDERS, deadline=DEADLINE, poll_initial_seconds=1.0, poll_max_seconds=2.0)
    rng = random.Random(SEED)
    gw.drop_webhooks()  # the test delivers the webhooks of the jobs that do not lose them
    gens = {}
    for provider in PROVIDERS:
        for _ in range(PER_PROVIDER):
            gens[await gw.create(provider)] = provider
    ids = list(gens)
    rng.shuffle(ids)
    lost = set(ids[: round(0.3 * len(ids))])  # every webhook of these is dropped
    stuck = set(ids[-2:])  # these never finish at the provider
    jobs = {gid: await gw.started(provider, gid) for gid, provider in gens.items()}
    for gid, provider in gens.items():
        gw.sims[provider].run(jobs[gid].id, progress=20)
    for gid in rng.sample(ids, len(ids)):
        if gid not in stuck:
            gw.sims[gens[gid]].complete(jobs[gid].id)
            await asyncio.sleep(rng.uniform(0, 0.1))

    sent = set()
    for sim in gw.sims.values():
        for url, _event, body in sim.webhooks.dropped:
            gid = next(g for g, job in jobs.items() if job.webhook_url == url)
            sent.add(gid)
            if gid not in lost:
                response = await gw.client.post(url, content=body, headers=sim.webhooks.build(body))
                assert response.status_code == 200, response.text

    finals = await asyncio.gather(*(gw.final(gid, timeout=DEADLINE + 15) for gid in ids))
    for gid, final in zip(ids, finals, strict=True):
        row = await gw.row(gid)
        assert row.completed_at is not None
        if gid in stuck:
            assert final["status"] == "expired" and final["error"]["code"] == "deadline_exceeded", final
            assert final["credits_refunded"] == row.quote_total and final["credits_charged"] == 0
            assert await gw.settled_once(gid) == "expired"
        else:
            assert final["status"] == "succeeded", final
            assert (row.completed_at - row.created_at).total_seconds() < DEADLINE
            assert await gw.settled_once(gid) == "succeeded"
    # The lost ones were finished by polling alone: not one webhook of theirs reached the app.
    delivered = {g for _, g in await gw.inbox()}
    assert delivered.isdisjoint(lost)
    assert delivered == sent - lost and len(sent - lost) >= 8
    # After its deadline a stuck job is no longer polled.
    polls = {name: len(sim.requests_to("status")) for name, sim in gw.sims.items()}
    await asyncio.sleep(2.5)
    assert {name: len(sim.requests_to("status")) for name, sim in gw.sims.items()} == polls
    await gw.check_ledger()
