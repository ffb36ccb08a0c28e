"""Retrying a failed generation charges once, on both databases: concurrent retries (a double click, a client
resending) make one job, an unfinished retry answers again for itself, and an Idempotency-Key replays its
first answer on the API's retry route. The studio's Retry button is held to the same rule."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from reelgate.settings import Settings
from tests.conftest import Account, Running, make_settings
from tests.helpers import assert_ledger_ok, wait_for_terminal

FAILING = {"model": "sandbox-t2v", "prompt": "this one will [fail] on purpose"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # Slow enough that a retry is still running while the next click arrives.
    return make_settings(tmp_path / "data", database_url, sandbox_delay_seconds=2.0)


async def _available(running: Running, alice: Account) -> int:
    return int((await running.client.get("/api/v1/me", headers=alice.headers)).json()["credits"]["available"])


async def _failed_generation(running: Running, alice: Account) -> str:
    created = await running.client.post("/api/v1/generations", headers=alice.headers, json=FAILING)
    assert created.status_code == 202, created.text
    final = await wait_for_terminal(running.client, created.json()["id"], alice.headers)
    assert final["status"] == "failed"
    return str(final["id"])


async def test_concurrent_retries_of_one_failed_job_make_one_job(running: Running, alice: Account) -> None:
    failed = await _failed_generation(running, alice)
    before = await _available(running, alice)
    url = f"/api/v1/generations/{failed}/retry"
    answers = await asyncio.gather(*(running.client.post(url, headers=alice.headers) for _ in range(8)))
    assert {a.status_code for a in answers} == {202}
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1, ids
    assert sum(a.headers.get("idempotent-replayed") != "true" for a in answers) == 1
    held = answers[0].json()["credits_held"]
    assert await _available(running, alice) == before - held  # one hold, not eight

    # Retried again while that retry runs: the same job, nothing more held.
    again = await running.client.post(url, headers=alice.headers)
    assert again.json()["id"] in ids and again.headers["idempotent-replayed"] == "true"
    assert await _available(running, alice) == before - held
    listed = await running.client.get("/api/v1/generations", headers=alice.headers)
    assert sum(g.get("retry_of") == failed for g in listed.json()["data"]) == 1

    # Once it has ended, the job can be retried again.
    await wait_for_terminal(running.client, ids.pop(), alice.headers)
    later = await running.client.post(url, headers=alice.headers)
    assert later.status_code == 202 and later.headers.get("idempotent-replayed") is None
    await wait_for_terminal(running.client, later.json()["id"], alice.headers)
    await assert_ledger_ok(running.ctx)


async def test_the_retry_route_honours_an_idempotency_key(running: Running, alice: Account) -> None:
    failed = await _failed_generation(running, alice)
    url = f"/api/v1/generations/{failed}/retry"
    keyed = {**alice.headers, "Idempotency-Key": "retry-once-7f3a"}
    first = await running.client.post(url, headers=keyed)
    assert first.status_code == 202
    await wait_for_terminal(running.client, first.json()["id"], alice.headers)
    before = await _available(running, alice)
    # The same key after the retry ended: its first answer again, not a new charged job.
    replayed = await running.client.post(url, headers=keyed)
    assert replayed.status_code == 202
    assert replayed.json()["id"] == first.json()["id"] and replayed.headers["idempotent-replayed"] == "true"
    assert await _available(running, alice) == before
    # The key used for another request body is refused.
    reused = await running.client.post(
        "/api/v1/generations", headers=keyed, json={"model": "sandbox-t2v", "prompt": "something else entirely"}
    )
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    await assert_ledger_ok(running.ctx)


async def test_a_double_clicked_retry_button_in_the_studio_charges_once(running: Running, alice: Account) -> None:
    failed = await _failed_generation(running, alice)
    client = running.client
    page = await client.get("/signup")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    signed_in = await client.post(
        "/login", data={"email": alice.email, "password": "correct horse battery", "csrf_token": token.group(1)}
    )
    assert signed_in.status_code == 303
    csrf = re.search(r'data-csrf="([^"]+)"', (await client.get("/studio")).text)
    assert csrf
    before = await _available(running, alice)
    headers = {"X-CSRF-Token": csrf.group(1), "HX-Request": "true"}
    clicks = await asyncio.gather(
        *(client.post(f"/studio/generations/{failed}/retry", headers=headers) for _ in range(2))
    )
    assert [c.status_code for c in clicks] == [200, 200]
    assert sum("Started again" in c.text for c in clicks) == 1
    assert sum("already running again" in c.text for c in clicks) == 1
    listed = await client.get("/api/v1/generations", headers=alice.headers)
    retries = [g for g in listed.json()["data"] if g.get("retry_of") == failed]
    assert len(retries) == 1
    assert await _available(running, alice) == before - retries[0]["credits_held"]
    await wait_for_terminal(client, retries[0]["id"], alice.headers)
    await assert_ledger_ok(running.ctx)
