"""Providers' webhooks arriving all at once, several about each job and in every order: progress and success
(which change only their own job, and on PostgreSQL commit in that job's side lane) beside failures (which
settle the ledger in the main lane). Every delivery is answered, every job ends in one state, and the ledger
balances, on both databases."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import standardwebhooks

from reelgate.db.queries import generations
from reelgate.db.queries.ledger import hold_credits
from reelgate.db.records import Generation
from reelgate.db.sql import Tx
from reelgate.services import projects
from reelgate.services.webhook_links import webhook_url
from tests.conftest import Running, make_account, make_settings, start_app
from tests.helpers import assert_ledger_ok, generation_record, generation_row

SECRET = "whsec_" + base64.b64encode(b"reelgate-test-webhook-secret-0123").decode()
JOBS = 8
PRICE = 5


@pytest.fixture
async def running(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    settings = make_settings(
        tmp_path / "data",
        database_url,
        embedded_worker=False,  # no download step: the test reads the state the webhooks left
        replicate_api_token="test-token",
        replicate_webhook_secret=SECRET,
    )
    async for value in start_app(settings):
        yield value


async def _jobs_in_flight(running: Running, user_id: str) -> list[Generation]:
    """Jobs as a submit leaves them at Replicate: processing, their credits held."""
    ctx = running.ctx
    spec = next(spec for spec in map(ctx.catalog.get, ctx.catalog.ids) if spec.provider == "replicate")
    project_id = await projects.default_project_id(ctx, user_id)
    jobs = [
        generation_record(
            id=f"gen_{secrets.token_hex(8)}",
            user_id=user_id,
            project_id=project_id,
            model=spec.id,
            provider="replicate",
            provider_model=spec.provider_model,
            kind=spec.kind,
            status="processing",
            provider_job_id=f"job_{n}",
            quote_total=PRICE,
            credits_held=PRICE,
            webhook_token=None,
        )
        for n in range(JOBS)
    ]

    def record(tx: Tx) -> None:
        for job in jobs:
            hold_credits(tx, user_id, PRICE, generation_id=job.id)
            generations.insert_generation(tx, job)

    await ctx.db.write(record)
    return jobs


def _delivery(running: Running, job: Generation, status: str, msg_id: str) -> tuple[str, str, dict[str, str]]:
    body = json.dumps(
        {
            "id": job.provider_job_id,
            "status": status,
            "output": "http://127.0.0.1:9/files/out.mp4" if status == "succeeded" else None,
            "error": "the model crashed" if status == "failed" else None,
            "logs": "50%" if status == "processing" else "",
            "input": {},
            "created_at": datetime.now(UTC).isoformat(),
        }
    )
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(SECRET).sign(msg_id, now, body),
    }
    address = urlsplit(webhook_url(running.ctx, job))
    return f"{address.path}?{address.query}", body, headers


async def test_concurrent_deliveries_in_every_order_leave_each_job_in_one_state(running: Running) -> None:
    account = await make_account(running.ctx, credits=JOBS * PRICE)
    jobs = await _jobs_in_flight(running, account.id)
    deliveries = []
    for job in jobs:
        for status in ("processing", "succeeded", "failed"):
            deliveries.append(_delivery(running, job, status, f"msg_{job.id}_{status}"))
        deliveries.append(_delivery(running, job, "succeeded", f"msg_{job.id}_succeeded"))  # a redelivery
    random.Random(7).shuffle(deliveries)
    responses = await asyncio.gather(
        *(running.client.post(path, content=body, headers=headers) for path, body, headers in deliveries)
    )
    assert [response.status_code for response in responses] == [200] * len(deliveries), [
        response.text for response in responses if response.status_code != 200
    ]
    ended = {}
    for job in jobs:
        row = await generation_row(running.ctx, job.id)
        # Success hands the job to the download step; a failure first ends it and releases its credits. A
        # failure after the success still ends it (the provider's last word), released likewise.
        assert row.status in ("storing", "failed"), row.status
        if row.status == "failed":
            assert row.credits_refunded == PRICE and row.credits_charged == 0
        ended[job.id] = row.status
    assert set(ended.values()) <= {"storing", "failed"}
    await assert_ledger_ok(running.ctx)
