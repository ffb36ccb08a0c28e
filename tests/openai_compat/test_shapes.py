"""/v1/videos on SQLite and PostgreSQL: the video object, OpenAI's error shape, scoping, refund on delete."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Account, Running, make_account
from tests.helpers import assert_ledger_ok, credits

FOX = "a red fox running through snow"


def openai_error(response: httpx.Response, status: int, code: str | None, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["code"], error["param"]) == (code, param), error
    return error


async def test_json_create_returns_the_video_object(running: Running, alice: Account) -> None:
    created = await running.client.post(
        "/v1/videos",
        headers=alice.headers,
        json={"model": "sandbox-t2v", "prompt": FOX, "seconds": 3, "size": "720x720"},
    )
    assert created.status_code == 200, created.text
    video = created.json()
    assert video["object"] == "video" and video["status"] == "queued" and video["progress"] == 0
    assert (video["seconds"], video["size"], video["prompt"], video["model"]) == ("3", "720x720", FOX, "sandbox-t2v")
    assert isinstance(video["created_at"], int) and video["completed_at"] is None and video["expires_at"] is None
    fetched = await running.client.get(f"/v1/videos/{video['id']}", headers=alice.headers)
    assert fetched.json()["id"] == video["id"]
    if fetched.json()["status"] in ("queued", "in_progress"):
        assert fetched.headers["openai-poll-after-ms"] == "500"
    native = await running.client.get(f"/api/v1/generations/{video['id']}", headers=alice.headers)
    assert native.json()["duration"] == 3 and native.json()["aspect_ratio"] == "1:1"


async def test_errors_take_openai_shape_only_on_v1(running: Running, alice: Account, bob: Account) -> None:
    client = running.client
    openai_error(await client.get("/v1/videos"), 401, "invalid_api_key")
    openai_error(
        await client.post("/v1/videos", headers=alice.headers, json={"model": "nope", "prompt": FOX}),
        404,
        "model_not_found",
        "model",
    )
    openai_error(
        await client.post("/v1/videos", headers=alice.headers, json={"model": "sandbox-t2v"}),
        400,
        "missing_required_parameter",
        "prompt",
    )
    bad_seconds = {"model": "sandbox-t2v", "prompt": FOX, "seconds": "12"}
    openai_error(
        await client.post("/v1/videos", headers=alice.headers, json=bad_seconds), 400, "invalid_value", "seconds"
    )
    unknown = {"model": "sandbox-t2v", "prompt": FOX, "style": "noir"}
    openai_error(
        await client.post("/v1/videos", headers=alice.headers, json=unknown), 400, "unknown_parameter", "style"
    )
    openai_error(await client.get("/v1/videos?order=sideways", headers=alice.headers), 400, None, "order")

    poor = await make_account(running.ctx, credits=1)
    broke = await client.post("/v1/videos", headers=poor.headers, json={"model": "sandbox-t2v", "prompt": FOX})
    assert openai_error(broke, 429, "insufficient_quota")["type"] == "insufficient_quota"
    assert broke.headers["x-should-retry"] == "false"

    mine = await client.post("/v1/videos", headers=alice.headers, json={"model": "sandbox-t2v", "prompt": FOX})
    video_id = mine.json()["id"]
    for method, path in [("GET", ""), ("GET", "/content"), ("DELETE", ""), ("POST", "/remix")]:
        response = await client.request(
            method, f"/v1/videos/{video_id}{path}", headers=bob.headers, json={"prompt": FOX}
        )
        openai_error(response, 404, "not_found")
    assert (await client.get("/v1/videos", headers=bob.headers)).json()["data"] == []

    native = await client.get("/api/v1/generations/gen_missing", headers=alice.headers)
    assert native.status_code == 404 and set(native.json()["error"]) == {"code", "message", "details"}


async def test_delete_cancels_refunds_and_hides(running: Running, alice: Account) -> None:
    client = running.client
    before = await credits(client, alice.headers)
    created = await client.post(
        "/v1/videos", headers=alice.headers, json={"model": "sandbox-t2v", "prompt": FOX + " [hang]", "seconds": "5"}
    )
    video_id = created.json()["id"]
    assert (await credits(client, alice.headers))["held"] == 10
    deleted = await client.delete(f"/v1/videos/{video_id}", headers=alice.headers)
    assert deleted.json() == {"id": video_id, "object": "video.deleted", "deleted": True}
    assert await credits(client, alice.headers) == before
    openai_error(await client.get(f"/v1/videos/{video_id}", headers=alice.headers), 404, "not_found")
    openai_error(await client.delete(f"/v1/videos/{video_id}", headers=alice.headers), 404, "not_found")
    native = (await client.get(f"/api/v1/generations/{video_id}", headers=alice.headers)).json()
    assert native["status"] == "canceled" and native["credits_refunded"] == 10
    await assert_ledger_ok(running.ctx)
