"""The spine end to end through the HTTP API: estimate, generate, watch, download, pay exactly the quote."""

from __future__ import annotations

import io

import av
import pytest

from reelgate.db.queries.generations import generation_by_id
from tests.conftest import Account, Running
from tests.helpers import assert_ledger_ok, credits, png_bytes, wait_for_terminal

FOX = "a red fox running through snow"


async def test_generate_watch_download_and_pay_the_estimate(running: Running, alice: Account) -> None:
    client = running.client
    estimate = await client.post("/api/v1/estimate", json={"model": "sandbox-t2v", "duration": 5, "resolution": "720p"})
    assert estimate.status_code == 200, estimate.text
    total = estimate.json()["total"]
    assert total > 0 and sum(estimate.json()["breakdown"].values()) == total
    before = await credits(client, alice.headers)

    created = await client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": FOX, "duration": 5, "resolution": "720p", "seed": 7},
    )
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["status"] == "queued" and body["credits_held"] == total
    held = await credits(client, alice.headers)
    assert held == {"available": before["available"] - total, "held": total}

    final = await wait_for_terminal(client, body["id"], alice.headers)
    assert final["status"] == "succeeded", final
    assert final["credits_charged"] == total and final["credits_refunded"] == 0
    assert final["output"]["width"] == 1280 and final["output"]["height"] == 720

    video = await client.get(f"/api/v1/generations/{body['id']}/content", headers=alice.headers)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        duration = float(stream.duration * stream.time_base) if stream.duration else container.duration / 1e6
        assert abs(duration - 5.0) <= 0.1

    partial = await client.get(
        f"/api/v1/generations/{body['id']}/content", headers={**alice.headers, "Range": "bytes=0-99"}
    )
    assert partial.status_code == 206 and len(partial.content) == 100 and partial.content == video.content[:100]
    thumb = await client.get(f"/api/v1/generations/{body['id']}/thumbnail", headers=alice.headers)
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"

    after = await credits(client, alice.headers)
    assert after == {"available": before["available"] - total, "held": 0}
    await assert_ledger_ok(running.ctx)


async def test_image_to_video_animates_the_upload(running: Running, alice: Account) -> None:
    client = running.client
    start = await client.post(
        "/api/v1/uploads",
        headers=alice.headers,
        files={"file": ("start.png", png_bytes(color=(250, 20, 20)), "image/png")},
    )
    end = await client.post(
        "/api/v1/uploads",
        headers=alice.headers,
        files={"file": ("end.jpg", png_bytes(color=(20, 20, 250), fmt="JPEG"), "image/jpeg")},
    )
    assert start.status_code == 201 and end.status_code == 201, (start.text, end.text)
    assert start.json()["width"] == 640
    created = await client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={
            "model": "sandbox-i2v",
            "prompt": "the red card turns blue",
            "duration": 2,
            "resolution": "480p",
            "start_image": start.json()["id"],
            "end_image": end.json()["id"],
        },
    )
    assert created.status_code == 202, created.text
    final = await wait_for_terminal(client, created.json()["id"], alice.headers)
    assert final["status"] == "succeeded", final
    video = await client.get(final["video_url"].replace("http://testserver", ""), headers=alice.headers)
    with av.open(io.BytesIO(video.content)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    first, last = frames[0].resize((1, 1)).getpixel((0, 0)), frames[-1].resize((1, 1)).getpixel((0, 0))
    assert first[0] > first[2] and last[2] > last[0]


async def test_provider_failure_refunds_everything(running: Running, alice: Account) -> None:
    before = await credits(running.client, alice.headers)
    created = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "this one will [fail] on purpose"},
    )
    final = await wait_for_terminal(running.client, created.json()["id"], alice.headers)
    assert final["status"] == "failed" and final["error"]["code"] == "provider_failed"
    assert final["credits_charged"] == 0 and final["credits_refunded"] == created.json()["credits_held"]
    assert await credits(running.client, alice.headers) == before
    video = await running.client.get(f"/api/v1/generations/{final['id']}/content", headers=alice.headers)
    assert video.status_code == 409 and video.json()["error"]["code"] == "not_ready"
    retried = await running.client.post(f"/api/v1/generations/{final['id']}/retry", headers=alice.headers)
    assert retried.status_code == 202 and retried.json()["retry_of"] == final["id"]
    await wait_for_terminal(running.client, retried.json()["id"], alice.headers)
    await assert_ledger_ok(running.ctx)


async def test_cancel_releases_the_hold(running: Running, alice: Account) -> None:
    created = await running.client.post(
        "/api/v1/generations",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": "a job that will [hang] forever"},
    )
    gid = created.json()["id"]
    canceled = await running.client.post(f"/api/v1/generations/{gid}/cancel", headers=alice.headers)
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text
    again = await running.client.post(f"/api/v1/generations/{gid}/cancel", headers=alice.headers)
    assert again.status_code == 409
    assert (await credits(running.client, alice.headers)) == {"available": 100, "held": 0}
    await assert_ledger_ok(running.ctx)


async def test_list_filters_and_cursor(running: Running, alice: Account) -> None:
    ids = []
    for n in range(5):
        r = await running.client.post(
            "/api/v1/generations",
            headers=alice.headers,
            json={"model": "sandbox-t2v", "prompt": f"[hang] scene number {n}", "duration": 2},
        )
        ids.append(r.json()["id"])
    page1 = (await running.client.get("/api/v1/generations?limit=2", headers=alice.headers)).json()
    assert [g["id"] for g in page1["data"]] == ids[::-1][:2] and page1["has_more"]
    page2 = (
        await running.client.get(f"/api/v1/generations?limit=2&cursor={page1['next_cursor']}", headers=alice.headers)
    ).json()
    assert [g["id"] for g in page2["data"]] == ids[::-1][2:4]
    queued = (await running.client.get("/api/v1/generations?status=succeeded", headers=alice.headers)).json()
    assert queued["data"] == []
    for gid in ids:
        await running.client.post(f"/api/v1/generations/{gid}/cancel", headers=alice.headers)


@pytest.mark.parametrize("model", ["sandbox-t2v", "ltx-2-t2v", "veo3", "kling-v1-6", "t2v-14B", "flux-schnell"])
async def test_every_catalog_model_estimates_even_without_credentials(running: Running, model: str) -> None:
    response = await running.client.post("/api/v1/estimate", json={"model": model})
    assert response.status_code == 200, response.text
    listed = {m["id"]: m for m in (await running.client.get("/api/v1/models")).json()["models"]}
    assert listed[model]["available"] is (model == "sandbox-t2v")


async def test_the_create_answer_says_how_long_the_job_is_expected_to_take(running: Running, alice: Account) -> None:
    """From the catalog's figure until the model has completions, then the median of its latest ones."""
    client, ctx = running.client, running.ctx
    order = {"model": "sandbox-t2v", "prompt": FOX, "duration": 1, "resolution": "480p"}
    first = await client.post("/api/v1/generations", headers=alice.headers, json=order)
    assert (
        first.status_code == 202
        and first.json()["estimated_seconds"] == ctx.catalog.get("sandbox-t2v").estimated_seconds
    )
    done = await wait_for_terminal(client, first.json()["id"], alice.headers)
    assert done["status"] == "succeeded"
    ctx.expected_times.clear()  # as a minute later: the figure is read again
    second = await client.post("/api/v1/generations", headers=alice.headers, json=order)
    row = await ctx.db.read(lambda tx: generation_by_id(tx, first.json()["id"]))
    assert row is not None and row.completed_at is not None
    taken = max(1, round((row.completed_at - row.created_at).total_seconds()))
    assert second.json()["estimated_seconds"] == taken
    await wait_for_terminal(client, second.json()["id"], alice.headers)
