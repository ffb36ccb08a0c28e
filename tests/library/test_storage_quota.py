"""Storage use, the quota (default and per user, enforced on uploads and submissions with nothing charged) and
retention (favourites kept, a week's warning, the housekeeping run and its dry run)."""

from __future__ import annotations

import io
import os
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image

from reelgate.services import storage_quota
from tests.conftest import Account, Running
from tests.helpers import assert_ledger_ok, credits, generation_row, make_admin
from tests.library.conftest import make_video, stored_keys


def noisy_png(side: int = 620) -> bytes:
    """A PNG that does not compress: about side² × 3 bytes."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_usage_and_quota(running: Running, alice: Account, bob: Account) -> None:
    client = running.client
    await make_admin(running.ctx, bob.id)
    image = noisy_png()
    assert len(image) > 1024 * 1024
    upload = await client.post("/api/v1/uploads", headers=alice.headers, files={"file": ("n.png", image, "image/png")})
    assert upload.status_code == 201, upload.text
    video = await make_video(client, alice)
    usage = (await client.get("/api/v1/storage", headers=alice.headers)).json()
    assert usage["uploads_bytes"] == len(image)
    assert usage["outputs_bytes"] == video["output"]["size"] > 0
    assert usage["used_bytes"] == len(image) + video["output"]["size"]
    assert usage["quota_bytes"] is None

    # An administrator gives alice 1 MB: she is over it, so uploads and new generations are refused, unpaid.
    assert (
        await client.put(f"/api/v1/admin/users/{alice.id}/storage-quota", headers=alice.headers, json={"quota_mb": 1})
    ).status_code == 403
    quota = await client.put(f"/api/v1/admin/users/{alice.id}/storage-quota", headers=bob.headers, json={"quota_mb": 1})
    assert quota.status_code == 200, quota.text
    assert (await client.get("/api/v1/storage", headers=alice.headers)).json()["quota_bytes"] == 1024 * 1024
    before = await credits(client, alice.headers)
    refused = await client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "one more paper boat", "duration": 1, "resolution": "480p"},
    )
    assert refused.status_code == 507, refused.text
    assert refused.json()["error"]["code"] == "storage_quota_exceeded"
    assert refused.json()["error"]["details"]["quota_bytes"] == 1024 * 1024
    assert await credits(client, alice.headers) == before
    small = await client.post(
        "/api/v1/uploads", headers=alice.headers, files={"file": ("s.png", noisy_png(40), "image/png")}
    )
    assert small.status_code == 507
    # Bob has no quota of his own; deleting frees alice's room.
    assert (
        await client.post("/api/v1/uploads", headers=bob.headers, files={"file": ("n.png", image, "image/png")})
    ).status_code == 201
    await client.delete(f"/api/v1/generations/{video['id']}", headers=alice.headers)
    again = await client.put(
        f"/api/v1/admin/users/{alice.id}/storage-quota", headers=bob.headers, json={"quota_mb": None}
    )
    assert again.status_code == 200
    assert (await client.get("/api/v1/storage", headers=alice.headers)).json()["quota_bytes"] is None
    await make_video(client, alice)
    await assert_ledger_ok(running.ctx)


@pytest.fixture
def library_overrides() -> dict[str, Any]:
    return {"retention_days": 30}


async def test_retention(running: Running, alice: Account) -> None:
    client = running.client
    old, loved = await make_video(client, alice), await make_video(client, alice)
    await client.put(f"/api/v1/generations/{loved['id']}/favorite", headers=alice.headers)
    real_clock = running.ctx.clock

    # 25 days on: both would go within a week, but favourites are kept.
    running.ctx.clock = lambda: real_clock() + timedelta(days=25)
    usage = (await client.get("/api/v1/storage", headers=alice.headers)).json()
    assert usage["retention_days"] == 30 and usage["expiring_within_week"] == 1
    assert (await storage_quota.run_retention(running.ctx)).generations == []

    running.ctx.clock = lambda: real_clock() + timedelta(days=31)
    try:
        dry = await storage_quota.run_retention(running.ctx, dry_run=True)
        assert dry.generations == [old["id"]] and dry.bytes_freed == old["output"]["size"]
        assert any(old["id"] in key for key in await stored_keys(running.ctx.store))
        done = await storage_quota.run_retention(running.ctx)
        assert done.generations == [old["id"]]
        assert (await storage_quota.run_retention(running.ctx)).generations == []
    finally:
        running.ctx.clock = real_clock
    keys = await stored_keys(running.ctx.store)
    assert not any(old["id"] in key for key in keys)
    assert any(loved["id"] in key for key in keys)
    after = (await client.get(f"/api/v1/generations/{old['id']}", headers=alice.headers)).json()
    assert after["media_removed"] is True and after["video_url"] is None and after["status"] == "succeeded"
    assert after["credits_charged"] == old["credits_charged"]
    assert (await client.get(f"/api/v1/generations/{old['id']}/content", headers=alice.headers)).status_code == 409
    row = await generation_row(running.ctx, old["id"])
    assert row.deleted_at is None and row.media_removed_at is not None
    await assert_ledger_ok(running.ctx)
