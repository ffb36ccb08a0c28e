"""Deleting generations: the row stays as a tombstone, the media leave storage, other users' ids are untouched,
and a delete racing the job's completion ends deleted with the right charge and no object left behind."""

from __future__ import annotations

import asyncio

from reelgate.services import library
from tests.conftest import Account, Running
from tests.helpers import assert_ledger_ok, credits, generation_row, png_bytes
from tests.library.conftest import make_video, stored_keys


async def _owned_keys(running: Running, generation_ids: list[str]) -> set[str]:
    return {key for key in await stored_keys(running.ctx.store) if any(g in key for g in generation_ids)}


async def test_delete_one_and_many(running: Running, alice: Account, bob: Account) -> None:
    client = running.client
    upload = await client.post(
        "/api/v1/uploads", headers=alice.headers, files={"file": ("a.png", png_bytes(), "image/png")}
    )
    assert upload.status_code == 201, upload.text
    upload_id = upload.json()["id"]
    from_image = await make_video(
        client, alice, model="sandbox-i2v", start_image=upload_id, prompt="the card turns", duration=1
    )
    first, second = await make_video(client, alice), await make_video(client, alice)
    theirs = await make_video(client, bob)
    before = await stored_keys(running.ctx.store)
    assert any(upload_id in key for key in before)
    assert await _owned_keys(running, [from_image["id"]]) == {
        f"generations/{from_image['id']}/output.mp4",
        f"generations/{from_image['id']}/thumbnail.jpg",
        f"generations/{from_image['id']}/spritesheet.jpg",
    }

    # One: 204, then it reads as not found; the row stays with its charge; its media and its upload are gone.
    deleted = await client.delete(f"/api/v1/generations/{from_image['id']}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text
    assert (await client.get(f"/api/v1/generations/{from_image['id']}", headers=alice.headers)).status_code == 404
    assert (await client.delete(f"/api/v1/generations/{from_image['id']}", headers=alice.headers)).status_code == 404
    row = await generation_row(running.ctx, from_image["id"])
    assert row.deleted_at is not None and row.output_key is None and row.thumbnail_key is None
    assert row.credits_charged == from_image["credits_charged"] > 0
    after = await stored_keys(running.ctx.store)
    assert not any(from_image["id"] in key or upload_id in key for key in after)
    assert (await client.get(f"/api/v1/uploads/{upload_id}", headers=alice.headers)).status_code == 404

    # Many: another user's id and an unknown one are reported as not found and left alone.
    bulk = await client.post(
        "/api/v1/generations/delete",
        headers=alice.headers,
        json={"ids": [first["id"], theirs["id"], "gen_nothing", second["id"]]},
    )
    assert bulk.status_code == 200, bulk.text
    body = bulk.json()
    assert body["succeeded"] == [first["id"], second["id"]]
    assert body["not_found"] == [theirs["id"], "gen_nothing"]
    assert {r["id"]: r["status"] for r in body["results"]}[theirs["id"]] == 404
    assert (await client.get(f"/api/v1/generations/{theirs['id']}", headers=bob.headers)).status_code == 200
    assert await _owned_keys(running, [theirs["id"]]) == {
        f"generations/{theirs['id']}/output.mp4",
        f"generations/{theirs['id']}/thumbnail.jpg",
        f"generations/{theirs['id']}/spritesheet.jpg",
    }
    assert await _owned_keys(running, [first["id"], second["id"]]) == set()
    listed = await client.get("/api/v1/generations", headers=alice.headers)
    assert listed.json()["data"] == []

    too_many = await client.post("/api/v1/generations/delete", headers=alice.headers, json={"ids": ["g"] * 101})
    assert too_many.status_code == 422
    await assert_ledger_ok(running.ctx)


async def test_deleting_a_running_job_cancels_and_refunds(running: Running, alice: Account) -> None:
    client = running.client
    before = await credits(client, alice.headers)
    created = await client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "a heron [hang]", "duration": 1, "resolution": "480p"},
    )
    assert created.status_code == 202, created.text
    generation_id = created.json()["id"]
    deleted = await client.delete(f"/api/v1/generations/{generation_id}", headers=alice.headers)
    assert deleted.status_code == 204
    row = await generation_row(running.ctx, generation_id)
    assert row.status == "canceled" and row.deleted_at is not None
    assert row.credits_refunded == row.quote_total and row.credits_charged == 0
    assert await credits(client, alice.headers) == before
    await assert_ledger_ok(running.ctx)


async def test_delete_racing_completion_leaves_no_orphans(running: Running, alice: Account) -> None:
    """Deletes land before, during and after each job's completion (the sandbox takes 0.3 s): every job ends
    deleted, charged if and only if it succeeded first, and nothing of any of them stays in storage."""
    client = running.client
    ids = []
    for _ in range(6):
        created = await client.post(
            "/api/v1/generations",
            headers=alice.headers,
            json={"model": "sandbox-t2v", "prompt": "a kite over the dunes", "duration": 1, "resolution": "480p"},
        )
        assert created.status_code == 202, created.text
        ids.append(created.json()["id"])

    async def delete_later(generation_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await library.delete_generation(running.ctx, alice.id, generation_id)

    await asyncio.gather(*(delete_later(g, 0.15 * i) for i, g in enumerate(ids)))
    for generation_id in ids:
        for _ in range(200):  # the output step, if it was storing, finishes and cleans up after itself
            row = await generation_row(running.ctx, generation_id)
            if row.status in ("succeeded", "canceled"):
                break
            await asyncio.sleep(0.05)
        assert row.deleted_at is not None
        assert row.status in ("succeeded", "canceled"), row.status
        if row.status == "succeeded":
            assert row.credits_charged == row.quote_total and row.credits_refunded == 0
        else:
            assert row.credits_refunded == row.quote_total and row.credits_charged == 0
    await asyncio.sleep(0.5)
    assert await _owned_keys(running, ids) == set()
    await assert_ledger_ok(running.ctx)
