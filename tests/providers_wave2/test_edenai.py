"""EdenAIProvider against the EdenAI simulator, and the RSA webhook scheme against orjson's canonical bytes."""

from __future__ import annotations

import json
import math

import pytest

from reelgate.domain.jobs import ProviderState
from reelgate.providers.base import ProviderConfig, ProviderRejected, RetryLater, WebhookRejected
from reelgate.providers.edenai import EdenAIProvider, canonical_json
from tests.providers.helpers import image, job_request
from tests.simulators.base import Fault
from tests.simulators.edenai import eden_canonical, eden_sign, public_pem

HOOK = "http://127.0.0.1:9/webhooks/edenai?t=x"


@pytest.fixture
async def provider(edenai_sim):
    config = ProviderConfig(
        api_key="test-key",
        base_url=edenai_sim.url + "/v3",
        extra={"webhook_public_key": edenai_sim.public_key_pem},
    )
    adapter = EdenAIProvider(config)
    yield adapter
    await adapter.aclose()


def req(model_ref="amazon/amazon.nova-reel-v1:0", **overrides):
    values = {"model_ref": model_ref, "duration": 6, "webhook_url": HOOK, "seed": 42}
    values.update(overrides)
    return job_request(**values)


async def test_submit_sends_v3_universal_ai_shape(provider, edenai_sim):
    result = await provider.submit(req("klingai/kling-v2-5", start_image=image("https://img/a.png")))
    [sent] = edenai_sim.requests_to("submit")
    assert sent.path == "/v3/universal-ai/async"
    assert sent.json() == {
        "model": "video/generation_async/klingai/kling-v2-5",
        "input": {
            "text": "a lighthouse at dusk",
            "duration": 6,
            "dimension": "1280x720",
            "seed": 42,
            "file": "https://img/a.png",
        },
        "webhook_receiver": HOOK,
        "user_webhook_parameters": {"generation_id": "gen_1"},
    }
    assert edenai_sim.jobs[result.provider_job_id].extra["model"].endswith("klingai/kling-v2-5")


async def test_polling_maps_states_and_outputs(provider, edenai_sim):
    ok = (await provider.submit(req())).provider_job_id
    assert (await provider.status(ok)).state is ProviderState.RUNNING
    edenai_sim.complete(ok)
    done = await provider.status(ok)
    assert done.state is ProviderState.SUCCEEDED and done.output.url.endswith(f"/files/{ok}.mp4")
    edenai_sim.base64_output = True
    edenai_sim.video = b"\x00" * 4096  # big enough to be kept out of the raw payload
    inline = await provider.status(ok)
    assert inline.output.base64_data and inline.raw["output"]["video"].startswith("<")
    bad = (await provider.submit(req())).provider_job_id
    edenai_sim.fail(bad, "provider error: timeout")
    failed = await provider.status(bad)
    assert (failed.state, failed.error_message) == (ProviderState.FAILED, "provider error: timeout")


async def test_errors_carry_intent(provider, edenai_sim):
    edenai_sim.out_of_credit = True
    with pytest.raises(ProviderRejected) as info:
        await provider.submit(req())
    assert info.value.code == ProviderRejected.OUT_OF_CREDIT
    edenai_sim.out_of_credit = False
    edenai_sim.faults.add("submit", Fault.error(429, retry_after="3"))
    with pytest.raises(RetryLater) as retry:
        await provider.submit(req())
    assert retry.value.after == 3
    with pytest.raises(ProviderRejected) as missing:
        await provider.status("nope")
    assert missing.value.code == ProviderRejected.NOT_FOUND


async def test_signed_webhooks_verify_and_forgeries_fail(provider, edenai_sim, receiver):
    ok = (await provider.submit(req(webhook_url=receiver.url))).provider_job_id
    edenai_sim.webhooks.controls.duplicate = 1
    edenai_sim.complete(ok)
    events = [await provider.verify_and_parse_webhook(r.headers, r.body, r.query) for r in receiver.wait_for(2)]
    assert {e.delivery_id for e in events} == {f"{ok}:success"}
    assert events[0].update.output.url.endswith(f"{ok}.mp4")
    body, headers = receiver.requests[0].body, receiver.requests[0].headers
    with pytest.raises(WebhookRejected):  # a changed value
        await provider.verify_and_parse_webhook(headers, body.replace(b"success", b"fail"), {})
    with pytest.raises(WebhookRejected):  # signed by another key
        await provider.verify_and_parse_webhook(edenai_sim.webhooks.build(body, corrupt=True), body, {})
    with pytest.raises(WebhookRejected):
        await provider.verify_and_parse_webhook({"X-Edenai-Signature": "zz"}, body, {})
    with pytest.raises(WebhookRejected):
        await EdenAIProvider(ProviderConfig(api_key="k")).verify_and_parse_webhook(headers, body, {})


async def test_key_order_and_whitespace_do_not_matter(provider, edenai_sim):
    """The signature covers the canonical form, so a re-serialized body still verifies
    (docs/providers/edenai.md#webhooks)."""
    data = {"job_id": "j1", "status": "fail", "error": {"message": "boom"}, "cost": 2.5e-06, "note": "日本"}
    compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    signature = eden_sign(edenai_sim.private_key, compact)
    reordered = json.dumps(dict(reversed(list(data.items()))), indent=4).encode()
    event = await provider.verify_and_parse_webhook({"X-Edenai-Signature": signature}, reordered, {})
    assert (event.update.state, event.update.error_message) == (ProviderState.FAILED, "boom")
    assert "BEGIN PUBLIC KEY" in public_pem(edenai_sim.private_key)


@pytest.mark.parametrize(
    "payload",
    [
        {"event": "async_job_completed", "job_id": "a", "status": "success", "output": {"video_resource_url": "u"}},
        {"cost": 1e-05, "small": 1.5e-06, "tiny": 5e-324, "big": 1e16, "huge": 1.7976931348623157e308, "zero": -0.0},
        {
            "text": 'vidéo ✓ 日本 \u2028 😀 \x01\x1f\x7f \t\n"\\/',
            "empty": {},
            "list": [],
            "nested": [[{"b": 1, "a": None}]],
        },
        {"ints": [0, -1, 2**53 + 1], "bools": [True, False], "ü": 1, "Z": 2, "a": 3},
    ],
    ids=["webhook-shape", "floats", "unicode-escapes", "ints-and-key-order"],
)
def test_canonical_json_matches_orjson_byte_for_byte(payload):
    assert canonical_json(payload) == eden_canonical(payload)


def test_where_plain_json_dumps_would_differ_from_orjson():
    """The brief's json.dumps form is exact except for small floats: the reason canonical_json has its encoder."""
    orjson = pytest.importorskip("orjson")
    for value, python, vendor in [(1e-05, "1e-05", "0.00001"), (2.5e-06, "2.5e-06", "2.5e-6")]:
        plain = json.dumps({"x": value}, sort_keys=True, indent=2, ensure_ascii=False, separators=(",", ": "))
        assert python in plain and vendor.encode() in orjson.dumps({"x": value}, option=orjson.OPT_INDENT_2)
        assert canonical_json({"x": value}) == orjson.dumps({"x": value}, option=orjson.OPT_INDENT_2)
    assert canonical_json({"x": math.nan}) == orjson.dumps({"x": math.nan}, option=orjson.OPT_INDENT_2)
