"""Providers' webhooks arriving all at once, several about each job and in every order: progress and success
(which change only their own job, and on PostgreSQL commit in that job's side lane) beside failures (which
settle the ledger in the main lane). Every delivery is answered, every job ends in one state, and the ledger
balances, on both databases."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Running, make_account
from tests.helpers import assert_ledger_ok, generation_row
from tests.services.replicate_jobs import PRICE, delivery, jobs_at_replicate, replicate_app

JOBS = 8


@pytest.fixture
async def running(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    async for value in replicate_app(tmp_path, database_url):
        yield value


async def test_concurrent_deliveries_in_every_order_leave_each_job_in_one_state(running: Running) -> None:
    account = await make_account(running.ctx, credits=JOBS * PRICE)
    jobs = await jobs_at_replicate(running, account.id, [f"job_{n}" for n in range(JOBS)])
    deliveries = []
    for job in jobs:
        for status in ("processing", "succeeded", "failed"):
            deliveries.append(delivery(running, job, status, f"msg_{job.id}_{status}"))
        deliveries.append(delivery(running, job, "succeeded", f"msg_{job.id}_succeeded"))  # a redelivery
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
