"""Image decode budgets: uploads are refused by what they take once decoded (width × height × channels × bytes
per channel), decodes run a few at a time whatever the number of uploads, and the renderer decodes an image once."""

from __future__ import annotations

import io
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from reelgate import media
from reelgate.settings import Settings
from tests.conftest import Account, Running, make_account, make_settings, start_app

MiB = 1024 * 1024


def png_declaring(width: int, height: int, *, bit_depth: int, colour_type: int) -> bytes:
    """A real PNG of that size and depth (all zero pixels), compressed row by row so it is made in about a second."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" * (1 + width * channels * bit_depth // 8)
    packer = zlib.compressobj(9)
    compressed = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", compressed) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def sixteen_bit_rgba() -> bytes:
    """The image from the finding: 6000×6000 16-bit RGBA, under the pixel cap, 288 MB once decoded."""
    return png_declaring(6000, 6000, bit_depth=16, colour_type=6)


# --- refusals, through the API -----------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", None)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async for value in start_app(settings):
        yield value


async def test_a_small_file_that_decodes_huge_is_refused(
    running: Running, alice: Account, sixteen_bit_rgba: bytes
) -> None:
    assert len(sixteen_bit_rgba) < 1 * MiB and 6000 * 6000 < 40_000_000
    response = await running.client.post(
        "/api/v1/uploads", headers=alice.headers, files={"file": ("big.png", sixteen_bit_rgba, "image/png")}
    )
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["details"] == {"max_decoded_bytes": 128 * MiB}
    assert "decoded" in error["message"]


async def test_bit_depth_and_channels_count(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", None, max_upload_decoded_bytes=1 * MiB)
    async for running in start_app(settings):
        account = await make_account(running.ctx)
        cases = {
            # 400×400 pixels each: the same pixel count, 640 KB decoded at 8-bit RGBA, 1.28 MB at 16-bit.
            "8-bit RGBA": (png_declaring(400, 400, bit_depth=8, colour_type=6), 201),
            "16-bit RGBA": (png_declaring(400, 400, bit_depth=16, colour_type=6), 413),
            "16-bit grey": (png_declaring(400, 400, bit_depth=16, colour_type=0), 201),
            "8-bit RGB, 600×600": (png_declaring(600, 600, bit_depth=8, colour_type=2), 413),
        }
        for name, (data, status) in cases.items():
            response = await running.client.post(
                "/api/v1/uploads", headers=account.headers, files={"file": ("x.png", data, "image/png")}
            )
            assert response.status_code == status, (name, response.text)


def test_the_renderer_keeps_only_a_frame_sized_decode() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 120, 200)).save(buffer, "JPEG", quality=80)
    source = media.decode_frame_source(buffer.getvalue(), 640, 360)
    assert source.mode == "RGB"
    assert source.size == (717, 404)  # the frame plus the Ken Burns margin, not 4000×3000
    with pytest.raises(media.MediaError) as refused:
        media.decode_frame_source(png_declaring(6000, 6000, bit_depth=16, colour_type=6), 640, 360)
    assert refused.value.code == "decoded_too_large"


# --- memory under concurrent uploads, in a real server process -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss(pid: int) -> int:
    """The process's resident memory high-water mark (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert found, status
    return int(found.group(1)) * 1024


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    data_dir = tmp_path_factory.mktemp("decode") / "data"
    data_dir.mkdir(parents=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REELGATE_DATA_DIR": str(data_dir),
        "REELGATE_PUBLIC_URL": url,
        "REELGATE_SECRET_KEY": "decode-budget-test-secret",
        "REELGATE_LOG_LEVEL": "WARNING",
        "REELGATE_MAX_UPLOAD_BYTES": str(20 * MiB),
    }
    log = data_dir.parent / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "reelgate", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield url, process.pid, data_dir
    finally:
        process.terminate()
        process.wait(timeout=15)


def _signed_in(url: str, data_dir: Path) -> tuple[httpx.Client, str]:
    email, password = (data_dir / "first-admin.txt").read_text().split("\n")[:2]
    client = httpx.Client(base_url=url, timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    client.post("/login", data={"email": email, "password": password, "csrf_token": token.group(1)})
    csrf = re.search(r'data-csrf="([^"]+)"', client.get("/studio").text)
    assert csrf
    return client, csrf.group(1)


def test_concurrent_uploads_decode_a_few_at_a_time(server_process: tuple[str, int, Path]) -> None:
    """Eight uploads at once of an image that decodes to 96 MB (4000×3000, 16-bit RGBA, inside every budget):
    the decodes queue for the decode threads, so the server's peak memory grows by about two decodes, not eight.
    Before the decode pool, the default thread pool ran up to six at once (~600 MB here)."""
    url, pid, data_dir = server_process
    client, csrf = _signed_in(url, data_dir)
    image = png_declaring(4000, 3000, bit_depth=16, colour_type=6)
    headers = {"X-CSRF-Token": csrf}
    warm = client.post("/api/v1/uploads", headers=headers, files={"file": ("w.png", image, "image/png")})
    assert warm.status_code == 201, warm.text
    before = _peak_rss(pid)

    def upload(index: int) -> int:
        files = {"file": (f"{index}.png", image, "image/png")}
        return client.post("/api/v1/uploads", headers=headers, files=files).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(upload, range(8)))
    assert statuses == [201] * 8
    growth = _peak_rss(pid) - before
    decoded = 4000 * 3000 * 4  # Pillow keeps 16-bit RGBA as 8-bit RGBA in memory: 48 MB per decode
    print(f"peak RSS growth for 8 concurrent uploads: {growth / MiB:.0f} MiB")
    assert growth < (media.DECODE_WORKERS + 2) * decoded, f"{growth / MiB:.0f} MiB"
    client.close()
