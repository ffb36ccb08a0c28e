"""Start and end images given as URLs on the REST API: fetched through the SSRF guard, checked by content and
stored as the user's uploads; an idempotent replay fetches nothing again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reelgate.db.sql import query
from tests.conftest import Running, make_account, make_settings, start_app
from tests.helpers import credits, wait_for_terminal
from tests.simulators.base import AppServer

PROMPT = "a green square drifting to the right"
_UPLOADS = query("SELECT count(*) FROM uploads WHERE user_id = :user_id")


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    settings = make_settings(tmp_path / "data", None, fetch_allow_hosts="127.0.0.1")
    async for value in start_app(settings):
        yield value


async def _uploads(running: Running, user_id: str) -> int:
    return int(await running.ctx.db.read(lambda tx: tx.scalar(_UPLOADS, {"user_id": user_id})))


async def test_a_start_image_by_url_becomes_an_upload_and_animates(running: Running, images: AppServer) -> None:
    account = await make_account(running.ctx, credits=100)
    body = {"model": "sandbox-i2v", "prompt": PROMPT, "duration": 1, "start_image": f"{images.url}/start.png"}
    headers = {**account.headers, "Idempotency-Key": "by-url-1"}
    created = await running.client.post("/api/v1/generations", json=body, headers=headers)
    assert created.status_code == 202, created.text
    assert created.json()["start_image"].startswith("upl_")
    assert await _uploads(running, account.id) == 1
    # The same request again is a replay: the same generation, and the image is not fetched or stored twice.
    again = await running.client.post("/api/v1/generations", json=body, headers=headers)
    assert again.status_code == 202 and again.json()["id"] == created.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await _uploads(running, account.id) == 1
    final = await wait_for_terminal(running.client, created.json()["id"], account.headers)
    assert final["status"] == "succeeded", final


async def test_image_urls_that_are_not_images_or_not_allowed_are_refused(running: Running, images: AppServer) -> None:
    account = await make_account(running.ctx, credits=100)
    before = await credits(running.client, account.headers)
    cases = {
        f"{images.url}/not-an-image.png": (415, None),
        "http://10.0.0.1/a.png": (422, "not allowed"),
        "http://169.254.169.254/latest/meta-data": (422, "not allowed"),
        f"{images.url.replace('127.0.0.1', 'localhost')}/start.png": (422, "not allowed"),
    }
    for url, (status, words) in cases.items():
        body = {"model": "sandbox-i2v", "prompt": PROMPT, "duration": 1, "start_image": url}
        refused = await running.client.post("/api/v1/generations", json=body, headers=account.headers)
        assert refused.status_code == status, (url, refused.text)
        if words:
            error = refused.json()["error"]
            assert words in error["message"] and error["details"]["field"] == "start_image"
    assert await credits(running.client, account.headers) == before
    assert await _uploads(running, account.id) == 0
