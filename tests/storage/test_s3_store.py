"""S3Store against moto's S3 server: round trips, multipart, ranges, presigned URLs, aborts and memory use."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.stub import Stubber

from reelgate.storage import store_from_url
from reelgate.storage_s3 import S3Store, SourceChangedError

from .conftest import make_bucket

MIB = 1024 * 1024


def write_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def open_uploads(store: S3Store) -> list[dict[str, Any]]:
    return list(store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []))


async def collect(store: S3Store, key: str, start: int = 0, end: int | None = None) -> list[bytes]:
    return [chunk async for chunk in store.iter_range(key, start, end)]


async def test_round_trip_keeps_bytes_checksum_and_content_type(s3_store: S3Store, tmp_path: Path) -> None:
    data = write_file(tmp_path / "clip.mp4", 300_000)

    stored = await s3_store.put_file("generations/g1/output.mp4", tmp_path / "clip.mp4", "video/mp4")

    assert stored.key == "generations/g1/output.mp4"
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await s3_store.read_bytes(stored.key) == data
    assert await s3_store.size_of(stored.key) == len(data)
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key="media/generations/g1/output.mp4")
    assert head["ContentType"] == "video/mp4"
    assert head["Metadata"]["sha256"] == stored.sha256
    assert s3_store.local_path(stored.key) is None

    await s3_store.delete(stored.key)

    assert await s3_store.size_of(stored.key) is None
    with pytest.raises(FileNotFoundError):
        await s3_store.read_bytes(stored.key)
    with pytest.raises(FileNotFoundError):
        await collect(s3_store, stored.key)
    await s3_store.delete(stored.key)  # deleting a missing object is not an error


async def test_empty_file(s3_store: S3Store, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    stored = await s3_store.put_file("uploads/empty.bin", tmp_path / "empty", "application/octet-stream")
    assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await s3_store.read_bytes("uploads/empty.bin") == b""
    assert await collect(s3_store, "uploads/empty.bin") == []


async def test_multipart_upload_of_a_file_larger_than_one_part(s3_store: S3Store, tmp_path: Path) -> None:
    data = write_file(tmp_path / "big.mp4", 12 * MIB + 12345)

    stored = await s3_store.put_file("generations/g2/output.mp4", tmp_path / "big.mp4", "video/mp4")

    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key="media/generations/g2/output.mp4")
    assert head["ETag"].strip('"').endswith("-3")  # three 5 MiB parts, so it really was a multipart upload
    assert head["Metadata"]["sha256"] == stored.sha256
    assert head["ContentType"] == "video/mp4"
    assert await s3_store.read_bytes(stored.key) == data
    assert open_uploads(s3_store) == []


async def test_iter_range_returns_exactly_the_requested_bytes(s3_store: S3Store, tmp_path: Path) -> None:
    data = write_file(tmp_path / "big.mp4", 12 * MIB)
    await s3_store.put_file("v.mp4", tmp_path / "big.mp4", "video/mp4")

    # A range that crosses the part boundaries at 5 and 10 MiB.
    start, end = 5 * MIB - 100, 10 * MIB + 50
    chunks = await collect(s3_store, "v.mp4", start, end)
    assert b"".join(chunks) == data[start : end + 1]
    assert all(len(chunk) <= MIB for chunk in chunks)

    assert b"".join(await collect(s3_store, "v.mp4", 7)) == data[7:]
    assert b"".join(await collect(s3_store, "v.mp4", 0, 0)) == data[:1]
    assert b"".join(await collect(s3_store, "v.mp4")) == data
    with pytest.raises(ValueError):
        await collect(s3_store, "v.mp4", 10, 5)


async def test_abandoned_iteration_closes_the_stream(s3_store: S3Store, tmp_path: Path) -> None:
    write_file(tmp_path / "big.mp4", 6 * MIB)
    await s3_store.put_file("v.mp4", tmp_path / "big.mp4", "video/mp4")
    stream = s3_store.iter_range("v.mp4")
    first = await anext(stream)
    await stream.aclose()
    assert len(first) == MIB
    assert await s3_store.size_of("v.mp4") == 6 * MIB  # the store still works after a dropped download


async def test_presigned_url_serves_the_object_then_expires(s3_store: S3Store, tmp_path: Path) -> None:
    data = write_file(tmp_path / "clip.mp4", 70_000)
    await s3_store.put_file("clip.mp4", tmp_path / "clip.mp4", "video/mp4")

    url = await s3_store.presigned_url("clip.mp4")
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data

    short = await s3_store.presigned_url("clip.mp4", expires_in=1)
    assert short is not None and "X-Amz-Expires=1" in short
    await asyncio.sleep(2.1)
    assert httpx.get(short).status_code == 403


async def test_abort_stale_uploads_aborts_uploads_left_open_under_the_prefix(s3_store: S3Store) -> None:
    client, bucket = s3_store.client, s3_store.bucket
    left_open = client.create_multipart_upload(Bucket=bucket, Key="media/generations/g3/output.mp4")
    client.upload_part(
        Bucket=bucket,
        Key="media/generations/g3/output.mp4",
        UploadId=left_open["UploadId"],
        PartNumber=1,
        Body=b"x" * 1024,
    )
    other_app = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/file.bin")

    # moto reports every upload as initiated in 2010, so here all uploads under the prefix count as stale.
    assert await s3_store.abort_stale_uploads(timedelta(hours=1)) == 1

    remaining = open_uploads(s3_store)
    assert [upload["UploadId"] for upload in remaining] == [other_app["UploadId"]]
    assert await s3_store.size_of("generations/g3/output.mp4") is None
    assert await s3_store.abort_stale_uploads(timedelta(hours=1)) == 0


async def test_abort_stale_uploads_keeps_recent_uploads(aws_env: None) -> None:
    # moto cannot report real initiation times, so the cutoff is checked against stubbed S3 answers.
    store = S3Store("bucket", "media", endpoint_url="http://127.0.0.1:9")
    now = datetime.now(UTC)
    uploads = [
        {"Key": "media/old.mp4", "UploadId": "old", "Initiated": now - timedelta(hours=25)},
        {"Key": "media/new.mp4", "UploadId": "new", "Initiated": now - timedelta(minutes=5)},
        {"Key": "media/gone.mp4", "UploadId": "gone", "Initiated": now - timedelta(days=3)},
    ]
    with Stubber(store.client) as stub:
        stub.add_response(
            "list_multipart_uploads",
            {"Bucket": "bucket", "Uploads": uploads, "IsTruncated": False},
            {"Bucket": "bucket", "Prefix": "media/"},
        )
        stub.add_response("abort_multipart_upload", {}, {"Bucket": "bucket", "Key": "media/old.mp4", "UploadId": "old"})
        # Completed or aborted by another worker between the listing and the abort: not counted, not an error.
        stub.add_client_error(
            "abort_multipart_upload",
            service_error_code="NoSuchUpload",
            http_status_code=404,
            expected_params={"Bucket": "bucket", "Key": "media/gone.mp4", "UploadId": "gone"},
        )
        assert await store.abort_stale_uploads(timedelta(hours=24)) == 1
        stub.assert_no_pending_responses()


async def test_failing_part_aborts_and_leaves_no_object(s3_store: S3Store, tmp_path: Path) -> None:
    write_file(tmp_path / "big.mp4", 12 * MIB)
    calls: list[int] = []

    def fail_second_part(params: dict[str, Any], **_: Any) -> None:
        calls.append(params["PartNumber"])
        if params["PartNumber"] == 2:
            raise ConnectionError("network dropped")

    s3_store.client.meta.events.register("before-parameter-build.s3.UploadPart", fail_second_part)

    with pytest.raises(ConnectionError):
        await s3_store.put_file("generations/g4/output.mp4", tmp_path / "big.mp4", "video/mp4")

    assert calls == [1, 2]
    assert await s3_store.size_of("generations/g4/output.mp4") is None
    assert open_uploads(s3_store) == []


async def test_source_changing_mid_upload_aborts_and_leaves_no_object(s3_store: S3Store, tmp_path: Path) -> None:
    source = tmp_path / "big.mp4"
    write_file(source, 12 * MIB)

    def rewrite_source(params: dict[str, Any], **_: Any) -> None:
        if params["PartNumber"] == 1:
            # Same size, other bytes: only the checksum can notice.
            with open(source, "r+b") as handle:
                handle.seek(11 * MIB)
                handle.write(os.urandom(MIB))

    s3_store.client.meta.events.register("before-parameter-build.s3.UploadPart", rewrite_source)

    with pytest.raises(SourceChangedError):
        await s3_store.put_file("generations/g5/output.mp4", source, "video/mp4")

    assert await s3_store.size_of("generations/g5/output.mp4") is None
    assert open_uploads(s3_store) == []


async def test_small_file_changing_between_passes_is_refused(
    s3_store: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "small.jpg"
    write_file(source, 1000)
    monkeypatch.setattr("reelgate.storage_s3.file_digest", lambda path: (1000, "0" * 64))

    with pytest.raises(SourceChangedError):
        await s3_store.put_file("uploads/small.jpg", source, "image/jpeg")
    assert await s3_store.size_of("uploads/small.jpg") is None


async def test_check_passes_for_the_bucket_and_raises_for_a_missing_one(s3_store: S3Store, s3_endpoint: str) -> None:
    await s3_store.check()
    missing = S3Store("reelgate-no-such-bucket", endpoint_url=s3_endpoint)
    with pytest.raises(RuntimeError, match="reelgate-no-such-bucket"):
        await missing.check()


@pytest.mark.parametrize("key", ["", "/abs", "a/../../b", ".."])
async def test_invalid_keys_are_refused(s3_store: S3Store, key: str) -> None:
    with pytest.raises(ValueError):
        await s3_store.size_of(key)


async def test_no_prefix_and_store_from_url(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    data = write_file(tmp_path / "f", 10)
    bare = S3Store(bucket, endpoint_url=s3_endpoint)
    await bare.put_file("a/b.bin", tmp_path / "f", "application/octet-stream")
    assert bare.client.get_object(Bucket=bucket, Key="a/b.bin")["Body"].read() == data

    from_url = store_from_url(f"s3://{bucket}/tenant/media/", s3_endpoint_url=s3_endpoint)
    assert isinstance(from_url, S3Store)
    assert (from_url.bucket, from_url.prefix) == (bucket, "tenant/media")
    await from_url.put_file("a/b.bin", tmp_path / "f", "application/octet-stream")
    assert from_url.client.head_object(Bucket=bucket, Key="tenant/media/a/b.bin")["ContentLength"] == 10


def test_constructor_refuses_parts_below_the_s3_minimum(aws_env: None) -> None:
    with pytest.raises(ValueError):
        S3Store("bucket", multipart_chunk=MIB)
    with pytest.raises(ValueError):
        S3Store("")


# -- memory: a 200 MB video goes up and comes down in bounded memory ------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


class PeakRss:
    """Peak resident memory of this process during a block, relative to its start (bytes).

    The kernel's high-water mark (VmHWM) is reset first through /proc/self/clear_refs so that an earlier
    peak cannot hide this one; a sampling thread backs it up where that reset is not allowed."""

    def __init__(self) -> None:
        self.base = 0
        self.peak = 0
        self._hwm_reset = False
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _status_kib("VmRSS") * 1024)

    def __enter__(self) -> PeakRss:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._hwm_reset = True
        except OSError:
            self._hwm_reset = False
        self.base = _status_kib("VmRSS") * 1024
        self.peak = self.base
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sampler.join()
        if self._hwm_reset:
            self.peak = max(self.peak, _status_kib("VmHWM") * 1024)

    @property
    def growth(self) -> int:
        return self.peak - self.base


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_subprocess_endpoint(aws_env: None) -> Iterator[str]:
    """moto in a child process: it keeps objects in memory, which must not count as reelgate's memory."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


LARGE = 200 * MIB
MEMORY_BUDGET = 50 * MIB


async def test_200mb_upload_and_download_in_bounded_memory(
    s3_subprocess_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "large.mp4"
    expected = hashlib.sha256()
    with open(source, "wb") as handle:
        for _ in range(LARGE // MIB):
            block = os.urandom(MIB)
            expected.update(block)
            handle.write(block)
    store = S3Store(make_bucket(s3_subprocess_endpoint), "media", endpoint_url=s3_subprocess_endpoint)
    await store.check()  # connections and botocore's lazy imports happen before measuring

    with PeakRss() as upload:
        stored = await store.put_file("generations/large/output.mp4", source, "video/mp4")
    assert (stored.size, stored.sha256) == (LARGE, expected.hexdigest())

    downloaded = hashlib.sha256()
    received = 0
    with PeakRss() as download:
        async for chunk in store.iter_range(stored.key):
            downloaded.update(chunk)
            received += len(chunk)
    assert (received, downloaded.hexdigest()) == (LARGE, expected.hexdigest())

    with capsys.disabled():
        print(
            f"\n200 MB S3 upload: peak RSS growth {upload.growth / MIB:.1f} MiB; "
            f"download: {download.growth / MIB:.1f} MiB"
        )
    # Measured last so its freed block cannot pre-warm the heap for the transfers above.
    with PeakRss() as control:  # the meter must see a 60 MiB allocation, or the limits above prove nothing
        bytearray(60 * MIB)
    assert control.growth > 55 * MIB
    assert upload.growth < MEMORY_BUDGET
    assert download.growth < MEMORY_BUDGET
