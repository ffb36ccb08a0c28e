"""Bulk download: one ZIP streamed with a manifest, from local storage and S3; memory stays flat."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import zipfile
from pathlib import Path

from reelgate.services import archive
from reelgate.services.archive import Bundle
from reelgate.services.context import ServiceContext
from reelgate.storage import LocalStore
from tests.conftest import Account, Running
from tests.helpers import generation_record
from tests.library.conftest import make_video


async def test_zip_of_selected_videos_and_of_a_project(running: Running, alice: Account, bob: Account) -> None:
    client = running.client
    first = await make_video(client, alice, prompt="a lantern on the sea", seed=7)
    second = await make_video(client, alice)
    theirs = await make_video(client, bob)
    response = await client.post(
        "/api/v1/generations/download",
        headers=alice.headers,
        json={"ids": [first["id"], theirs["id"], second["id"]]},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    archive_file = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive_file.testzip() is None
    names = archive_file.namelist()
    assert names[-1] == "manifest.json" and len(names) == 3
    manifest = json.loads(archive_file.read("manifest.json"))
    assert [v["id"] for v in manifest["videos"]] == [first["id"], second["id"]]
    entry = manifest["videos"][0]
    assert entry["prompt"] == "a lantern on the sea" and entry["model"] == "sandbox-t2v" and entry["seed"] == 7
    assert entry["credits_charged"] == first["credits_charged"] and entry["created_at"]
    assert manifest["skipped"] == [{"id": theirs["id"], "reason": "not_found"}]
    content = await client.get(f"/api/v1/generations/{first['id']}/content", headers=alice.headers)
    assert archive_file.read(entry["file"]) == content.content
    assert theirs["id"] not in " ".join(names)

    only_theirs = await client.post("/api/v1/generations/download", headers=alice.headers, json={"ids": [theirs["id"]]})
    assert only_theirs.status_code == 404

    project = await client.get(f"/api/v1/projects/{first['project_id']}/download", headers=alice.headers)
    assert project.status_code == 200
    assert len(zipfile.ZipFile(io.BytesIO(project.content)).namelist()) == 3
    assert (
        await client.get(f"/api/v1/projects/{first['project_id']}/download", headers=bob.headers)
    ).status_code == 404


async def test_zip_memory_stays_flat(tmp_path: Path) -> None:
    """A 96 MiB video streams through with a peak of Python memory a small fraction of its size (one chunk
    at a time, whatever the size: a 2 GiB video behaves the same)."""
    size = 96 * 1024 * 1024
    store = LocalStore(tmp_path / "media")
    key = "generations/gen_big/output.mp4"
    path = store.root / key
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        for _ in range(size // (4 * 1024 * 1024)):
            handle.write(os.urandom(4 * 1024 * 1024))
    ctx = ServiceContext(db=None, catalog=None, providers=None, store=store)  # type: ignore[arg-type]
    generation = generation_record(id="gen_big", status="succeeded", output_key=key, output_size=size)
    tracemalloc.start()
    try:
        streamed = 0
        async for chunk in archive.stream_zip(ctx, Bundle(videos=[generation])):
            streamed += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert streamed > size
    assert peak / size < 0.1, f"peak {peak} bytes for a {size}-byte video"
