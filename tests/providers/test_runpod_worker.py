"""The example RunPod worker under RunPod's own local server, driven through RunPodProvider."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import ProviderConfig, ProviderRejected
from reelgate.providers.runpod import RunPodProvider
from tests.providers.helpers import job_request

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "examples" / "runpod_worker" / "handler.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def worker_url(tmp_path_factory):
    port = _free_port()
    # No RunPod credentials or pod id: the SDK then starts no heartbeat and talks to nobody
    # (docs/providers/runpod.md#endpoints).
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(HANDLER), "--rp_serve_api", "--rp_api_port", str(port), "--rp_api_host", "127.0.0.1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"worker exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"worker did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def provider(worker_url):
    adapter = RunPodProvider(ProviderConfig(extra={"ltx_endpoint_url": worker_url}))
    yield adapter
    await adapter.aclose()


async def test_worker_renders_a_video_through_the_adapter(provider, tmp_path, receiver):
    assert provider.configured()  # the local server needs no API key
    request = job_request(
        resolution="360p", width=320, height=192, duration=1, seed=5, webhook_url=f"{receiver.url}/hook"
    )
    job_id = (await provider.submit(request)).provider_job_id
    # POST /status runs the handler lazily (docs/providers/runpod.md#endpoints)
    update = await provider.status(job_id, request)
    assert update.state is ProviderState.SUCCEEDED, update.raw
    video = base64.b64decode(update.output.base64_data)
    assert video[4:8] == b"ftyp"
    with pytest.raises(ProviderRejected) as info:
        await provider.status(job_id, request)  # the local server forgets a job after answering once
    assert info.value.code == ProviderRejected.NOT_FOUND

    [hook] = receiver.wait_for(1, timeout=20)
    event = await provider.verify_and_parse_webhook(hook.headers, hook.body, {"job": job_id})
    assert event.update.state is ProviderState.SUCCEEDED and event.delivery_id == f"{job_id}:COMPLETED"

    try:
        from reelgate.media import probe_video
    except ImportError:
        pytest.skip("reelgate.media is not available yet: the MP4 was not probed")
    path = tmp_path / "out.mp4"
    path.write_bytes(video)
    info = probe_video(path)
    assert (info.width, info.height) == (320, 192) and info.duration == pytest.approx(1, abs=0.2)


async def test_worker_reports_contract_errors(provider):
    request = job_request(model_ref="ltx-2-i2v", resolution="360p", width=320, height=192, duration=1)
    # An i2v job with no image: the handler answers {"error": …}, which the local server reports as FAILED.
    job_id = (await provider.submit(request)).provider_job_id
    update = await provider.status(job_id, request)
    assert update.state is ProviderState.FAILED
    assert "image" in (update.error_message or "")


async def test_worker_health_and_no_cancel_route(provider):
    report = await provider.health()
    assert report.healthy and "local worker" in report.detail
    await provider.cancel("anything")  # the local server has no cancel route; the adapter skips it
