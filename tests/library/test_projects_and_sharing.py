"""Projects (moves, detail with totals, deletion with a choice), favourites, and share links."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import Account, Running
from tests.helpers import assert_ledger_ok, generation_row
from tests.library.conftest import make_video, stored_keys


async def test_move_detail_and_delete_with_a_choice(running: Running, alice: Account, bob: Account) -> None:
    client = running.client
    videos = [await make_video(client, alice) for _ in range(3)]
    theirs = await make_video(client, bob)
    default_project = videos[0]["project_id"]
    made = await client.post("/api/v1/projects", headers=alice.headers, json={"name": "Trailers"})
    trailers = made.json()["id"]

    moved = await client.post(
        "/api/v1/generations/move",
        headers=alice.headers,
        json={"ids": [videos[0]["id"], videos[1]["id"], theirs["id"]], "project_id": trailers},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["succeeded"] == [videos[0]["id"], videos[1]["id"]]
    assert moved.json()["not_found"] == [theirs["id"]]
    assert (await generation_row(running.ctx, theirs["id"])).project_id == theirs["project_id"]
    bobs_project = theirs["project_id"]
    refused = await client.post(
        "/api/v1/generations/move", headers=alice.headers, json={"ids": [videos[2]["id"]], "project_id": bobs_project}
    )
    assert refused.status_code == 404

    detail = await client.get(f"/api/v1/projects/{trailers}?limit=1", headers=alice.headers)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["totals"]["generations"] == 2
    assert body["totals"]["credits_spent"] == videos[0]["credits_charged"] + videos[1]["credits_charged"]
    assert [g["id"] for g in body["generations"]] == [videos[1]["id"]] and body["has_more"]
    following = await client.get(
        f"/api/v1/projects/{trailers}?limit=1&cursor={body['next_cursor']}", headers=alice.headers
    )
    assert [g["id"] for g in following.json()["generations"]] == [videos[0]["id"]]
    assert (await client.get(f"/api/v1/projects/{trailers}", headers=bob.headers)).status_code == 404

    # Without a choice a project holding videos stays; "move" sends them to the default project.
    assert (await client.delete(f"/api/v1/projects/{trailers}", headers=alice.headers)).status_code == 409
    gone = await client.delete(f"/api/v1/projects/{trailers}?generations=move", headers=alice.headers)
    assert gone.status_code == 200, gone.text
    assert gone.json()["generations_moved_to"] == default_project
    assert (await generation_row(running.ctx, videos[0]["id"])).project_id == default_project

    # "delete" deletes them too; deleting the only project makes a new default for the tombstones.
    removed = await client.delete(f"/api/v1/projects/{default_project}?generations=delete", headers=alice.headers)
    assert removed.status_code == 200, removed.text
    keeper = removed.json()["generations_moved_to"]
    for video in videos:
        row = await generation_row(running.ctx, video["id"])
        assert row.deleted_at is not None and row.project_id == keeper
    assert not any(any(v["id"] in key for v in videos) for key in await stored_keys(running.ctx.store))
    listed = await client.get("/api/v1/projects", headers=alice.headers)
    assert [p["id"] for p in listed.json()["data"]] == [keeper]
    await assert_ledger_ok(running.ctx)


async def test_favourites(running: Running, alice: Account, bob: Account) -> None:
    client = running.client
    loved, other = await make_video(client, alice), await make_video(client, alice)
    starred = await client.put(f"/api/v1/generations/{loved['id']}/favorite", headers=alice.headers)
    assert starred.status_code == 200 and starred.json()["favorite"] is True
    assert (await client.put(f"/api/v1/generations/{loved['id']}/favorite", headers=bob.headers)).status_code == 404
    favourites = await client.get("/api/v1/generations?favorite=true", headers=alice.headers)
    assert [g["id"] for g in favourites.json()["data"]] == [loved["id"]]
    others = await client.get("/api/v1/generations?favorite=false", headers=alice.headers)
    assert [g["id"] for g in others.json()["data"]] == [other["id"]]
    unstarred = await client.delete(f"/api/v1/generations/{loved['id']}/favorite", headers=alice.headers)
    assert unstarred.json()["favorite"] is False
    assert (await client.get("/api/v1/generations?favorite=true", headers=alice.headers)).json()["data"] == []


async def test_share_links(running: Running, alice: Account, bob: Account) -> None:
    client = running.client
    video = await make_video(client, alice, prompt="a secret lighthouse at dusk")
    content = await client.get(f"/api/v1/generations/{video['id']}/content", headers=alice.headers)

    hidden = await client.post(f"/api/v1/generations/{video['id']}/shares", headers=alice.headers, json={})
    assert hidden.status_code == 201, hidden.text
    link = hidden.json()
    path = link["url"].replace("http://testserver", "")
    page = await client.get(path)  # no credentials at all
    assert page.status_code == 200, page.text
    assert '<meta property="og:video" content="http://testserver' in page.text
    assert 'property="og:image"' in page.text
    assert "lighthouse" not in page.text  # the owner did not allow the prompt
    assert alice.email not in page.text and video["id"] not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    shared = await client.get(f"{path}/video")
    assert shared.status_code == 200 and shared.content == content.content
    assert (await client.get(f"{path}/thumbnail")).headers["content-type"] == "image/jpeg"
    ranged = await client.get(f"{path}/video", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == content.content[:10]

    shown = await client.post(
        f"/api/v1/generations/{video['id']}/shares", headers=alice.headers, json={"show_prompt": True}
    )
    assert (
        "a secret lighthouse at dusk" in (await client.get(shown.json()["url"].replace("http://testserver", ""))).text
    )

    # Guessed, truncated and altered tokens, and another user's share: 404.
    token = path.removeprefix("/s/")
    share_id, signature = token.split(".")
    for bad in (token[:-1], share_id, f"{share_id}.{signature[::-1]}", f"shr_{'A' * 22}.{signature}", "x"):
        assert (await client.get(f"/s/{bad}")).status_code == 404, bad
        assert (await client.get(f"/s/{bad}/video")).status_code == 404, bad
    assert (await client.delete(f"/api/v1/shares/{link['id']}", headers=bob.headers)).status_code == 404
    assert (await client.get(f"/api/v1/generations/{video['id']}/shares", headers=bob.headers)).status_code == 404

    # Revoked: 404, for good.
    assert (await client.delete(f"/api/v1/shares/{link['id']}", headers=alice.headers)).status_code == 204
    assert (await client.get(path)).status_code == 404
    assert (await client.get(f"{path}/video")).status_code == 404
    listed = await client.get(f"/api/v1/generations/{video['id']}/shares", headers=alice.headers)
    assert {s["id"]: s["revoked"] for s in listed.json()["data"]} == {link["id"]: True, shown.json()["id"]: False}

    # Expiring: good until its day comes, then 404.
    expiring = await client.post(
        f"/api/v1/generations/{video['id']}/shares", headers=alice.headers, json={"expires_in_days": 1}
    )
    expiring_path = expiring.json()["url"].replace("http://testserver", "")
    assert (await client.get(expiring_path)).status_code == 200
    real_clock = running.ctx.clock
    running.ctx.clock = lambda: real_clock() + timedelta(days=1, minutes=1)
    try:
        assert (await client.get(expiring_path)).status_code == 404
        assert (await client.get(shown.json()["url"].replace("http://testserver", ""))).status_code == 200
    finally:
        running.ctx.clock = real_clock

    # Deleting the video ends every link to it.
    assert (await client.delete(f"/api/v1/generations/{video['id']}", headers=alice.headers)).status_code == 204
    assert (await client.get(shown.json()["url"].replace("http://testserver", ""))).status_code == 404
