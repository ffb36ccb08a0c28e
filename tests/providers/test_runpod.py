"""RunPodProvider against the RunPod simulator over loopback HTTP."""

from __future__ import annotations

import base64
import json
import time
from email.utils import formatdate

import httpx
import pytest

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import (
    ProviderConfig,
    ProviderRejected,
    RetryLater,
    SubmitOutcomeUnknown,
    WebhookRejected,
)
from reelgate.providers.runpod import RunPodProvider
from tests.providers.helpers import PNG_1PX, image, job_request
from tests.simulators.base import Fault


@pytest.fixture
async def provider(runpod_sim):
    extra = {"ltx_endpoint_id": "ltx-ep", "wan_endpoint_id": "wan-ep"}
    adapter = RunPodProvider(ProviderConfig(api_key="test-key", base_url=runpod_sim.url, extra=extra))
    yield adapter
    await adapter.aclose()


async def test_ltx_submit_sends_seed_000_payload_with_1088_rows(provider, runpod_sim):
    request = job_request(
        resolution="1080p",
        width=1920,
        height=1080,
        seed=42,
        options={"mode": "pro"},
        webhook_url="http://127.0.0.1:9/hook?t=abc",
    )
    result = await provider.submit(request)
    [sent] = runpod_sim.requests_to("submit")
    assert sent.path == "/ltx-ep/run"
    assert sent.json() == {
        "input": {
            "prompt": "a lighthouse at dusk",
            "type": "t2v",
            "mode": "pro",
            "width": 1920,
            "height": 1088,
            "duration": 10,
            "seed": 42,
            "camera_lora": "static",
        },
        "webhook": "http://127.0.0.1:9/hook?t=abc",
    }
    assert "authorization" not in sent.headers  # the request log never keeps credentials
    assert result.provider_job_id in runpod_sim.jobs


async def test_ltx_portrait_720p_i2v_with_url_and_with_bytes(provider, runpod_sim):
    portrait = job_request(
        model_ref="ltx-2-i2v",
        aspect_ratio="9:16",
        start_image=image("https://img.example/a.png"),
        options={"camera_lora": "dolly_in", "mode": "turbo"},
    )
    await provider.submit(portrait)
    await provider.submit(job_request(model_ref="ltx-2-i2v", start_image=image()))
    first, second = (r.json()["input"] for r in runpod_sim.requests_to("submit"))
    assert (first["width"], first["height"], first["type"]) == (720, 1280, "i2v")
    assert first["image_url"] == "https://img.example/a.png" and "image_base64" not in first
    assert first["camera_lora"] == "dolly_in" and first["mode"] == "fast"  # unknown modes run fast
    assert base64.b64decode(second["image_base64"]) == PNG_1PX and "seed" not in second


async def test_wan_goes_to_its_own_endpoint(provider, runpod_sim):
    await provider.submit(job_request(model_ref="wan-2.2-t2v", duration=5, negative_prompt="blur", seed=7))
    [sent] = runpod_sim.requests_to("submit")
    assert sent.path == "/wan-ep/run"
    assert sent.json()["input"] == {
        "prompt": "a lighthouse at dusk",
        "negative_prompt": "blur",
        "width": 1280,
        "height": 720,
        "duration": 5,
        "num_frames": 81,
        "seed": 7,
    }


async def test_unknown_model_family_is_bad_input(provider):
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(job_request(model_ref="sdxl"))
    assert info.value.code == ProviderRejected.BAD_INPUT


async def test_status_maps_every_state(provider, runpod_sim):
    request = job_request()
    ids = [(await provider.submit(request)).provider_job_id for _ in range(6)]
    assert (await provider.status(ids[0], request)).state is ProviderState.QUEUED
    runpod_sim.run(ids[0], progress=35)
    running = await provider.status(ids[0], request)
    assert (running.state, running.progress) == (ProviderState.RUNNING, 35)
    runpod_sim.complete(ids[1])
    done = await provider.status(ids[1], request)
    assert done.state is ProviderState.SUCCEEDED
    assert base64.b64decode(done.output.base64_data) == runpod_sim.video
    runpod_sim.fail(ids[2], "CUDA out of memory")
    failed = await provider.status(ids[2], request)
    assert (failed.state, failed.error_message) == (ProviderState.FAILED, "CUDA out of memory")
    runpod_sim.time_out(ids[3])
    assert (await provider.status(ids[3], request)).state is ProviderState.FAILED
    await provider.cancel(ids[4])
    assert runpod_sim.jobs[ids[4]].state == "canceled"
    assert (await provider.status(ids[4], request)).state is ProviderState.CANCELED
    runpod_sim.complete(ids[5], output={"error": "prompt rejected"})
    worker_error = await provider.status(ids[5], request)
    assert (worker_error.state, worker_error.error_message) == (ProviderState.FAILED, "prompt rejected")


@pytest.mark.parametrize(
    ("output", "expected_url"),
    [
        ("http://127.0.0.1:1/v.mp4", "http://127.0.0.1:1/v.mp4"),
        ({"video_url": "https://cdn/x.mp4"}, "https://cdn/x.mp4"),
    ],
)
async def test_url_outputs(provider, runpod_sim, output, expected_url):
    job_id = (await provider.submit(job_request())).provider_job_id
    runpod_sim.complete(job_id, output=output)
    update = await provider.status(job_id)
    assert update.output.url == expected_url and update.output.base64_data is None


async def test_progress_object_and_expired_result(provider, runpod_sim):
    job_id = (await provider.submit(job_request())).provider_job_id
    runpod_sim.run(job_id)
    runpod_sim.jobs[job_id].progress = {"progress": 60}
    assert (await provider.status(job_id)).progress == 60
    runpod_sim.expire(job_id)
    with pytest.raises(ProviderRejected) as info:
        await provider.status(job_id)
    assert info.value.code == ProviderRejected.NOT_FOUND


async def test_status_without_request_probes_endpoints_after_restart(runpod_sim, provider):
    job_id = (await provider.submit(job_request(model_ref="wan-2.2-t2v"))).provider_job_id
    fresh = RunPodProvider(provider.config)  # a new process: no memory of which endpoint ran the job
    try:
        assert (await fresh.status(job_id)).state is ProviderState.QUEUED
    finally:
        await fresh.aclose()
    assert [r.path for r in runpod_sim.requests_to("status")] == [
        f"/ltx-ep/status/{job_id}",
        f"/wan-ep/status/{job_id}",
    ]


async def test_auto_advance_reaches_success_by_polling():
    from tests.simulators.runpod import RunPodSimulator

    with RunPodSimulator(auto_advance=(0.05, 0.1)) as sim:
        adapter = RunPodProvider(ProviderConfig(api_key="test-key", base_url=sim.url, extra={"ltx_endpoint_id": "e"}))
        job_id = (await adapter.submit(job_request())).provider_job_id
        seen = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            update = await adapter.status(job_id)
            seen.add(update.state)
            if update.state is ProviderState.SUCCEEDED:
                break
        await adapter.aclose()
    assert ProviderState.SUCCEEDED in seen


async def test_rate_limit_and_server_errors_are_retry_later(provider, runpod_sim):
    runpod_sim.faults.add("submit", Fault.error(429, retry_after="7"))
    with pytest.raises(RetryLater) as info:
        await provider.submit(job_request())
    assert info.value.after == 7
    runpod_sim.faults.add("submit", Fault.error(503, retry_after=formatdate(time.time() + 30, usegmt=True)))
    with pytest.raises(RetryLater) as info:
        await provider.submit(job_request())
    assert 25 <= info.value.after <= 31
    runpod_sim.faults.add("status", Fault.error(500))
    with pytest.raises(RetryLater):
        await provider.status("any-id", job_request())
    assert runpod_sim.jobs == {}  # none of the refused submits created a job


async def test_out_of_credit_and_auth(provider, runpod_sim):
    runpod_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(job_request())
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT
    runpod_sim.out_of_credit = False
    runpod_sim.api_key = "another-key"
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(job_request())
    assert info.value.code == ProviderRejected.AUTH


async def test_reset_after_send_is_unknown_outcome(provider, runpod_sim):
    runpod_sim.faults.add("submit", Fault.reset())
    with pytest.raises(SubmitOutcomeUnknown):
        await provider.submit(job_request())
    assert len(runpod_sim.requests_to("submit")) == 1
    runpod_sim.faults.add("submit", Fault.malformed())
    with pytest.raises(SubmitOutcomeUnknown):
        await provider.submit(job_request())
    runpod_sim.faults.add("status", Fault.malformed())
    with pytest.raises(RetryLater):
        await provider.status("x", job_request())


async def test_stalled_submit_is_unknown_outcome(provider, runpod_sim):
    provider.client.timeout = httpx.Timeout(0.3)
    runpod_sim.faults.add("submit", Fault.stall(1.0))
    with pytest.raises(SubmitOutcomeUnknown):
        await provider.submit(job_request())


async def test_connect_error_is_retry_later():
    with socket_closed_port() as port:
        adapter = RunPodProvider(
            ProviderConfig(api_key="k", base_url=f"http://127.0.0.1:{port}", extra={"ltx_endpoint_id": "e"})
        )
        with pytest.raises(RetryLater):
            await adapter.submit(job_request())
        await adapter.aclose()


def socket_closed_port():
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now: connecting fails before any byte is sent
        yield port

    return closed()


async def test_completion_webhook_parses_and_dedupes(provider, runpod_sim, receiver):
    job_id = (await provider.submit(job_request(webhook_url=f"{receiver.url}/webhooks/runpod?t=tok"))).provider_job_id
    runpod_sim.webhooks.controls.duplicate = 1
    runpod_sim.complete(job_id)
    first, second = receiver.wait_for(2)
    events = [await provider.verify_and_parse_webhook(r.headers, r.body, r.query) for r in (first, second)]
    assert events[0].delivery_id == events[1].delivery_id == f"{job_id}:COMPLETED"
    assert events[0].update.state is ProviderState.SUCCEEDED
    assert base64.b64decode(events[0].update.output.base64_data) == runpod_sim.video
    assert first.query == {"t": "tok"}


async def test_local_worker_webhook_takes_id_from_query(provider):
    body = json.dumps({"output": {"video": "AAAA"}}).encode()
    event = await provider.verify_and_parse_webhook({}, body, {"job": "test-123"})
    assert event.delivery_id == "test-123:COMPLETED" and event.update.output.base64_data == "AAAA"
    failed = await provider.verify_and_parse_webhook({}, json.dumps({"id": "j1", "error": "boom"}).encode(), {})
    assert failed.update.state is ProviderState.FAILED
    for bad in (b"not json", b"[1]", json.dumps({"output": 1}).encode()):
        with pytest.raises(WebhookRejected):
            await provider.verify_and_parse_webhook({}, bad, {})


async def test_health(provider, runpod_sim):
    report = await provider.health()
    assert report.healthy and "workers" in report.detail and not report.out_of_credit
    runpod_sim.api_key = "rotated"
    report = await provider.health()
    assert not report.healthy and "auth" in report.detail
    assert RunPodProvider(ProviderConfig(api_key="k")).configured() is False


async def test_output_url_can_point_anywhere_without_being_fetched(provider, runpod_sim):
    runpod_sim.output_url_override = "http://169.254.169.254/latest/meta-data/"
    job_id = (await provider.submit(job_request())).provider_job_id
    runpod_sim.complete(job_id)
    update = await provider.status(job_id)
    # The adapter only reports the URL; fetching (through the SSRF guard) is the services' job.
    assert update.output.url == "http://169.254.169.254/latest/meta-data/"
