"""The vendors' own SDKs run against our simulators, proving the simulators speak the real wire protocol."""

from __future__ import annotations

import pytest


def test_replicate_sdk_create_wait_get_cancel(replicate_sim, monkeypatch):
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.02")
    replicate = pytest.importorskip("replicate")
    client = replicate.Client(api_token="test-key", base_url=replicate_sim.url)

    prediction = client.predictions.create(model="wan-video/wan-2.2-t2v-fast", input={"prompt": "a fox"})
    assert prediction.status == "starting"
    replicate_sim.complete(prediction.id)
    prediction.wait()
    assert prediction.status == "succeeded"
    assert prediction.output == f"{replicate_sim.url}/files/{prediction.id}.mp4"

    version = "9f747673945c62801b13b84701c783929c0ee784e4748ec062204894dda1a351"
    pinned = client.predictions.create(version=version, input={"prompt": "a fox", "num_frames": 24})
    replicate_sim.run(pinned.id, progress=40)
    fetched = client.predictions.get(pinned.id)
    assert fetched.status == "processing" and fetched.version == version
    assert fetched.progress is not None and fetched.progress.percentage == 0.4
    client.predictions.cancel(pinned.id)
    assert client.predictions.get(pinned.id).status == "canceled"
    assert [r.route for r in replicate_sim.requests].count("submit") == 2


def test_runpod_sdk_run_status_output_cancel_health(runpod_sim, monkeypatch):
    runpod = pytest.importorskip("runpod")
    # docs/providers/runpod.md#quirks: the SDK reads the base URL from the module when an Endpoint is created.
    monkeypatch.setattr(runpod, "endpoint_url_base", runpod_sim.url)
    monkeypatch.setattr(runpod, "api_key", "test-key")
    endpoint = runpod.Endpoint("ltx-ep")

    job = endpoint.run({"prompt": "a fox", "type": "t2v"})
    assert job.status() == "IN_QUEUE"
    assert runpod_sim.requests_to("submit")[0].json() == {"input": {"prompt": "a fox", "type": "t2v"}}
    runpod_sim.complete(job.job_id)
    assert job.output(timeout=5)["video"]
    assert job.status() == "COMPLETED"

    other = endpoint.run({"prompt": "a hare"})
    assert other.cancel()["status"] == "CANCELLED"
    assert other.status() == "CANCELLED"
    health = endpoint.health()
    assert set(health) == {"jobs", "workers"} and health["jobs"]["completed"] == 1
