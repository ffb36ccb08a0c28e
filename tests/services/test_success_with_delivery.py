"""A provider's success that carries its video is recorded and applied with the delivery's inbox row: on PostgreSQL
in one statement whose guard is the one the services apply to the row they read. Every case it guards against
(another job id, a job moved to another account, a job already ended, a redelivery) ends as it does without that
statement, on both databases."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reelgate.db.postgres import PgTx
from reelgate.db.records import Generation
from reelgate.db.sql import query
from tests.conftest import Running, make_account
from tests.helpers import generation_row
from tests.services.replicate_jobs import OUTPUT, PRICE, delivery, jobs_at_replicate, replicate_app

_EVENTS = query("SELECT from_status, to_status FROM generation_events WHERE generation_id = :id ORDER BY id")
_MOVE_ACCOUNT = query("UPDATE generations SET provider_account = :account WHERE id = :id")
_END = query("UPDATE generations SET status = 'failed' WHERE id = :id")


@pytest.fixture
async def running(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    async for value in replicate_app(tmp_path, database_url):
        yield value


async def _job(running: Running, provider_job_id: str | None = "job_1") -> Generation:
    account = await make_account(running.ctx, credits=PRICE)
    (job,) = await jobs_at_replicate(running, account.id, [provider_job_id])
    return job


async def _deliver(running: Running, job: Generation, *, job_id: str = "job_1", msg_id: str = "msg_1") -> str:
    """Replicate's signed `succeeded` delivery with its video, posted to the job's address; the ingest's result."""
    path, body, headers = delivery(running, job, "succeeded", msg_id, job_id=job_id)
    response = await running.client.post(path, content=body, headers=headers)
    assert response.status_code == 200, response.text
    result: str = response.json()["result"]
    return result


async def _events(running: Running, generation_id: str) -> list[tuple[str | None, str]]:
    rows = await running.ctx.db.read(lambda tx: tx.all(_EVENTS, {"id": generation_id}))
    return [(row[0], row[1]) for row in rows]


async def test_a_success_hands_the_job_to_the_download_step(running: Running) -> None:
    job = await _job(running)
    before = await _events(running, job.id)

    assert await _deliver(running, job) == "applied"
    row = await generation_row(running.ctx, job.id)
    assert (row.status, row.progress, row.needs_review, row.next_poll_at) == ("storing", 100, False, None)
    assert row.provider_job_id == "job_1" and row.credits_charged == 0
    assert row.raw_provider is not None and row.raw_provider["output"]["url"] == OUTPUT
    assert row.raw_provider["payload"]["status"] == "succeeded"
    assert await _events(running, job.id) == [*before, (None, "storing")]


async def test_a_success_fills_in_a_job_id_the_row_lacks(running: Running) -> None:
    job = await _job(running, provider_job_id=None)
    assert await _deliver(running, job, job_id="job_9") == "applied"
    row = await generation_row(running.ctx, job.id)
    assert (row.status, row.provider_job_id) == ("storing", "job_9")


async def test_a_success_for_another_job_id_is_ignored(running: Running) -> None:
    job = await _job(running)
    assert await _deliver(running, job, job_id="job_other") == "ignored"
    row = await generation_row(running.ctx, job.id)
    assert (row.status, row.provider_job_id, row.progress) == ("processing", "job_1", 0)
    # Recorded all the same: the provider's redelivery of it is a duplicate.
    assert await _deliver(running, job, job_id="job_other") == "duplicate"


async def test_a_success_for_a_job_moved_to_another_account_is_ignored(running: Running) -> None:
    job = await _job(running)
    moved = {"fingerprint": "fedcba9876543210", "base_url": "http://127.0.0.1:9"}
    await running.ctx.db.write(lambda tx: tx.run(_MOVE_ACCOUNT, {"account": json.dumps(moved), "id": job.id}))
    assert await _deliver(running, job) == "ignored"
    assert (await generation_row(running.ctx, job.id)).status == "processing"


async def test_a_success_after_the_job_ended_is_ignored(running: Running) -> None:
    job = await _job(running)
    await running.ctx.db.write(lambda tx: tx.run(_END, {"id": job.id}))
    before = await _events(running, job.id)
    assert await _deliver(running, job) == "ignored"
    assert (await generation_row(running.ctx, job.id)).status == "failed"
    assert await _events(running, job.id) == before


async def test_a_redelivered_success_changes_nothing_more(running: Running) -> None:
    job = await _job(running)
    assert await _deliver(running, job) == "applied"
    changed = await generation_row(running.ctx, job.id)
    events = await _events(running, job.id)
    assert await _deliver(running, job) == "duplicate"
    assert await generation_row(running.ctx, job.id) == changed
    assert await _events(running, job.id) == events


async def test_on_postgresql_a_success_is_one_statement(
    running: Running, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording the delivery, reading the job and changing it: one round trip inside the transaction, not two."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs the steps in turn, in its own process: no round trip to save")
    job = await _job(running)
    statements: list[str] = []
    run_one = PgTx.one

    def counted(self: PgTx, statement: Any, params: Any = None) -> Any:
        statements.append(statement.postgresql)
        return run_one(self, statement, params)

    monkeypatch.setattr(PgTx, "one", counted)
    monkeypatch.setattr(PgTx, "run", lambda *_: pytest.fail("no other statement was expected"))
    monkeypatch.setattr(PgTx, "all", lambda *_: pytest.fail("no other statement was expected"))
    assert await _deliver(running, job) == "applied"
    assert len(statements) == 1, statements
    assert (await generation_row(running.ctx, job.id)).status == "storing"
