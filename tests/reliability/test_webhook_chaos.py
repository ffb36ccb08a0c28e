"""Scenario 3, webhook chaos: events delivered 0–5 times, shuffled, stale, forged, signed with a rotated secret."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import standardwebhooks

from tests.e2e_providers.conftest import with_query
from tests.reliability.gateway import Gateway
from tests.simulators.base import Job, Simulator
from tests.simulators.pollo import PolloSimulator

SEED = 3
PER_PROVIDER = 6
STALE = 3600  # far outside the five-minute tolerance


def _replicate_headers(secret: str, body: bytes, msg_id: str, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers signed with `secret` (the rotated-out one, for instance)."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = standardwebhooks.Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
    }


def _body_as(sim: Simulator, job: Job, state: str) -> bytes:
    """What the provider would post for `job` if it were in `state` (the job itself is not changed)."""
    with sim.lock:
        copy = dataclasses.replace(job, extra=dict(job.extra), state=state)
    if state == "succeeded":
        copy.output = sim.default_output(copy)
    body = sim.wire(copy)
    if isinstance(sim, PolloSimulator):
        body["status"] = body["generations"][0]["status"]
    return json.dumps(body).encode()


@dataclasses.dataclass
class Delivery:
    url: str
    body: bytes
    headers: dict[str, str]
    genuine: bool  # signed with the current secret, in time
    response: httpx.Response | None = None


async def _deliver_all(gw: Gateway, deliveries: list[Delivery], width: int = 6) -> None:
    """Posts every delivery, `width` at a time, in the (shuffled) order given."""
    for start in range(0, len(deliveries), width):
        batch = deliveries[start : start + width]
        responses = await asyncio.gather(*(gw.client.post(d.url, content=d.body, headers=d.headers) for d in batch))
        for delivery, response in zip(batch, responses, strict=True):
            delivery.response = response


def _sign(sim: Simulator, body: bytes, msg_id: str, kind: str) -> dict[str, str]:
    if kind == "stale":
        return sim.webhooks.build(body, msg_id, timestamp=int(time.time()) - STALE)
    return sim.webhooks.build(body, msg_id, corrupt=kind == "bad")


async def _forgeries_change_nothing(gw: Gateway, gens: dict[str, str], jobs: dict[str, Job], old_secret: str) -> None:
    """While every job still runs at the provider, forged, stale, rotated-out and unknown-id completions are
    refused with 401 and move nothing: the only way any generation could finish now is one of them."""
    deliveries: list[Delivery] = []
    for gid, provider in gens.items():
        sim, job = gw.sims[provider], jobs[gid]
        url = job.webhook_url or ""
        for state in ("succeeded", "failed"):
            body = _body_as(sim, job, state)
            for kind in ("bad", "stale"):
                deliveries.append(Delivery(url, body, _sign(sim, body, f"msg_forged_{uuid.uuid4().hex}", kind), False))
            if provider == "replicate":
                headers = _replicate_headers(old_secret, body, f"msg_forged_{uuid.uuid4().hex}")
                deliveries.append(Delivery(url, body, headers, False))
            # A genuine signature, for a generation that does not exist.
            unknown = with_query(url, g=f"gen_{uuid.uuid4().hex[:20]}")
            deliveries.append(Delivery(unknown, body, _sign(sim, body, f"msg_forged_{uuid.uuid4().hex}", "ok"), False))
    random.Random(SEED).shuffle(deliveries)
    before = {gid: await gw.events(gid) for gid in gens}
    await _deliver_all(gw, deliveries)
    assert {d.response.status_code for d in deliveries if d.response is not None} == {401}
    for gid in gens:
        assert (await gw.get(gid))["status"] == "processing"
        assert await gw.events(gid) == before[gid], "a refused webhook moved a generation"
        assert await gw.ledger_kinds(gid) == ["hold"]
    assert not [d for d, _ in await gw.inbox() if d.startswith("msg_forged_")]


def _plan(
    gw: Gateway, rng: random.Random, rotated_only: set[str], old_secret: str, url_to_gen: dict[str, str]
) -> list[Delivery]:
    """Every event the providers sent, 0–5 copies each; a third of the copies stale or forged; the jobs in
    `rotated_only` get theirs signed only with the old secret. Shuffled together."""
    plan: list[Delivery] = []
    for sim in gw.sims.values():
        for url, _event, body in sim.webhooks.dropped:
            gid = url_to_gen[url]
            msg_id = f"msg_{uuid.uuid4().hex}"  # one event: every retry of it carries the same id
            for _ in range(rng.randint(0, 5)):
                if gid in rotated_only:
                    plan.append(Delivery(url, body, _replicate_headers(old_secret, body, f"msg_old_{msg_id}"), False))
                    continue
                kind = rng.choice(["ok", "ok", "ok", "ok", "stale", "bad"])
                ident = msg_id if kind == "ok" else f"msg_forged_{uuid.uuid4().hex}"
                plan.append(Delivery(url, body, _sign(sim, body, ident, kind), kind == "ok"))
    rng.shuffle(plan)
    return plan


async def test_webhook_chaos(start_gateway: Any) -> None:
    gw: Gateway = await start_gateway(
        ["replicate", "pollo"], deadline=90, poll_initial_seconds=1.0, poll_max_seconds=2.0
    )
    rng = random.Random(SEED)
    gw.drop_webhooks()  # every event the simulators send is kept, then delivered by this test
    gens: dict[str, str] = {}
    for provider in ("replicate", "pollo"):
        for _ in range(PER_PROVIDER):
            gens[await gw.create(provider)] = provider
    jobs = {gid: await gw.started(provider, gid) for gid, provider in gens.items()}
    url_to_gen = {job.webhook_url or "": gid for gid, job in jobs.items()}
    for gid, provider in gens.items():
        gw.sims[provider].run(jobs[gid].id, progress=40)

    # The operator rotates Replicate's signing secret (at Replicate and in REPLICATE_WEBHOOK_SECRET) and
    # restarts: from now on only the new secret is accepted, also for jobs submitted before the rotation.
    old_secret = str(gw.sims["replicate"].webhook_secret)
    new_secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    gw.sims["replicate"].webhook_secret = new_secret
    await gw.restart(replicate_webhook_secret=new_secret)
    await _forgeries_change_nothing(gw, gens, jobs, old_secret)

    # The providers finish: most succeed, some fail. Two Replicate jobs only ever get deliveries signed
    # with the old secret (a sender that missed the rotation): polling has to finish them.
    outcomes = {gid: ("failed" if rng.random() < 0.25 else "succeeded") for gid in gens}
    for gid, provider in gens.items():
        sim, job = gw.sims[provider], jobs[gid]
        if outcomes[gid] == "failed":
            sim.fail(job.id, "CUDA out of memory")
        else:
            sim.complete(job.id)
    rotated_only = set([gid for gid, p in gens.items() if p == "replicate"][:2])
    plan = _plan(gw, rng, rotated_only, old_secret, url_to_gen)
    copies = Counter(d.body for d in plan if d.genuine)
    bodies = [body for sim in gw.sims.values() for _, _, body in sim.webhooks.dropped]
    spread = sorted(copies[body] for body in bodies)
    assert spread[0] == 0 and spread[-1] >= 3, spread  # some events never arrive, some arrive again and again
    await _deliver_all(gw, plan)

    for delivery in plan:
        assert delivery.response is not None
        assert delivery.response.status_code == (200 if delivery.genuine else 401), delivery.response.text
    results = {d.response.json()["result"] for d in plan if d.genuine and d.response is not None}
    assert results <= {"applied", "duplicate", "ignored"}, results

    for gid in gens:
        final = await gw.final(gid, timeout=30)
        assert final["status"] == outcomes[gid], (gid, final)
        assert await gw.settled_once(gid) == outcomes[gid]
    inbox = [d for d, _ in await gw.inbox()]
    assert not [d for d in inbox if d.startswith(("msg_forged_", "msg_old_"))], inbox
    assert {g for _, g in await gw.inbox()}.isdisjoint(rotated_only)  # finished by polling alone

    # A late `processing` after `succeeded`, genuinely signed, is accepted and ignored.
    for gid in [g for g, outcome in outcomes.items() if outcome == "succeeded"]:
        sim, job = gw.sims[gens[gid]], jobs[gid]
        events = await gw.events(gid)
        body = _body_as(sim, job, "running")
        headers = _sign(sim, body, f"msg_late_{gid}", "ok")
        late = await gw.client.post(job.webhook_url or "", content=body, headers=headers)
        assert late.status_code == 200 and late.json()["result"] == "ignored", late.text
        after = await gw.get(gid)
        assert after["status"] == "succeeded" and after["progress"] == 100
        assert await gw.events(gid) == events
    await gw.check_ledger()
