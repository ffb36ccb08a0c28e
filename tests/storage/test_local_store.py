"""LocalStore: atomic puts, keys confined to the root, byte ranges and missing objects."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from reelgate.storage import LocalStore, store_from_url

MIB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "media")


def leftovers(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.endswith(".part")]


async def test_put_is_atomic_and_leaves_no_partial_file(store: LocalStore, tmp_path: Path) -> None:
    data = os.urandom(3 * MIB + 17)
    (tmp_path / "clip.mp4").write_bytes(data)

    stored = await store.put_file("generations/g1/output.mp4", tmp_path / "clip.mp4", "video/mp4")

    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await store.read_bytes(stored.key) == data
    assert store.local_path(stored.key) == store.root / "generations/g1/output.mp4"
    assert leftovers(store.root) == []


async def test_put_replaces_an_existing_object_whole(store: LocalStore, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"first version")
    (tmp_path / "b").write_bytes(b"second")
    await store.put_file("k.bin", tmp_path / "a", "application/octet-stream")
    await store.put_file("k.bin", tmp_path / "b", "application/octet-stream")
    assert await store.read_bytes("k.bin") == b"second"
    assert leftovers(store.root) == []


async def test_failed_put_leaves_no_object(store: LocalStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await store.put_file("k.bin", tmp_path / "does-not-exist", "application/octet-stream")
    assert await store.size_of("k.bin") is None
    assert store.local_path("k.bin") is None


@pytest.mark.parametrize("key", ["../outside.bin", "a/../../outside.bin", "/etc/passwd"])
async def test_keys_escaping_the_root_are_refused(store: LocalStore, tmp_path: Path, key: str) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ValueError):
        await store.put_file(key, tmp_path / "f", "application/octet-stream")
    with pytest.raises(ValueError):
        await store.read_bytes(key)
    assert not (tmp_path / "outside.bin").exists()


async def test_iter_range(store: LocalStore, tmp_path: Path) -> None:
    data = os.urandom(2 * MIB + 5)
    (tmp_path / "v").write_bytes(data)
    await store.put_file("v.mp4", tmp_path / "v", "video/mp4")

    async def read(start: int = 0, end: int | None = None) -> bytes:
        return b"".join([chunk async for chunk in store.iter_range("v.mp4", start, end)])

    assert await read() == data
    assert await read(MIB - 3, MIB + 3) == data[MIB - 3 : MIB + 4]
    assert await read(0, 0) == data[:1]
    assert await read(2 * MIB) == data[2 * MIB :]
    assert await read(len(data) - 1, len(data) + 100) == data[-1:]  # an end past the file is clipped
    chunks = [chunk async for chunk in store.iter_range("v.mp4")]
    assert max(len(chunk) for chunk in chunks) <= MIB


async def test_missing_objects(store: LocalStore) -> None:
    assert await store.size_of("nope.mp4") is None
    assert store.local_path("nope.mp4") is None
    assert await store.presigned_url("nope.mp4") is None
    with pytest.raises(FileNotFoundError):
        await store.read_bytes("nope.mp4")
    await store.delete("nope.mp4")  # deleting a missing object is not an error


async def test_delete_check_and_staging(store: LocalStore, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    await store.put_file("x/y.bin", tmp_path / "f", "application/octet-stream")
    await store.delete("x/y.bin")
    assert await store.size_of("x/y.bin") is None
    await store.check()
    # Staging lives inside the root so the final move is a rename on one filesystem.
    assert store.staging_dir().is_relative_to(store.root)


def test_store_from_url(tmp_path: Path) -> None:
    store = store_from_url(f"file://{tmp_path / 'data'}")
    assert isinstance(store, LocalStore)
    assert store.root == (tmp_path / "data").resolve()
    with pytest.raises(ValueError):
        store_from_url("ftp://host/path")
