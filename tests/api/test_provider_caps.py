"""A provider that takes only so many jobs at once (ModelsLab: 5 queued per account) never gets more from us:
further jobs wait, queued, and go as places free up; none fails or is charged for the wait. In all three
modes, production's two-queue workers included."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from reelgate.db.sql import query
from reelgate.settings import Settings
from tests.api.conftest import PRODUCTION
from tests.conftest import Running, make_account, make_settings
from tests.helpers import wait_for_terminal
from tests.production.harness import production_settings

CAP = 2
JOBS = 5
_AT_PROVIDER = query(
    "SELECT count(*) FROM generations WHERE provider = 'sandbox' AND status IN ('submitting', 'processing')"
)
_ATTEMPTS = query("SELECT max(submit_attempts) FROM generations")


@pytest.fixture
def settings(tmp_path: Path, database_url: str, api_mode: str) -> Settings:
    overrides = production_settings() if api_mode == PRODUCTION else {}
    return make_settings(
        tmp_path / "data",
        database_url,
        provider_max_in_flight=f"sandbox={CAP}",
        sandbox_delay_seconds=1.5,
        **overrides,
    )


async def test_jobs_beyond_a_providers_cap_wait_queued_and_all_finish(running: Running) -> None:
    assert running.ctx.config.provider_in_flight_caps == {"sandbox": CAP}
    account = await make_account(running.ctx, credits=200)
    order = {"model": "sandbox-t2v", "prompt": "a paper boat on a pond", "duration": 1, "resolution": "480p"}
    ids = []
    for _ in range(JOBS):
        created = await running.client.post("/api/v1/generations", json=order, headers=account.headers)
        assert created.status_code == 202, created.text
        ids.append(created.json()["id"])
    most = 0
    deadline = time.monotonic() + 60
    finals = {}
    while len(finals) < JOBS and time.monotonic() < deadline:
        most = max(most, int(await running.ctx.db.read(lambda tx: tx.scalar(_AT_PROVIDER))))
        for generation_id in ids:
            if generation_id not in finals:
                body = (
                    await running.client.get(f"/api/v1/generations/{generation_id}", headers=account.headers)
                ).json()
                if body["status"] in {"succeeded", "failed", "canceled", "expired"}:
                    finals[generation_id] = body
        await asyncio.sleep(0.05)
    assert most == CAP  # the cap was reached, never passed
    assert [final["status"] for final in finals.values()] == ["succeeded"] * JOBS
    # Waiting for a place is not a failed attempt.
    assert await running.ctx.db.read(lambda tx: tx.scalar(_ATTEMPTS)) == 1
    for generation_id in ids:
        await wait_for_terminal(running.client, generation_id, account.headers)
